/**
 * Starts a real gateway in-process on an ephemeral port with a config directory written by the test.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { GuardServices } from '../../src/core/pipeline.ts';
import type { ProtocolDefinition } from '../../src/gateway/adapter.ts';
import { startGateway, type RunningGateway } from '../../src/main.ts';
import { loadConfigDir } from '../../src/config/load.ts';
import { gatewayAudiences, listenerOf } from '../../src/guards/identity/config.ts';
import { loadOrCreateDevAuthority, mintDevSvid } from '../../src/guards/identity/dev.ts';
import { resourceBases } from '../../src/guards/identity/policy.ts';
import { allResources } from '../../src/guards/identity/resources.ts';

export interface TestGateway extends RunningGateway {
  /** The config directory (its data dir, .tollgate, sits beside it in the same temporary root). */
  readonly dir: string;
  /** Writes (or replaces) a config file in the gateway's directory. */
  write(file: string, yaml: string): void;
  /**
   * A JWT-SVID of the gateway's dev trust domain (default spiffe://dev.tollgate.local/test). Its `aud` names every
   * resource of the gateway (`<base>/mcp`, `<base>/mcp/<server>`...) unless `audiences` says otherwise.
   */
  devToken(spiffeId?: string, opts?: { audiences?: string[]; ttlSeconds?: number }): string;
  /** The canonical URI of a resource path of this gateway (`/mcp`, `/mcp/<server>`): what a bound token's aud names. */
  resourceUri(path: string): string;
  /** `{ authorization: 'Bearer <dev SVID>' }` for connectClient. */
  authHeaders(spiffeId?: string): Record<string, string>;
  stop(): Promise<void>;
}

export const DEV_SPIFFE_ID = 'spiffe://dev.tollgate.local/test';

/** Test gateways by origin: connectClient presents their dev SVID unless the test passes its own Authorization. */
const devCredentials = new Map<string, () => Record<string, string>>();

/** Base URLs of gateway processes started from a config dir (gateway-process.ts), for devAuthHeaders. */
const processUrls = new Map<string, string>();

/** Remembers where a gateway process started from `configDir` listens (its tokens name resources there). */
export function rememberProcessUrl(configDir: string, url: string): void {
  processUrls.set(resolve(configDir), url);
}

/**
 * `{ authorization: 'Bearer <dev SVID>' }` for a gateway started from `configDir` (e.g. a `tollgate serve` child
 * process): minted with the dev trust domain key of that config's data dir, its `aud` naming every resource of the
 * config under `base`: the URL the gateway listens at (default: where a process started by startGatewayProcess from
 * this dir listens, else the config's publicUrl/audiences/listener). `resources` names resource paths (e.g. a route
 * not configured yet) instead of the config's.
 */
export function devAuthHeaders(configDir: string, spiffeId = DEV_SPIFFE_ID, base?: string, resources?: readonly string[]): Record<string, string> {
  const snapshot = loadConfigDir(configDir);
  const identity = snapshot.gateway.identity;
  const started = identity.audiences === undefined && snapshot.gateway.listener.publicUrl === undefined ? processUrls.get(resolve(configDir)) : undefined;
  const bases = base !== undefined ? [base] : started !== undefined ? [started] : resourceBases(gatewayAudiences(identity, listenerOf(snapshot.gateway.listener)));
  const token = mintDevSvid(loadOrCreateDevAuthority(snapshot.dataDir, identity.dev.trustDomain), {
    spiffeId,
    audiences: bases.flatMap((b) => (resources ?? allResources(snapshot)).map((r) => `${b}${r}`)),
    ttlSeconds: 600,
  });
  return { authorization: `Bearer ${token}` };
}

export const GATEWAY_YAML = `apiVersion: tollgate.dev/v1alpha1
kind: Gateway
metadata: { name: test }
spec:
  listener: { host: 127.0.0.1, port: 0 }
  shutdown: { drainMs: 2000 }
`;

/** GATEWAY_YAML with an `identity` section (its YAML body, indented four spaces). */
export function withIdentity(identityYaml: string): string {
  return `${GATEWAY_YAML}  identity:\n${identityYaml}`;
}

export function mcpBackend(name: string, spec: Record<string, unknown>): string {
  return `---
apiVersion: tollgate.dev/v1alpha1
kind: Backend
metadata: { name: ${name} }
spec: ${JSON.stringify({ protocol: 'mcp', ...spec })}
`;
}

export function route(name: string, path: string, backends: string[], extra: Record<string, unknown> = {}): string {
  return `---
apiVersion: tollgate.dev/v1alpha1
kind: Route
metadata: { name: ${name} }
spec: ${JSON.stringify({ ...extra, rules: [{ matches: [{ path: { type: 'PathPrefix', value: path } }], backendRefs: backends.map((b) => ({ name: b })) }] })}
`;
}

/** The server-everything stdio backend spec (from node_modules, run with the current Node). */
export const EVERYTHING_STDIO = {
  stdio: { command: process.execPath, args: [join(process.cwd(), 'node_modules/@modelcontextprotocol/server-everything/dist/index.js'), 'stdio'] },
};

export async function startTestGateway(
  files: Record<string, string>,
  opts: { gatewayYaml?: string; protocols?: readonly ProtocolDefinition[]; guards?: readonly GuardServices[] } = {},
): Promise<TestGateway> {
  // Config in <root>/routes so that the data dir (<root>/.tollgate: dev keys...) is private to this gateway.
  const root = mkdtempSync(join(tmpdir(), 'tollgate-test-'));
  const dir = join(root, 'routes');
  mkdirSync(dir);
  writeFileSync(join(dir, 'gateway.yaml'), opts.gatewayYaml ?? GATEWAY_YAML);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const running = await startGateway({ configDir: dir, host: '127.0.0.1', port: 0, protocols: opts.protocols, guards: opts.guards });
  const devToken = (spiffeId = DEV_SPIFFE_ID, o: { audiences?: string[]; ttlSeconds?: number } = {}): string => {
    const snapshot = running.gateway.state().snapshot;
    const identity = snapshot.gateway.identity;
    const authority = loadOrCreateDevAuthority(snapshot.dataDir, identity.dev.trustDomain);
    return mintDevSvid(authority, {
      spiffeId,
      audiences: o.audiences ?? allResources(snapshot).map((r) => running.services.identity.resourceUri(r)),
      ttlSeconds: o.ttlSeconds ?? 600,
    });
  };
  const authHeaders = (spiffeId?: string): Record<string, string> => ({ authorization: `Bearer ${devToken(spiffeId)}` });
  devCredentials.set(new URL(running.url).origin, () => authHeaders());
  return {
    ...running,
    dir,
    write: (file, yaml) => writeFileSync(join(dir, file), yaml),
    devToken,
    resourceUri: (path) => running.services.identity.resourceUri(path),
    authHeaders,
    stop: async () => {
      devCredentials.delete(new URL(running.url).origin);
      await running.shutdown();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/**
 * An official SDK client connected over Streamable HTTP. On a test gateway it authenticates as the dev agent
 * (DEV_SPIFFE_ID) unless `headers` carries an Authorization of its own or `anonymous` is set.
 */
export async function connectClient(url: string, opts: { headers?: Record<string, string>; name?: string; anonymous?: boolean } = {}): Promise<Client> {
  const client = new Client({ name: opts.name ?? 'test-client', version: '1.0.0' });
  const own = Object.keys(opts.headers ?? {}).some((h) => h.toLowerCase() === 'authorization');
  const dev = own || opts.anonymous ? undefined : devCredentials.get(new URL(url).origin);
  const headers = { ...dev?.(), ...opts.headers };
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
  await client.connect(transport);
  return client;
}

/**
 * Polls `check` until it returns true (or throws after `ms`). Resolves with the time it took (ms), for tests where
 * time is the behaviour (reload, rotation) to assert a bound on.
 */
export async function eventually(check: () => boolean | Promise<boolean>, ms = 5_000, what = 'condition'): Promise<number> {
  const start = performance.now();
  const until = Date.now() + ms;
  for (;;) {
    if (await check()) return performance.now() - start;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
