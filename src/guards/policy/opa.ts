/**
 * Driving the `opa` binary: finding it, the build-time capabilities (opa-wasm's file + our JS builtins), `opa build
 * -t wasm` and `opa test`. Only the build path needs opa; serving a built bundle never does.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, relative, resolve } from 'node:path';
import { CUSTOM_BUILTIN_NAMES } from './builtins.ts';
import { RegocUnavailable, type RegoCompiler } from './regoc.ts';

/** Path of the opa binary: $TOLLGATE_OPA, else `opa` on PATH; undefined when there is none. */
export function findOpa(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return findTool('opa', env.TOLLGATE_OPA, env);
}

/**
 * Path of the persistent Rego compiler (tools/regoc): $TOLLGATE_REGOC, else `tollgate-regoc` on PATH; undefined when
 * there is none or TOLLGATE_REGOC=off (Rego is then built with `opa build`, a process per build).
 */
export function findRegoc(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.TOLLGATE_REGOC === 'off') return undefined;
  return findTool('tollgate-regoc', env.TOLLGATE_REGOC, env);
}

function findTool(name: string, explicit: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  if (explicit !== undefined && explicit !== '') return isExecutable(explicit) ? explicit : undefined;
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  /** What to show when it failed: stderr and stdout, or the exec error. */
  readonly diagnostics: string;
}

/** Runs opa without a shell; never throws for a non-zero exit (the caller reports stderr). */
export function runOpa(opa: string, args: readonly string[], opts: { cwd?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((done) => {
    execFile(opa, args, { cwd: opts.cwd, timeout: opts.timeoutMs ?? 60_000, maxBuffer: 32 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      const exit = (err as { code?: unknown } | null)?.code;
      const code = err === null ? 0 : typeof exit === 'number' ? exit : 1;
      // opa prints some errors on stdout; when it printed nothing (not found, killed) the exec error says why.
      const diagnostics = [stderr, stdout].map((x) => x.trim()).filter((x) => x !== '').join('\n');
      done({ code, stdout, stderr, diagnostics: diagnostics === '' && err ? err.message : diagnostics });
    });
  });
}

interface Capabilities {
  builtins: Array<{ name: string }>;
  features?: string[];
  future_keywords?: string[];
  wasm_abi_versions?: unknown;
}

const capabilitiesFiles = new Map<string, string>();

/**
 * Writes (once per opa binary and process) the capabilities used to build and test: the builtins of the
 * capabilities.json shipped in @open-policy-agent/opa-wasm plus the declarations of our JS builtins taken from this
 * opa, and this opa's language features (opa-wasm's file predates `rego_v1` and would refuse Rego v1 syntax).
 */
export async function capabilitiesFile(opa: string): Promise<string> {
  const cached = capabilitiesFiles.get(opa);
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  // The package does not export its capabilities.json; it sits at the package root, beside src/.
  const main = require.resolve('@open-policy-agent/opa-wasm');
  const wasmCaps = JSON.parse(readFileSync(join(dirname(main), '..', 'capabilities.json'), 'utf8')) as Capabilities;
  const current = await runOpa(opa, ['capabilities', '--current']);
  if (current.code !== 0) throw new Error(`opa capabilities --current failed: ${current.diagnostics}`);
  const opaCaps = JSON.parse(current.stdout) as Capabilities;
  const have = new Set(wasmCaps.builtins.map((b) => b.name));
  const extra = opaCaps.builtins.filter((b) => CUSTOM_BUILTIN_NAMES.includes(b.name) && !have.has(b.name));
  const merged: Capabilities = {
    builtins: [...wasmCaps.builtins, ...extra],
    features: opaCaps.features ?? [],
    future_keywords: opaCaps.future_keywords ?? [],
    wasm_abi_versions: wasmCaps.wasm_abi_versions,
  };
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-opa-'));
  const file = join(dir, 'capabilities.json');
  writeFileSync(file, JSON.stringify(merged));
  capabilitiesFiles.set(opa, file);
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  return file;
}

/** Files of a policy directory that go into a bundle (what opa loads, minus tests and hidden files). */
export function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.name.startsWith('.')) continue;
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (isSourceFile(e.name)) out.push(p);
    }
  };
  walk(dir);
  return out.sort();
}

/** True for a file name whose change alters the built bundle. */
export function isSourceFile(name: string): boolean {
  return (/\.rego$/.test(name) && !/_test\.rego$/.test(name)) || /\.(json|ya?ml)$/.test(name);
}

/** Content hash of a policy directory: the bundle revision, so a stale committed bundle is detectable. */
export function sourceRevision(dir: string): string {
  const h = createHash('sha256');
  for (const f of sourceFiles(dir)) {
    h.update(relative(dir, f).split('\\').join('/'));
    h.update('\0');
    h.update(readFileSync(f));
    h.update('\0');
  }
  return `src-${h.digest('hex').slice(0, 16)}`;
}

export interface BuildOptions {
  readonly opa: string;
  readonly dir: string;
  readonly entrypoints: readonly string[];
  readonly output: string;
  readonly revision?: string | undefined;
  /** Sign the bundle (`opa build --signing-key`): PEM private key file or HMAC secret, with its algorithm. */
  readonly signing?: { key: string; algorithm: string; keyId?: string; claimsFile?: string } | undefined;
  /**
   * The persistent compiler to build with (unsigned builds): same bundle and error text as `opa build`, without a
   * process start. When it cannot answer (died, cannot start), the build runs `opa build` instead.
   */
  readonly compiler?: RegoCompiler | undefined;
}

/** Files left out of a built bundle (`opa build --ignore`): tests are not part of what is served. */
const IGNORE = ['*_test.rego'];

/** `opa build -t wasm` of a directory; resolves with opa's diagnostics when it fails. */
export async function buildWasmBundle(opts: BuildOptions): Promise<{ ok: true; revision: string } | { ok: false; error: string }> {
  const caps = await capabilitiesFile(opts.opa);
  const revision = opts.revision ?? sourceRevision(opts.dir);
  // Bundle mode from inside the directory: module paths in the bundle are relative (no local paths leak into it)
  // and signing is possible. Tests are left out; they are not part of what is served.
  if (opts.compiler && !opts.signing) {
    try {
      const r = await opts.compiler.build({ dir: resolve(opts.dir), entrypoints: opts.entrypoints, capabilities: caps, ignore: IGNORE, revision, output: resolve(opts.output) });
      return r.ok ? { ok: true, revision } : { ok: false, error: r.error.trim() };
    } catch (err) {
      if (!(err instanceof RegocUnavailable)) throw err;
      if (opts.compiler.closed) return { ok: false, error: err.message };
      // Otherwise `opa build` below (the compiler logged why it stopped; the next build starts it again).
    }
  }
  const args = ['build', '-b', '-t', 'wasm', '--capabilities', caps, ...IGNORE.flatMap((g) => ['--ignore', g]), '-r', revision, '-o', resolve(opts.output)];
  for (const e of opts.entrypoints) args.push('-e', e);
  if (opts.signing) {
    args.push('--signing-key', opts.signing.key, '--signing-alg', opts.signing.algorithm);
    if (opts.signing.keyId) args.push('--verification-key-id', opts.signing.keyId);
    if (opts.signing.claimsFile) args.push('--claims-file', opts.signing.claimsFile);
  }
  args.push('.');
  const r = await runOpa(opts.opa, args, { cwd: opts.dir });
  if (r.code !== 0) return { ok: false, error: r.diagnostics };
  return { ok: true, revision };
}

/** `opa test` of a directory with the same capabilities as the build (a test cannot pass on a builtin the WASM lacks). */
export async function testPolicies(opa: string, dir: string, extraArgs: readonly string[] = []): Promise<RunResult> {
  const caps = await capabilitiesFile(opa);
  return runOpa(opa, ['test', '--capabilities', caps, ...extraArgs, dir]);
}
