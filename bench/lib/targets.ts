/**
 * Starts what one scenario needs, each in its own process: the backends, the bare reference proxy in front of the
 * direct backend, and one gateway process per variant (`node bin/tollgate.mjs serve --config <generated dir>`).
 */
import { existsSync, mkdirSync, openSync, closeSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { BackendSpec } from '../fixtures/backends.ts';
import type { Scenario } from '../scenarios.ts';
import type { StageContext, Variant, ConfigDocument } from '../stages.ts';
import { freePort, spawnPlain, spawnReady, waitHealthy, type Child } from './procs.ts';

export const ROOT = resolve(import.meta.dirname, '../..');
const API = 'tollgate.dev/v1alpha1';

export interface Backends {
  readonly urls: Readonly<Record<string, string>>;
  /** OTLP/HTTP sink (base URL) for the telemetry stage. */
  readonly otlp: string;
  readonly child: Child;
}

export async function startBackends(specs: readonly BackendSpec[]): Promise<Backends> {
  const child = await spawnReady<{ urls: Record<string, string>; otlp: string }>(join(ROOT, 'bench/fixtures/backends.ts'), [JSON.stringify(specs)]);
  return { urls: child.ready.urls, otlp: child.ready.otlp, child };
}

export interface Proxy {
  /** The proxy's URL for the direct backend's MCP endpoint. */
  readonly url: string;
  readonly child: Child;
}

export async function startBareProxy(backendUrl: string, connections: number, cpuProfDir?: string): Promise<Proxy> {
  const u = new URL(backendUrl);
  const nodeArgs = cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${cpuProfDir}`, '--cpu-prof-name=proxy.cpuprofile'] : [];
  const child = await spawnReady<{ url: string }>(join(ROOT, 'bench/fixtures/bare-proxy.ts'), [u.origin, String(connections)], nodeArgs);
  return { url: `${child.ready.url}${u.pathname}`, child };
}

export interface GatewayProcess {
  readonly label: string;
  /** The federated MCP endpoint. */
  readonly url: string;
  /** Headers the stages need on every request. */
  readonly headers: Readonly<Record<string, string>>;
  /** The admin listener (/readyz, /metrics, /limits), when the checkout has one. */
  readonly adminUrl: string | undefined;
  readonly child: Child;
  readonly configDir: string;
  readonly logFile: string;
  /** Date.now() when the process was spawned (V8 traces count ms from about then). */
  readonly spawnedAt: number;
  /** ms from spawn to /healthz answering (polled every 5 ms): the gateway's cold start. */
  readonly readyMs: number;
  /** What the stages' setup left (keys...), by stage: e.g. to mint tokens for other principals (identityHeaders). */
  readonly state: Map<string, unknown>;
  /** The gateway's base URL (what tokens name as their audience). */
  readonly base: string;
}

export interface GatewayOptions {
  readonly work: string;
  /** The backends the gateway federates at /mcp (what stages key on). */
  readonly scenario: Pick<Scenario, 'federated'>;
  readonly backendUrls: Readonly<Record<string, string>>;
  /** OTLP sink for the telemetry stage (absent: that stage exports nowhere). */
  readonly otlpUrl?: string | undefined;
  readonly variant: Variant;
  readonly logLevel: string;
  /** Write a V8 CPU profile of the gateway process into this directory (on exit). */
  readonly cpuProfDir?: string | undefined;
  /**
   * Other routes than the MCP federation (a model route for the stream scenario): the config documents by file, given
   * the Route spec fragment the stages ask for, and the path the returned `url` names.
   */
  readonly routes?: ((routeSpec: Record<string, unknown>, route: string) => { files: Record<string, ConfigDocument[]>; path: string }) | undefined;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = isPlainObject(v) && isPlainObject(out[k]) ? deepMerge(out[k], v) : v;
  return out;
}

/** YAML documents in JSON flow style (valid YAML, one line each, so config errors still point at a line). */
function yamlDocs(docs: readonly ConfigDocument[]): string {
  return docs.map((d) => `---\n${JSON.stringify(d)}\n`).join('');
}

/** The MCP federation at /mcp: one Backend per federated backend and the bench Route. */
function mcpRoutes(federated: readonly string[], urls: Readonly<Record<string, string>>): NonNullable<GatewayOptions['routes']> {
  return (routeSpec, route) => {
    const backends: ConfigDocument[] = federated.map((name) => ({ apiVersion: API, kind: 'Backend', metadata: { name }, spec: { protocol: 'mcp', url: urls[name] } }));
    const routeDoc: ConfigDocument = {
      apiVersion: API,
      kind: 'Route',
      metadata: { name: route },
      spec: { ...routeSpec, rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/mcp' } }], backendRefs: federated.map((name) => ({ name })) }] },
    };
    return { files: { 'mcp.yaml': [...backends, routeDoc] }, path: '/mcp' };
  };
}

export async function startGatewayProcess(o: GatewayOptions): Promise<GatewayProcess> {
  const dir = join(o.work, o.variant.label.replace(/[^a-z0-9-]+/gi, '_'));
  const configDir = join(dir, 'config');
  mkdirSync(configDir, { recursive: true });
  const port = await freePort();
  const route = 'bench';
  const root = o.variant.root ?? ROOT;
  const base = `http://127.0.0.1:${port}`;
  const ctx: StageContext = { root, work: dir, configDir, backends: o.scenario.federated, route, gatewayUrl: base, otlpUrl: o.otlpUrl, state: new Map() };
  // Since identity landed every route needs a token unless it says anonymous: without the identity stage the bench
  // route is explicitly anonymous (a checkout older than identity has no auth section at all).
  let routeSpec: Record<string, unknown> = existsSync(join(root, 'src/guards/identity/config.ts')) ? { auth: { anonymous: true } } : {};

  let gatewaySpec: Record<string, unknown> = {
    listener: { host: '127.0.0.1', port },
    log: { level: o.variant.logLevel ?? o.logLevel },
    dataDir: join(dir, 'data'),
    shutdown: { drainMs: 2000 },
  };
  // The admin listener on a port of its own (not the default 9090: several gateways run at once).
  let adminUrl: string | undefined;
  if (existsSync(join(root, 'src/server/admin-config.ts'))) {
    const adminPort = await freePort();
    gatewaySpec.admin = { listener: { host: '127.0.0.1', port: adminPort } };
    adminUrl = `http://127.0.0.1:${adminPort}`;
  }
  // What is on by default is switched off here and on again by its stage, so that `gateway[none]` is the bare
  // gateway and each stage's cost shows (a checkout older than these sections does not know them).
  if (existsSync(join(root, 'src/audit/config.ts'))) gatewaySpec.audit = { enabled: false };
  if (existsSync(join(root, 'src/telemetry/config.ts'))) gatewaySpec.telemetry = { tracing: { enabled: false }, metrics: { prometheus: false, otlp: false } };
  const env: Record<string, string> = {};
  const headers: Record<string, string> = {};
  for (const stage of o.variant.stages) {
    await stage.setup?.(ctx);
    if (stage.gateway) gatewaySpec = deepMerge(gatewaySpec, stage.gateway(ctx));
    if (stage.route) routeSpec = deepMerge(routeSpec, stage.route(ctx));
    for (const [file, docs] of Object.entries(stage.files?.(ctx) ?? {})) writeFileSync(join(configDir, file), yamlDocs(docs));
    Object.assign(env, stage.env?.(ctx) ?? {});
  }
  writeFileSync(join(configDir, 'gateway.yaml'), yamlDocs([{ apiVersion: API, kind: 'Gateway', metadata: { name: 'bench' }, spec: gatewaySpec }]));
  const routes = (o.routes ?? mcpRoutes(o.scenario.federated, o.backendUrls))(routeSpec, route);
  for (const [file, docs] of Object.entries(routes.files)) writeFileSync(join(configDir, file), yamlDocs(docs));
  for (const stage of o.variant.stages) Object.assign(headers, (await stage.headers?.(ctx)) ?? {});

  const logFile = join(dir, 'gateway.log');
  const fd = openSync(logFile, 'a');
  const args = ['--disable-warning=ExperimentalWarning', ...(o.variant.nodeOptions ?? [])];
  if (o.cpuProfDir) args.push('--cpu-prof', `--cpu-prof-dir=${o.cpuProfDir}`, `--cpu-prof-name=${o.variant.label.replace(/[^a-z0-9-]+/gi, '_')}.cpuprofile`);
  args.push(join(root, 'bin/tollgate.mjs'), 'serve', '--config', configDir, '--port', String(port), '--host', '127.0.0.1');
  // The config decides the log level: an inherited TOLLGATE_LOG_LEVEL (tests set 'silent') would override it.
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env, ...o.variant.env };
  delete childEnv.TOLLGATE_LOG_LEVEL;
  // Likewise the admin port: the config names it (tests set TOLLGATE_ADMIN_PORT=0 for their own gateways).
  delete childEnv.TOLLGATE_ADMIN_PORT;
  const spawnedAt = Date.now();
  const child = spawnPlain(args, { cwd: root, stdout: fd, env: childEnv });
  closeSync(fd);
  try {
    await waitHealthy(`${base}/healthz`, child, 30_000, 5);
  } catch (err) {
    await child.stop(1000);
    throw new Error(`gateway ${o.variant.label} did not start (log: ${logFile}): ${(err as Error).message}`);
  }
  return { label: o.variant.label, url: `${base}${routes.path}`, headers, adminUrl, child, configDir, logFile, spawnedAt, readyMs: Date.now() - spawnedAt, state: ctx.state, base };
}
