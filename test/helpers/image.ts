/**
 * The container image without a Docker daemon: the Dockerfile's stages built from its own instructions (COPY from
 * the .dockerignore'd context or another stage, RUN in the stage's WORKDIR, ENV, USER...), and the runtime stage run
 * the way a container runtime would: a private mount namespace whose root is a read-only tmpfs holding the base
 * image (the machine's /usr, Node 24 at /usr/local/bin/node) and the stage's files, with the volumes mounted, as
 * uid 1000, started by the image's ENTRYPOINT + CMD in its WORKDIR with only its ENV (plus what the test passes).
 *
 * (Running it: ./container.ts.)
 *
 * What stands in for what: `node:24-bookworm-slim` is this machine's Debian userland plus the Node 24 binary npm
 * installed for the project; `openpolicyagent/opa:<v>-static` is the opa of the same version that
 * scripts/install-tools.sh built from the Go module proxy; `golang:<v>` is this machine's Go (same or newer, its
 * module and build caches for the cache mounts); the npm cache mount is this machine's npm cache.
 * The built runtime stage is cached under ~/.cache/tollgate/image/<hash of the Dockerfile and the context>.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import { createRequire } from 'node:module';
import { DockerfileParser, type Instruction } from 'dockerfile-ast';

// CommonJS (module.exports = the factory) behind a d.ts that says `export default`: required as what it is.
const ignore = createRequire(import.meta.url)('@balena/dockerignore') as typeof import('@balena/dockerignore').default;

/** The uid/gid of user `node` in the official Node images. */
export const NODE_UID = 1000;
const BASE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface Step {
  readonly keyword: string;
  readonly args: readonly string[];
  readonly flags: Readonly<Record<string, string>>;
  /** Exec-form (JSON) arguments, when the instruction has them. */
  readonly json: readonly string[] | undefined;
  readonly properties: ReadonlyArray<readonly [string, string]>;
}

export interface Stage {
  readonly name: string;
  readonly base: string;
  readonly steps: readonly Step[];
}

export interface ImageConfig {
  readonly env: Readonly<Record<string, string>>;
  readonly user: string;
  readonly workdir: string;
  readonly entrypoint: readonly string[];
  readonly cmd: readonly string[];
  readonly healthcheck: { readonly cmd: readonly string[]; readonly flags: Readonly<Record<string, string>> } | undefined;
  readonly labels: Readonly<Record<string, string>>;
  readonly volumes: readonly string[];
  readonly expose: readonly string[];
  readonly stopSignal: string | undefined;
}

export interface BuiltImage {
  /** The runtime stage's files (its layers on top of the base image). */
  readonly rootfs: string;
  readonly config: ImageConfig;
  readonly stages: readonly Stage[];
  /** Whether this run built it (false: the cache had it). */
  readonly built: boolean;
}

function expand(text: string, vars: Readonly<Record<string, string>>): string {
  return text.replace(/\$\{(\w+)\}|\$(\w+)/g, (m, a: string | undefined, b: string | undefined) => vars[(a ?? b)!] ?? m);
}

function unquote(v: string): string {
  return v.length >= 2 && v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1) : v;
}

/** The Dockerfile's stages, with global ARG defaults (overridden by buildArgs) expanded in FROM. */
export function readDockerfile(file: string, buildArgs: Readonly<Record<string, string>> = {}): Stage[] {
  const df = DockerfileParser.parse(readFileSync(file, 'utf8'));
  const globals: Record<string, string> = {};
  const stages: Array<{ name: string; base: string; steps: Step[] }> = [];
  for (const ins of df.getInstructions()) {
    const keyword = ins.getKeyword();
    const step = toStep(ins);
    if (keyword === 'ARG' && stages.length === 0) {
      const [name, value] = step.properties[0]!;
      globals[name] = buildArgs[name] ?? value;
      continue;
    }
    if (keyword === 'FROM') {
      const [image, as, name] = step.args;
      stages.push({ name: as?.toUpperCase() === 'AS' && name ? name : String(stages.length), base: expand(image!, globals), steps: [] });
      continue;
    }
    stages.at(-1)!.steps.push(step);
  }
  return stages;
}

function toStep(ins: Instruction): Step {
  const withFlags = ins as unknown as { getFlags?: () => Array<{ getName(): string; getValue(): string | null }> };
  const withJson = ins as unknown as { getJSONStrings?: () => Array<{ getJSONValue(): string }> };
  const withProps = ins as unknown as { getProperties?: () => Array<{ getName(): string; getValue(): string | null }> };
  const flags = Object.fromEntries((withFlags.getFlags?.() ?? []).map((f) => [f.getName(), f.getValue() ?? '']));
  let json = withJson.getJSONStrings?.().map((j) => j.getJSONValue());
  const args = ins.getArguments().map((a) => a.getValue());
  if (ins.getKeyword() === 'HEALTHCHECK' && args[0] === 'CMD') json = JSON.parse(args.slice(1).join(' ')) as string[];
  if (json !== undefined && json.length === 0) json = undefined;
  const properties = (withProps.getProperties?.() ?? []).map((p) => [p.getName(), unquote(p.getValue() ?? '')] as const);
  return { keyword: ins.getKeyword(), args, flags, json, properties };
}

/** Files of the build context that .dockerignore lets through (paths relative to the context). */
export function contextFiles(context: string): string[] {
  const ig = ignore().add(readFileSync(join(context, '.dockerignore'), 'utf8'));
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const name of readdirSync(join(context, rel))) {
      const path = rel === '' ? name : `${rel}/${name}`;
      const st = statSync(join(context, path));
      // A directory is entered when it, or something under it, may be let through (allowlist patterns use `!dir/`).
      if (st.isDirectory()) {
        if (!ig.ignores(path) || !ig.ignores(`${path}/`)) walk(path);
      } else if (!ig.ignores(path)) out.push(path);
    }
  };
  walk('');
  return out.sort();
}

function contextHash(context: string, files: readonly string[], extra: string): string {
  const h = createHash('sha256').update(extra);
  for (const f of files) h.update(f).update('\0').update(readFileSync(join(context, f))).update('\0');
  return h.digest('hex').slice(0, 24);
}

interface StageState {
  root: string;
  workdir: string;
  env: Record<string, string>;
  args: Record<string, string>;
  user: string;
  entrypoint: string[];
  cmd: string[];
  healthcheck: ImageConfig['healthcheck'];
  labels: Record<string, string>;
  volumes: string[];
  expose: string[];
  stopSignal: string | undefined;
}

function inStage(st: StageState, path: string): string {
  return join(st.root, path.startsWith('/') ? path : join(st.workdir, path));
}

/** COPY: a directory's contents into the destination directory; a file to the destination (or into it when it ends with /). */
function copy(src: string, dest: string, destIsDir: boolean, chown: boolean, filter?: (abs: string) => boolean): void {
  if (statSync(src).isDirectory()) {
    mkdirSync(dest, { recursive: true });
    cpSync(src, dest, { recursive: true, verbatimSymlinks: true, ...(filter ? { filter } : {}) });
  } else {
    const target = destIsDir ? join(dest, basename(src)) : dest;
    mkdirSync(dirname(target), { recursive: true });
    copyFileSync(src, target);
    execFileSync('chmod', ['--reference', src, target]);
  }
  if (chown) execFileSync('chown', ['-R', `${NODE_UID}:${NODE_UID}`, destIsDir && !statSync(src).isDirectory() ? join(dest, basename(src)) : dest]);
}

/** This machine's Go: the stand-in for a `golang:<version>` stage's toolchain (its module and build caches too). */
const GO_ROOT = '/usr/local/go';

function requireGo(version: string): void {
  const out = spawnSync(join(GO_ROOT, 'bin/go'), ['version'], { encoding: 'utf8' }).stdout ?? '';
  const have = /go(\d+\.\d+)/.exec(out)?.[1];
  if (have === undefined) throw new Error(`golang:${version}: no Go toolchain at ${GO_ROOT}`);
  const [a, b] = [have, version].map((v) => v.split('.').map(Number));
  if (a![0]! < b![0]! || (a![0] === b![0] && a![1]! < b![1]!)) throw new Error(`golang:${version}: this machine's Go is ${have}`);
}

/** The stand-in for an external image's files (only the opa image is used). */
function externalImage(base: string, into: string): void {
  const m = /^openpolicyagent\/opa:(\d+\.\d+\.\d+)(-static)?$/.exec(base);
  if (!m) throw new Error(`no stand-in for image ${base}`);
  const opa = join(process.env.TOLLGATE_CACHE ?? join(homedir(), '.cache/tollgate'), 'bin/opa');
  const version = spawnSync(opa, ['version'], { encoding: 'utf8' }).stdout ?? '';
  if (!version.includes(`Version: ${m[1]}`)) throw new Error(`${base}: the cached opa is not ${m[1]} (${version.split('\n')[0]}); run scripts/install-tools.sh`);
  mkdirSync(into, { recursive: true });
  copyFileSync(opa, join(into, 'opa'));
  execFileSync('chmod', ['755', join(into, 'opa')]);
}

function buildStage(stage: Stage, context: string, allowed: ReadonlySet<string>, done: ReadonlyMap<string, StageState>, workRoot: string, log: (line: string) => void): StageState {
  const root = join(workRoot, stage.name);
  mkdirSync(root, { recursive: true });
  const st: StageState = { root, workdir: '/', env: { PATH: BASE_PATH }, args: {}, user: 'root', entrypoint: [], cmd: [], healthcheck: undefined, labels: {}, volumes: [], expose: [], stopSignal: undefined };
  const golang = /^golang:(\d+\.\d+)/.exec(stage.base);
  if (!stage.base.startsWith('node:') && !golang) {
    if (stage.steps.length > 0) throw new Error(`stage ${stage.name}: only bare external images are supported`);
    externalImage(stage.base, root);
    return st;
  }
  if (golang) requireGo(golang[1]!);
  else if (!/^node:24([.-]|$)/.test(stage.base)) throw new Error(`stage ${stage.name} is based on ${stage.base}, not Node 24`);
  const vars = (): Record<string, string> => ({ ...st.args, ...st.env });
  for (const step of stage.steps) {
    const args = step.args.map((a) => expand(a, vars()));
    switch (step.keyword) {
      case 'WORKDIR':
        st.workdir = args[0]!.startsWith('/') ? args[0]! : join(st.workdir, args[0]!);
        mkdirSync(join(root, st.workdir), { recursive: true });
        break;
      case 'ARG':
        for (const [k, v] of step.properties) st.args[k] = expand(v, vars());
        break;
      case 'ENV':
        for (const [k, v] of step.properties) st.env[k] = expand(v, vars());
        break;
      case 'LABEL':
        for (const [k, v] of step.properties) st.labels[k] = expand(v, vars());
        break;
      case 'USER':
        st.user = args[0]!;
        break;
      case 'VOLUME':
        st.volumes.push(...(step.json ?? args));
        break;
      case 'EXPOSE':
        st.expose.push(...args);
        break;
      case 'STOPSIGNAL':
        st.stopSignal = args[0];
        break;
      case 'ENTRYPOINT':
        st.entrypoint = [...(step.json ?? ['/bin/sh', '-c', args.join(' ')])];
        break;
      case 'CMD':
        st.cmd = [...(step.json ?? ['/bin/sh', '-c', args.join(' ')])];
        break;
      case 'HEALTHCHECK':
        st.healthcheck = { cmd: step.json ?? [], flags: step.flags };
        break;
      case 'COPY': {
        const from = step.flags.from;
        const chown = step.flags.chown !== undefined;
        if (chown && !/^(node|1000)(:(node|1000))?$/.test(step.flags.chown!)) throw new Error(`COPY --chown=${step.flags.chown}: only node (uid 1000) is known`);
        const srcs = args.slice(0, -1);
        const destArg = args.at(-1)!;
        const dest = inStage(st, destArg);
        const destIsDir = destArg.endsWith('/') || srcs.length > 1;
        for (const src of srcs) {
          if (from !== undefined) {
            const other = done.get(from);
            if (!other) throw new Error(`COPY --from=${from}: no such stage before ${stage.name}`);
            copy(join(other.root, src), dest, destIsDir, chown);
          } else {
            const abs = join(context, src);
            const rel = relative(context, abs);
            if (!existsSync(abs)) throw new Error(`COPY ${src}: not in the build context`);
            if (statSync(abs).isDirectory()) {
              if (![...allowed].some((f) => f.startsWith(`${rel}/`))) throw new Error(`COPY ${src}: excluded by .dockerignore`);
              copy(abs, dest, destIsDir, chown, (p) => statSync(p).isDirectory() || allowed.has(relative(context, p)));
            } else {
              if (!allowed.has(rel)) throw new Error(`COPY ${src}: excluded by .dockerignore`);
              copy(abs, dest, destIsDir, chown);
            }
          }
        }
        break;
      }
      case 'RUN': {
        // Run in the stage's WORKDIR with its ENV; its /usr/local/bin (opa) and Node 24 first on PATH. The npm cache
        // mount is this machine's npm cache: prefer it over the registry.
        const cmd = args.join(' ');
        log(`[${stage.name}] RUN ${cmd}`);
        const env = {
          ...process.env,
          ...st.env,
          PATH: `${join(root, 'usr/local/bin')}:${golang ? `${GO_ROOT}/bin:` : ''}${dirname(process.execPath)}:${process.env.PATH ?? ''}`,
          npm_config_prefer_offline: 'true',
          npm_config_update_notifier: 'false',
        };
        const r = spawnSync('/bin/sh', ['-c', cmd], { cwd: join(root, st.workdir), env, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
        if (r.status !== 0) throw new Error(`[${stage.name}] RUN ${cmd} failed (${r.status}):\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`);
        break;
      }
      default:
        throw new Error(`instruction ${step.keyword} is not supported by the Docker-less build`);
    }
  }
  return st;
}

/**
 * Builds every stage of the Dockerfile (or takes the runtime stage from the cache) and returns the last stage's
 * files and config.
 */
export function buildImage(opts: { context: string; buildArgs?: Record<string, string>; log?: (line: string) => void }): BuiltImage {
  const context = opts.context;
  const log = opts.log ?? (() => {});
  const stages = readDockerfile(join(context, 'Dockerfile'), opts.buildArgs);
  const files = contextFiles(context);
  const key = contextHash(context, files, `${readFileSync(join(context, 'Dockerfile'), 'utf8')}\0${readFileSync(join(context, '.dockerignore'), 'utf8')}\0${JSON.stringify(opts.buildArgs ?? {})}\0${process.version}`);
  const cacheRoot = join(process.env.TOLLGATE_CACHE ?? join(homedir(), '.cache/tollgate'), 'image');
  const cached = join(cacheRoot, key);
  if (existsSync(join(cached, 'config.json'))) {
    utimesSync(cached, new Date(), new Date()); // recently used: pruning keeps it
    return { rootfs: join(cached, 'rootfs'), config: JSON.parse(readFileSync(join(cached, 'config.json'), 'utf8')) as ImageConfig, stages, built: false };
  }
  mkdirSync(cacheRoot, { recursive: true });
  const work = mkdtempSync(join(cacheRoot, 'build-'));
  try {
    const allowed = new Set(files);
    const done = new Map<string, StageState>();
    for (const stage of stages) done.set(stage.name, buildStage(stage, context, allowed, done, join(work, 'stages'), log));
    const last = done.get(stages.at(-1)!.name)!;
    const config: ImageConfig = {
      env: last.env,
      user: last.user,
      workdir: last.workdir,
      entrypoint: last.entrypoint,
      cmd: last.cmd,
      healthcheck: last.healthcheck,
      labels: last.labels,
      volumes: last.volumes,
      expose: last.expose,
      stopSignal: last.stopSignal,
    };
    const out = join(work, 'out');
    mkdirSync(out);
    renameSync(last.root, join(out, 'rootfs'));
    writeFileSync(join(out, 'config.json'), JSON.stringify(config, null, 2));
    try {
      renameSync(out, cached);
    } catch (err) {
      // Another test run (another worktree on this machine) built the same context meanwhile: use theirs.
      if (!existsSync(join(cached, 'config.json'))) throw err;
    }
    pruneImages(cacheRoot, cached);
    return { rootfs: join(cached, 'rootfs'), config, stages, built: true };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Several test runs share the cache (one per worktree): keep the three newest images (another run may still be
 * running containers from one of them) and never touch a build in progress unless it is a day old (a killed run).
 */
function pruneImages(cacheRoot: string, keep: string): void {
  const now = Date.now();
  const entries = readdirSync(cacheRoot).map((name) => ({ name, mtime: statSync(join(cacheRoot, name)).mtimeMs }));
  const images = entries.filter((e) => !e.name.startsWith('build-') && join(cacheRoot, e.name) !== keep).sort((a, b) => b.mtime - a.mtime);
  for (const e of images.slice(2)) rmSync(join(cacheRoot, e.name), { recursive: true, force: true });
  for (const e of entries) if (e.name.startsWith('build-') && now - e.mtime > 86_400_000) rmSync(join(cacheRoot, e.name), { recursive: true, force: true });
}

/** Total size in bytes of a directory tree (what `du -sb` says). */
export function treeBytes(dir: string): number {
  return Number(execFileSync('du', ['-sb', dir], { encoding: 'utf8' }).split('\t')[0]);
}

/** Top-level packages in a node_modules directory (scoped ones as @scope/name). */
export function packagesIn(nodeModules: string): Set<string> {
  const out = new Set<string>();
  for (const name of readdirSync(nodeModules)) {
    if (name.startsWith('.')) continue;
    if (name.startsWith('@')) for (const sub of readdirSync(join(nodeModules, name))) out.add(`${name}/${sub}`);
    else out.add(name);
  }
  return out;
}

