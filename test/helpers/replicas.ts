/**
 * Tollgate as a cluster of two replicas: gateway processes (`tollgate serve`, production profile, as the chart runs
 * them) behind a round-robin load balancer without session affinity (load-balancer.ts), sharing one Redis (the test
 * Redis, `REDIS_URL`) and the MCP session keys, each with its own data directory (audit log). JWT-SVIDs of one
 * signer of the example.org trust domain authenticate callers. Every replica serves the MCP fixture at /mcp with a
 * per-principal rate limit on fixture/add (`burst` calls, then one an hour); a test adds what else it needs
 * (`gateway` lines, `redis` fields, more documents).
 * Used by ha-cluster.test.ts (graceful: SIGTERM, drain, audit) and resilience-replicas.test.ts (a crash: SIGKILL).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually } from './gateway.ts';
import { newSigner, nowS, signJwt, spiffeBundle } from './jwt.ts';
import { startLoadBalancer, type LoadBalancer } from './load-balancer.ts';
import { freePort } from './net.ts';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6390';

export interface Replica {
  readonly name: string;
  readonly url: string;
  readonly port: number;
  /** The replica's audit log directory. */
  readonly auditDir: string;
  readonly proc: ChildProcess;
  readonly exited: Promise<number | null>;
  /** Everything the process wrote so far (stdout and stderr). */
  out: string;
}

export interface ClusterOptions {
  /** Names the temp directory (`tollgate-<label>-`). */
  readonly label: string;
  /** The MCP backend every replica federates at /mcp. */
  readonly fixtureUrl: string;
  /** The session key's value (TOLLGATE_SESSION_KEY_1). */
  readonly sessionKey: string;
  /** Redis key prefix (the process id is appended: runs never share keys). */
  readonly keyPrefix: string;
  /** The rate limit's burst on fixture/add per principal. */
  readonly burst: number;
  /** More lines of the Gateway spec (two-space indented YAML, e.g. `  shutdown: { drainMs: 5000 }\n`). */
  readonly gateway?: string;
  /** More fields of the Gateway's redis section (e.g. `, commandTimeoutMs: 2000`). */
  readonly redis?: string;
  /** More documents (each starting with `---`). */
  readonly docs?: string;
}

export interface Cluster {
  readonly root: string;
  readonly lb: LoadBalancer;
  readonly replicas: readonly Replica[];
  /** An Authorization header: a JWT-SVID of spiffe://example.org/agents/<agent> for `aud`. */
  auth(agent: string, aud: string): Record<string, string>;
  /** Kills what still runs (SIGKILL), closes the balancer, removes the directory. */
  close(): Promise<void>;
}

function gatewayYaml(o: ClusterOptions, root: string, name: string, port: number, publicUrl: string): string {
  return `apiVersion: tollgate.dev/v1alpha1
kind: Gateway
metadata: { name: ${name} }
spec:
  listener: { host: 127.0.0.1, port: ${port}, publicUrl: "${publicUrl}" }
${o.gateway ?? ''}  dataDir: ${join(root, name, 'data')}
  identity:
    trustDomains: [{ name: example.org, bundle: { file: ${join(root, 'example.org.json')} } }]
  mcp:
    sessionKeys: [{ id: k1, valueFrom: { env: TOLLGATE_SESSION_KEY_1 } }]
  redis: { url: "${REDIS_URL}", keyPrefix: "${o.keyPrefix}${process.pid}:"${o.redis ?? ''} }
---
apiVersion: tollgate.dev/v1alpha1
kind: Backend
metadata: { name: fixture }
spec: { protocol: mcp, url: "${o.fixtureUrl}" }
---
apiVersion: tollgate.dev/v1alpha1
kind: Route
metadata: { name: mcp }
spec:
  rules: [{ matches: [{ path: { type: PathPrefix, value: /mcp } }], backendRefs: [{ name: fixture }] }]
---
apiVersion: tollgate.dev/v1alpha1
kind: RateLimit
metadata: { name: add-per-principal }
spec: { match: { tools: [fixture/add] }, key: [principal], requests: 1, per: 1h, burst: ${o.burst}, failMode: closed }
${o.docs ?? ''}`;
}

async function startReplica(o: ClusterOptions, root: string, name: string, port: number, publicUrl: string): Promise<Replica> {
  const dir = join(root, name, 'config');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'gateway.yaml'), gatewayYaml(o, root, name, port, publicUrl));
  const proc = spawn(process.execPath, ['bin/tollgate.mjs', 'serve', '--config', dir], {
    env: { ...process.env, TOLLGATE_SESSION_KEY_1: o.sessionKey, TOLLGATE_PROFILE: 'production', TOLLGATE_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const r: Replica = { name, url: `http://127.0.0.1:${port}`, port, auditDir: join(root, name, 'data', 'audit'), proc, exited: new Promise((res) => proc.once('exit', (code) => res(code))), out: '' };
  proc.stdout!.on('data', (c: Buffer) => (r.out += c.toString()));
  proc.stderr!.on('data', (c: Buffer) => (r.out += c.toString()));
  await eventually(async () => {
    if (proc.exitCode !== null) throw new Error(`${name} exited: ${r.out.slice(-2000)}`);
    return fetch(`${r.url}/healthz`).then((x) => x.ok, () => false);
  }, 30_000, `${name} to listen`);
  return r;
}

/** Two replicas ("a", "b") behind a load balancer whose URL is their public URL. */
export async function startCluster(o: ClusterOptions): Promise<Cluster> {
  const root = mkdtempSync(join(tmpdir(), `tollgate-${o.label}-`));
  const signer = newSigner('ES256');
  writeFileSync(join(root, 'example.org.json'), JSON.stringify(spiffeBundle([signer])));
  const ports = [await freePort(), await freePort()];
  const lb = await startLoadBalancer(ports.map((p) => `http://127.0.0.1:${p}`));
  const started = await Promise.allSettled(['a', 'b'].map((n, i) => startReplica(o, root, n, ports[i]!, lb.url)));
  const replicas = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const close = async (): Promise<void> => {
    for (const r of replicas) if (r.proc.exitCode === null) r.proc.kill('SIGKILL');
    await lb.close();
    rmSync(root, { recursive: true, force: true });
  };
  const failed = started.find((s) => s.status === 'rejected');
  if (failed !== undefined) {
    await close();
    throw failed.reason;
  }
  return {
    root,
    lb,
    replicas,
    auth: (agent, aud) => ({ authorization: `Bearer ${signJwt(signer, { sub: `spiffe://example.org/agents/${agent}`, aud, iat: nowS(), exp: nowS() + 600 })}` }),
    close,
  };
}
