/**
 * Tollgate as a highly available cluster: two gateway processes (`tollgate serve`, production profile, as the chart
 * runs them) behind a small round-robin load balancer without session affinity, sharing one Redis and the MCP
 * session keys, each with its own audit log.
 *   - An MCP session started on one replica continues on the other (every request alternates).
 *   - A rate limit holds across both: one principal's calls, alternating between the replicas, are admitted exactly
 *     as often as one bucket allows (the bucket lives in the shared Redis, not per replica).
 *   - One replica terminated mid-load (SIGTERM while calls are in flight and the balancer still routes to it, the
 *     harshest of Kubernetes' terminations: no preStop pause): every call a client got an answer for is in one of
 *     the two audit logs, both logs verify, and every client carries on, in its same session, on the other replica.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { verifyLog } from '../../src/audit/verify.ts';
import type { AuditRecord } from '../../src/audit/format.ts';
import { connectClient, eventually } from '../helpers/gateway.ts';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { newSigner, nowS, signJwt, spiffeBundle } from '../helpers/jwt.ts';
import { startLoadBalancer, type LoadBalancer } from '../helpers/load-balancer.ts';
import { freePort } from '../helpers/net.ts';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6390';
const root = mkdtempSync(join(tmpdir(), 'tollgate-ha-'));
const signer = newSigner('ES256');
/** The shared bucket of the limit-across-replicas test: BURST calls at once, then one an hour. */
const BURST = 8;
const KEYS = { TOLLGATE_SESSION_KEY_1: 'ha-session-key-0123456789abcdef0123456789abcdef' };

interface Replica {
  readonly name: string;
  readonly url: string;
  readonly port: number;
  readonly auditDir: string;
  proc: ChildProcess;
  exited: Promise<number | null>;
  out: string;
}

let fixture: FixtureServer;
let lb: LoadBalancer;
let replicas: Replica[];

function gatewayYaml(name: string, port: number, publicUrl: string): string {
  return `apiVersion: tollgate.dev/v1alpha1
kind: Gateway
metadata: { name: ${name} }
spec:
  listener: { host: 127.0.0.1, port: ${port}, publicUrl: "${publicUrl}" }
  admin: { listener: { host: 127.0.0.1, port: 0 } }
  shutdown: { drainMs: 5000 }
  dataDir: ${join(root, name, 'data')}
  identity:
    trustDomains: [{ name: example.org, bundle: { file: ${join(root, 'example.org.json')} } }]
  mcp:
    sessionKeys: [{ id: k1, valueFrom: { env: TOLLGATE_SESSION_KEY_1 } }]
  redis: { url: "${REDIS_URL}", keyPrefix: "tgha${process.pid}:" }
---
apiVersion: tollgate.dev/v1alpha1
kind: Backend
metadata: { name: fixture }
spec: { protocol: mcp, url: "${fixture.url}" }
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
spec: { match: { tools: [fixture/add] }, key: [principal], requests: 1, per: 1h, burst: ${BURST}, failMode: closed }
`;
}

async function startReplica(name: string, port: number, publicUrl: string): Promise<Replica> {
  const dir = join(root, name, 'config');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'gateway.yaml'), gatewayYaml(name, port, publicUrl));
  const proc = spawn(process.execPath, ['bin/tollgate.mjs', 'serve', '--config', dir], {
    env: { ...process.env, ...KEYS, TOLLGATE_PROFILE: 'production', TOLLGATE_LOG_LEVEL: 'warn' },
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

function token(agent: string, aud: string): Record<string, string> {
  return { authorization: `Bearer ${signJwt(signer, { sub: `spiffe://example.org/agents/${agent}`, aud, iat: nowS(), exp: nowS() + 600 })}` };
}

/** Every call record in an audit log: its echoed message and outcome. */
function auditedCalls(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.jsonl'))) {
    for (const line of readFileSync(join(dir, file), 'utf8').split('\n')) {
      if (line === '') continue;
      const rec = JSON.parse(line) as AuditRecord;
      const message = (rec.args as { message?: unknown } | undefined)?.message;
      if (rec.kind === 'call' && rec.operation === 'tools/call' && typeof message === 'string') out.set(message, rec.outcome ?? '');
    }
  }
  return out;
}

function text(r: unknown): string {
  return ((r as { content: Array<{ text: string }> }).content[0]?.text) ?? '';
}

beforeAll(async () => {
  fixture = await startHttpMcpServer({ name: 'fixture' });
  writeFileSync(join(root, 'example.org.json'), JSON.stringify(spiffeBundle([signer])));
  const ports = [await freePort(), await freePort()];
  lb = await startLoadBalancer(ports.map((p) => `http://127.0.0.1:${p}`));
  replicas = await Promise.all(['a', 'b'].map((n, i) => startReplica(n, ports[i]!, lb.url)));
}, 120_000);

afterAll(async () => {
  for (const r of replicas ?? []) if (r.proc.exitCode === null) r.proc.kill('SIGKILL');
  await lb?.close();
  await fixture?.close();
  rmSync(root, { recursive: true, force: true });
});

describe('HA cluster: two replicas, one Redis, a load balancer without affinity', () => {
  it('an MCP session started on one replica continues on the other', async () => {
    const client = await connectClient(`${lb.url}/mcp`, { headers: token('continuity', `${lb.url}/mcp`) });
    for (let i = 0; i < 10; i++) expect(text(await client.callTool({ name: 'fixture__echo', arguments: { message: `c${i}` } }))).toBe(`c${i}`);
    const session = (client.transport as { sessionId?: string } | undefined)?.sessionId;
    expect(session).toBeTruthy();
    // The same session id went to both replicas, and every call was answered.
    expect([...lb.sessions.get(session!)!].sort()).toEqual(replicas.map((r) => r.url).sort());
    await client.close();
  });

  it('a rate limit holds across both replicas: one bucket in the shared Redis, not one per replica', async () => {
    const ATTEMPTS = 3 * BURST;
    const results: Array<'ok' | 'limited' | string> = [];
    // Two sessions of one principal, every request alternating between the replicas: 2 x ATTEMPTS/2 calls.
    const clients = [0, 1].map(() => connectClient(`${lb.url}/mcp`, { headers: token('limited', `${lb.url}/mcp`) }));
    const [c1, c2] = await Promise.all(clients);
    for (let i = 0; i < ATTEMPTS; i++) {
      try {
        const r = await (i % 2 === 0 ? c1! : c2!).callTool({ name: 'fixture__add', arguments: { a: i, b: 1 } });
        expect(text(r)).toBe(String(i + 1));
        results.push('ok');
      } catch (err) {
        const e = err as { code?: number; message: string };
        results.push(e.code === -32064 ? 'limited' : `other: ${e.code} ${e.message}`);
      }
    }
    await Promise.all([c1!.close(), c2!.close()]);
    const admitted = results.filter((r) => r === 'ok').length;
    const limited = results.filter((r) => r === 'limited').length;
    process.stderr.write(`ha-cluster limit: ${JSON.stringify({ attempts: ATTEMPTS, admitted, limited, burst: BURST })}\n`);
    // Per-replica buckets would admit 2 x BURST; a shared one admits BURST (plus at most one refill, 1/h).
    expect(results.filter((r) => r.startsWith('other'))).toEqual([]);
    expect(admitted).toBe(BURST);
    expect(limited).toBe(ATTEMPTS - BURST);
    // Both replicas took part.
    for (const r of replicas) expect(lb.served.get(r.url) ?? 0).toBeGreaterThan(0);
  });

  it('one replica terminated mid-load: no answered call missing from the audit logs, clients carry on in their sessions on the other', async () => {
    const [a, b] = replicas as [Replica, Replica];
    const CLIENTS = 6;
    const answered = new Map<string, number>(); // message -> client
    const errors: string[] = [];
    const afterKill = new Array<number>(CLIENTS).fill(0);
    let killed = false;
    let stop = false;
    const sessionsBefore: Array<string | undefined> = [];
    const sessionsAfter: Array<string | undefined> = [];
    const clients: Client[] = [];
    for (let k = 0; k < CLIENTS; k++) {
      const c = await connectClient(`${lb.url}/mcp`, { headers: token(`load-${k}`, `${lb.url}/mcp`) });
      clients.push(c);
      sessionsBefore.push((c.transport as { sessionId?: string }).sessionId);
    }
    const load = async (k: number): Promise<void> => {
      const client = clients[k]!;
      for (let i = 0; !stop && i < 100_000; i++) {
        const message = `k${k}-${i}`;
        // A refused or cut call is retried once as a new call (a client's usual reaction to a 5xx or a reset).
        for (let attempt = 0; attempt < 2; attempt++) {
          try {
            const r = await client.callTool({ name: 'fixture__echo', arguments: { message: attempt === 0 ? message : `${message}-retry` } });
            answered.set(text(r), k);
            if (killed) afterKill[k]!++;
            break;
          } catch (err) {
            errors.push(`${message}: ${(err as Error).message.slice(0, 120)}`);
          }
        }
      }
    };
    const running = clients.map((_, k) => load(k));
    await eventually(() => answered.size >= 150, 60_000, '150 answered calls before the termination');
    const answeredAtKill = answered.size;
    a.proc.kill('SIGTERM');
    killed = true;
    const code = await a.exited;
    // Every client must carry on on b: 20 answered calls each after the termination.
    await eventually(() => afterKill.every((n) => n >= 20), 60_000, 'every client to carry on on the other replica');
    stop = true;
    await Promise.all(running);
    for (const c of clients) sessionsAfter.push((c.transport as { sessionId?: string }).sessionId);
    await Promise.all(clients.map((c) => c.close().catch(() => {})));
    b.proc.kill('SIGTERM');
    expect(await b.exited).toBe(0);
    expect(code).toBe(0);

    const logA = auditedCalls(a.auditDir);
    const logB = auditedCalls(b.auditDir);
    const missing = [...answered.keys()].filter((m) => logA.get(m) !== 'ok' && logB.get(m) !== 'ok');
    const figures = {
      answered: answered.size,
      answeredBeforeTermination: answeredAtKill,
      auditedOnA: logA.size,
      auditedOnB: logB.size,
      clientErrorsDuringTermination: errors.length,
      missingFromAudit: missing.length,
    };
    process.stderr.write(`ha-cluster: ${JSON.stringify(figures)}\n`);
    expect(missing).toEqual([]);
    // Both logs are intact and sealed (a drained to the end and sealed on SIGTERM).
    for (const dir of [a.auditDir, b.auditDir]) {
      const v = verifyLog(dir, { allowOpen: false });
      expect(v.ok, JSON.stringify(v.problem)).toBe(true);
    }
    // Each client kept its session: the sealed id went on working on b.
    expect(sessionsAfter).toEqual(sessionsBefore);
    // The load balancer saw the replica go: b served everything after the termination.
    expect(lb.served.get(b.url)!).toBeGreaterThan(answered.size / 2);
  });
});
