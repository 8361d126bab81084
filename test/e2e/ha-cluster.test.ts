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
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { verifyLog } from '../../src/audit/verify.ts';
import type { AuditRecord } from '../../src/audit/format.ts';
import { connectClient, eventually } from '../helpers/gateway.ts';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import type { LoadBalancer } from '../helpers/load-balancer.ts';
import { startCluster, type Cluster, type Replica } from '../helpers/replicas.ts';

/** The shared bucket of the limit-across-replicas test: BURST calls at once, then one an hour. */
const BURST = 8;

let fixture: FixtureServer;
let cluster: Cluster;
let lb: LoadBalancer;
let replicas: readonly Replica[];

function token(agent: string, aud: string): Record<string, string> {
  return cluster.auth(agent, aud);
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
  cluster = await startCluster({
    label: 'ha',
    fixtureUrl: fixture.url,
    sessionKey: 'ha-session-key-0123456789abcdef0123456789abcdef',
    keyPrefix: 'tgha',
    burst: BURST,
    gateway: '  admin: { listener: { host: 127.0.0.1, port: 0 } }\n  shutdown: { drainMs: 5000 }\n',
  });
  ({ lb, replicas } = cluster);
}, 120_000);

afterAll(async () => {
  await cluster?.close();
  await fixture?.close();
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
