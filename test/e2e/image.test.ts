/**
 * The container image, proven without a Docker daemon (none runs on the machines this project is tested on): the
 * Dockerfile's own stages are built from its instructions (test/helpers/image.ts: production dependencies installed
 * into the runtime stage by its `npm ci --omit=dev`, the policy bundle built in the build stage), then the runtime
 * stage is started by its ENTRYPOINT/CMD as uid 1000 on a read-only root with its VOLUMEs mounted, and serves the
 * config the Helm chart renders: an authenticated MCP call, the HEALTHCHECK, SIGTERM with the audit log sealed.
 */
import { chmodSync, chownSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readBundle } from '../../src/guards/policy/bundle.ts';
import { verifyLog } from '../../src/audit/verify.ts';
import { connectClient, eventually } from '../helpers/gateway.ts';
import { find, podSpec, render } from '../helpers/helm.ts';
import { runContainer, type Mount } from '../helpers/container.ts';
import { buildImage, NODE_UID, packagesIn, treeBytes, type BuiltImage } from '../helpers/image.ts';
import { newSigner, nowS, signJwt, spiffeBundle } from '../helpers/jwt.ts';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { freePort } from '../helpers/net.ts';
import { rawPost } from '../helpers/raw-http.ts';

let image: BuiltImage;
const temps: string[] = [];
const running: ChildProcess[] = [];

/** A directory the container's user can read (what a ConfigMap volume gives: 0755 directories, 0644 files). */
function temp(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(d, 0o755);
  temps.push(d);
  return d;
}

/** A volume directory the container's user owns (what an emptyDir with fsGroup gives the pod). */
function volume(prefix: string): string {
  const d = temp(prefix);
  chownSync(d, NODE_UID, NODE_UID);
  return d;
}

interface Exited {
  code: number | null;
  stdout: string;
  stderr: string;
}

function collect(child: ChildProcess): { exited: Promise<Exited>; out: () => string } {
  running.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<Exited>((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })));
  return { exited, out: () => stdout + stderr };
}

beforeAll(() => {
  const started = Date.now();
  image = buildImage({ context: process.cwd(), log: (line) => process.stderr.write(`image: ${line}\n`) });
  process.stderr.write(`image: runtime stage ${image.built ? 'built' : 'from cache'} in ${((Date.now() - started) / 1000).toFixed(1)} s: ${image.rootfs}\n`);
}, 900_000);

afterAll(async () => {
  for (const c of running) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await new Promise((r) => setTimeout(r, 100));
  temps.forEach((d) => rmSync(d, { recursive: true, force: true }));
});

describe('image: stages and contents', () => {
  it('multi-stage: a build stage with dev dependencies, a production-only deps stage, a Node 24 runtime', () => {
    const names = image.stages.map((s) => s.name);
    expect(names).toEqual(['opa', 'regoc', 'build', 'deps', 'runtime']);
    const runs = (stage: string): string[] => image.stages.find((s) => s.name === stage)!.steps.filter((s) => s.keyword === 'RUN').map((s) => s.args.join(' '));
    expect(runs('build')[0]).toMatch(/^npm ci(?!.*--omit)/);
    expect(runs('build')).toEqual(expect.arrayContaining([expect.stringMatching(/tsc --noEmit/), expect.stringMatching(/policy test/), expect.stringMatching(/policy build/)]));
    expect(runs('deps')).toEqual([expect.stringMatching(/^npm ci --omit=dev/)]);
    for (const s of image.stages.filter((x) => !['opa', 'regoc'].includes(x.name))) expect(s.base).toMatch(/^node:24-/);
    expect(image.stages.find((s) => s.name === 'regoc')!.base).toMatch(/^golang:/);
    // The runtime stage runs nothing: its node_modules is the deps stage's, its bundle the build stage's.
    const runtime = image.stages.find((s) => s.name === 'runtime')!.steps;
    expect(runtime.filter((s) => s.keyword === 'RUN')).toEqual([]);
    expect(runtime.find((s) => s.keyword === 'COPY' && s.args[1] === './node_modules')?.flags.from).toBe('deps');
  });

  it('config: user node, production profile, volumes for data and tmp, HEALTHCHECK, OCI labels, SIGTERM', () => {
    const c = image.config;
    expect(c.user).toBe('node');
    expect(c.env).toMatchObject({ NODE_ENV: 'production', TOLLGATE_PROFILE: 'production', HOST: '0.0.0.0', PORT: '8080' });
    expect(c.volumes).toEqual(['/var/lib/tollgate', '/tmp']);
    expect(c.healthcheck?.cmd).toEqual(['node', 'docker/healthcheck.mjs']);
    expect(c.stopSignal).toBe('SIGTERM');
    expect(c.entrypoint).toEqual(['node', 'bin/tollgate.mjs']);
    for (const label of ['title', 'description', 'version', 'revision', 'created', 'source', 'licenses']) {
      expect(c.labels[`org.opencontainers.image.${label}`], label).toBeTruthy();
    }
  });

  it('contents: production dependencies only (exactly the lockfile\'s), no tests, bench results or local state', () => {
    const app = join(image.rootfs, 'app');
    expect(readdirSync(app).sort()).toEqual(['bin', 'bundles', 'docker', 'node_modules', 'package.json', 'src']);
    const lock = JSON.parse(readFileSync('package-lock.json', 'utf8')) as { packages: Record<string, { dev?: boolean; devOptional?: boolean; optional?: boolean }> };
    const prod = new Set(
      Object.entries(lock.packages)
        .filter(([path, p]) => /^node_modules\/(@[^/]+\/)?[^/]+$/.test(path) && !p.dev && !p.devOptional)
        .map(([path]) => path.slice('node_modules/'.length)),
    );
    const shipped = packagesIn(join(app, 'node_modules'));
    const optionalMissing = [...prod].filter((p) => !shipped.has(p) && lock.packages[`node_modules/${p}`]!.optional);
    expect([...shipped].sort()).toEqual([...prod].filter((p) => !optionalMissing.includes(p)).sort());
    for (const dev of ['vitest', 'typescript', 'node', '@modelcontextprotocol/inspector', 'kubernetes-models', 'autocannon']) expect(shipped.has(dev), dev).toBe(false);
    const everything = (dir: string): string[] => readdirSync(dir, { recursive: true }).map(String);
    expect(everything(join(app, 'src')).filter((f) => /\.test\.ts$|\.tollgate|test-results/.test(f))).toEqual([]);
    expect(readdirSync(join(image.rootfs, 'etc/tollgate/routes'))).toEqual(['gateway.yaml']);
    const appBytes = treeBytes(app);
    const opaBytes = treeBytes(join(image.rootfs, 'usr/local/bin/opa'));
    expect(treeBytes(join(image.rootfs, 'usr/local/bin/tollgate-regoc'))).toBeGreaterThan(1e6);
    process.stderr.write(`image: layers on top of node:24-bookworm-slim: /app ${(appBytes / 1e6).toFixed(1)} MB (node_modules ${(treeBytes(join(app, 'node_modules')) / 1e6).toFixed(1)} MB), opa ${(opaBytes / 1e6).toFixed(1)} MB\n`);
    expect(appBytes).toBeLessThan(200e6);
  });

  it('the policy bundle was built in the build stage from the same Rego as the committed one', async () => {
    const built = await readBundle(readFileSync(join(image.rootfs, 'app/bundles/tollgate.tar.gz')), { source: 'image' });
    const committed = await readBundle(readFileSync('bundles/tollgate.tar.gz'), { source: 'committed' });
    expect(built.revision).toBe(committed.revision);
  });
});

describe('image: running it (uid 1000, read-only root)', () => {
  it('without a configured identity it refuses to start and says what to configure', async () => {
    const data = volume('tollgate-img-data-');
    const port = await freePort();
    const run = collect(runContainer(image, { env: { PORT: String(port), TOLLGATE_ADMIN_PORT: '0' }, mounts: [{ source: data, target: '/var/lib/tollgate' }] }));
    const r = await run.exited;
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('refusing to start: TOLLGATE_PROFILE=production');
    expect(r.stderr).toMatch(/no identity is configured: add spec\.identity\.trustDomains \(SPIFFE\), spec\.identity\.oidc or spec\.identity\.kubernetes/);
    expect(readdirSync(data)).toEqual([]); // nothing was created before the refusal (no dev key, no audit log)
  });

  it('the dev issuer turned on in a mounted config is refused too', async () => {
    const config = temp('tollgate-img-dev-');
    writeFileSync(join(config, 'gateway.yaml'), 'apiVersion: tollgate.dev/v1alpha1\nkind: Gateway\nmetadata: { name: t }\nspec:\n  dataDir: /var/lib/tollgate\n  identity:\n    trustDomains: [{ name: example.org, bundle: { workload_api: {} } }]\n    dev: { enabled: true }\n');
    const run = collect(runContainer(image, { env: { PORT: String(await freePort()), TOLLGATE_ADMIN_PORT: '0' }, mounts: [{ source: config, target: '/etc/tollgate/routes', readOnly: true }, { source: volume('tollgate-img-data-'), target: '/var/lib/tollgate' }] }));
    const r = await run.exited;
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/dev\.enabled is true: the dev issuer trusts a key the gateway generated itself/);
  });

  describe('with the config the Helm chart renders', () => {
    let fixture: FixtureServer;
    let port: number;
    let url: string;
    const signer = newSigner('ES256');
    let data: string;
    let gateway: { child: ChildProcess; exited: Promise<Exited>; out: () => string };

    beforeAll(async () => {
      fixture = await startHttpMcpServer({ name: 'fixture' });
      port = await freePort();
      const adminPort = await freePort();
      url = `http://127.0.0.1:${port}`;
      const objects = render({
        json: {
          replicaCount: 1,
          'service.port': port,
          'admin.port': adminPort,
          'gateway.drainMs': 3000,
          'identity.audiences': [url],
          'identity.trustDomains': [{ name: 'example.org', bundle: { file: '/etc/tollgate/secrets/bundle/example.org.json' } }],
          'spiffe.workloadApi.mode': 'none',
          secretMounts: [{ secretName: 'bundle' }],
          routes: {
            'mcp.yaml': `apiVersion: tollgate.dev/v1alpha1\nkind: Backend\nmetadata: { name: fixture }\nspec: { protocol: mcp, url: "${fixture.url}" }\n---\napiVersion: tollgate.dev/v1alpha1\nkind: Route\nmetadata: { name: mcp }\nspec:\n  rules: [{ matches: [{ path: { type: PathPrefix, value: /mcp } }], backendRefs: [{ name: fixture }] }]\n`,
          },
          'policy.rego': {
            'main.rego': [
              'package tollgate',
              'agent if startswith(input.principal.id, "spiffe://example.org/agents/")',
              'default decision := {"allow": false, "reason": "not an agent of example.org"}',
              'decision := {"allow": true, "reason": ""} if agent',
              'visible contains name if {',
              '  agent',
              '  some _, items in input.targets',
              '  some _, name in items',
              '}',
              '',
            ].join('\n'),
          },
        },
      });
      // The pod's volumes, as the kubelet would project them: ConfigMaps and Secrets as files.
      const files = (name: string): string => {
        const dir = temp(`tollgate-img-${name}-`);
        const cm = find(objects, 'ConfigMap', `gw-tollgate-${name}`);
        for (const [f, text] of Object.entries(cm.data as Record<string, string>)) writeFileSync(join(dir, f), text);
        return dir;
      };
      const keys = temp('tollgate-img-keys-');
      const secret = find(objects, 'Secret', 'gw-tollgate-session-keys');
      // As the kubelet writes the Secret volume (defaultMode 0440, group fsGroup 1000): readable through the group only.
      for (const [k, v] of Object.entries(secret.data as Record<string, string>)) {
        writeFileSync(join(keys, k), Buffer.from(v, 'base64'), { mode: 0o440 });
        chownSync(join(keys, k), 0, NODE_UID);
      }
      const bundle = temp('tollgate-img-bundle-');
      writeFileSync(join(bundle, 'example.org.json'), JSON.stringify(spiffeBundle([signer])));
      data = volume('tollgate-img-data-');
      const mounts: Mount[] = [
        { source: files('config'), target: '/etc/tollgate/routes', readOnly: true },
        { source: files('policies'), target: '/etc/tollgate/policies', readOnly: true },
        { source: keys, target: '/etc/tollgate/session-keys', readOnly: true },
        { source: bundle, target: '/etc/tollgate/secrets/bundle', readOnly: true },
        { source: data, target: '/var/lib/tollgate' },
      ];
      // The container's environment from the Deployment (plain values; the downward API's fields filled in).
      const c = podSpec(find(objects, 'Deployment')).containers[0]!;
      const env: Record<string, string> = { POD_NAME: 'gw-tollgate-0', POD_NAMESPACE: 'tollgate' };
      for (const e of c.env ?? []) if (e.value !== undefined) env[e.name] = e.value.replaceAll('$(POD_NAME)', env.POD_NAME!).replaceAll('$(POD_NAMESPACE)', env.POD_NAMESPACE!);
      env.TOLLGATE_LOG_LEVEL = 'info';
      const child = runContainer(image, { env, cmd: c.args, mounts });
      gateway = { child, ...collect(child) };
      await eventually(async () => {
        if (child.exitCode !== null) throw new Error(`gateway exited: ${gateway.out().slice(-3000)}`);
        return fetch(`${url}/healthz`).then((r) => r.ok, () => false);
      }, 60_000, 'the containerised gateway to listen');
    }, 120_000);

    afterAll(async () => {
      if (gateway?.child.exitCode === null) gateway.child.kill('SIGKILL');
      await fixture?.close();
    });

    it('the HEALTHCHECK command passes against it (and fails where nothing listens)', async () => {
      const ok = collect(runContainer(image, { entrypoint: image.config.healthcheck!.cmd, env: { PORT: String(port) } }));
      expect((await ok.exited).code).toBe(0);
      const nothing = collect(runContainer(image, { entrypoint: image.config.healthcheck!.cmd, env: { PORT: String(await freePort()) } }));
      const r = await nothing.exited;
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/healthcheck: ECONNREFUSED/);
    });

    it('serves an MCP call authenticated by a SPIFFE JWT-SVID and authorized by Rego compiled in the image (tollgate-regoc)', async () => {
      const token = signJwt(signer, { sub: 'spiffe://example.org/agents/builder', aud: `${url}/mcp`, iat: nowS(), exp: nowS() + 300 });
      const client = await connectClient(`${url}/mcp`, { headers: { authorization: `Bearer ${token}` } });
      const r = await client.callTool({ name: 'fixture__echo', arguments: { message: 'from the image' } });
      expect((r.content as Array<{ text: string }>)[0]!.text).toBe('from the image');
      await client.close();
      const stranger = signJwt(signer, { sub: 'spiffe://example.org/someone', aud: `${url}/mcp`, iat: nowS(), exp: nowS() + 300 });
      // The test's Rego grants nothing else to other identities, initialize included.
      await expect(connectClient(`${url}/mcp`, { headers: { authorization: `Bearer ${stranger}` } })).rejects.toMatchObject({ code: -32062, message: expect.stringContaining('not an agent of example.org') });
      const anonymous = await rawPost(`${url}/mcp`);
      expect(anonymous.status).toBe(401);
      expect(anonymous.headers['www-authenticate']).toMatch(/^Bearer resource_metadata=/);
      expect(gateway.out()).toMatch(/"msg":"tollgate listening"/);
      // Built by the image's persistent compiler, not by the `opa build` fallback.
      expect(gateway.out()).not.toMatch(/tollgate-regoc not found/);
    });

    it('SIGTERM drains, exits 0 and seals an audit log written only to the data volume', async () => {
      gateway.child.kill('SIGTERM');
      const r = await gateway.exited;
      expect(r.code, r.stderr.slice(-2000)).toBe(0);
      // The only place it wrote: the data volume (the root is read-only, /tmp a tmpfs that went with it).
      expect(readdirSync(data).sort()).toEqual(expect.arrayContaining(['audit']));
      const v = verifyLog(join(data, 'audit'), { allowOpen: false });
      expect(v.ok, JSON.stringify(v.problem)).toBe(true);
      expect(v.records).toBeGreaterThan(3);
    });
  });
});

