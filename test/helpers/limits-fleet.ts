/**
 * Several gateway processes (`tollgate serve`) sharing one Redis, as replicas behind a load balancer would: same
 * config (a trust-domain bundle file, the same audience, the same limits), each with its own data dir. And a load
 * generator: SDK clients calling a tool in a loop until a deadline, recording what was admitted and refused with
 * send and receive times.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { startGatewayProcess, type GatewayProcess } from './gateway-process.ts';
import { connectClient, eventually, mcpBackend, route } from './gateway.ts';
import { newSigner, nowS, signJwt, spiffeBundle, type Signer } from './jwt.ts';
import { MemoryCounters } from '../../src/guards/limits/decide.ts';

export const FLEET_AUDIENCE = 'https://tollgate.fleet.test';

export interface Fleet {
  readonly gateways: readonly GatewayProcess[];
  /** `Authorization` for a SPIFFE ID of example.org: a token for the /mcp resource (its audience). */
  auth(spiffeId: string): Record<string, string>;
  stop(): Promise<void>;
}

/** `redisYaml` and `limitsYaml`: the Gateway's `redis` and `limits` sections, indented four spaces. */
export async function startFleet(opts: { replicas: number; toolUrl: string; redisYaml: string; limitsYaml?: string; docs: string }): Promise<Fleet> {
  const work = mkdtempSync(join(tmpdir(), 'tollgate-fleet-'));
  const signer: Signer = newSigner('ES256', 'fleet-1');
  const bundle = join(work, 'bundle.json');
  writeFileSync(bundle, JSON.stringify(spiffeBundle([signer])));
  const gateways: GatewayProcess[] = [];
  try {
    for (let i = 0; i < opts.replicas; i++) {
      const dir = join(work, `replica-${i}`, 'routes');
      mkdirSync(dir, { recursive: true });
      writeFileSync(
        join(dir, 'gateway.yaml'),
        `apiVersion: tollgate.dev/v1alpha1
kind: Gateway
metadata: { name: replica-${i} }
spec:
  listener: { host: 127.0.0.1, port: 0 }
  shutdown: { drainMs: 1000 }
  audit: { enabled: false }
  identity:
    audiences: [${FLEET_AUDIENCE}]
    dev: { enabled: false }
    trustDomains: [{ name: example.org, bundle: { file: ${JSON.stringify(bundle)} } }]
  redis:
${opts.redisYaml}
${opts.limitsYaml ? `  limits:\n${opts.limitsYaml}` : ''}`,
      );
      writeFileSync(join(dir, 'mcp.yaml'), mcpBackend('tools', { url: opts.toolUrl }) + route('mcp', '/mcp', ['tools']));
      writeFileSync(join(dir, 'limits.yaml'), opts.docs);
      const gw = await startGatewayProcess(dir, { ...process.env, TOLLGATE_LOG_LEVEL: 'info' });
      gateways.push(gw);
      // As a load balancer would: traffic only once the replica reports its store ready.
      await eventually(async () => (await fetch(`${gw.adminUrl}/readyz/store`).catch(() => undefined))?.status === 200, 20_000, `replica ${i} store ready`);
    }
  } catch (err) {
    for (const g of gateways) g.child.kill('SIGKILL');
    throw err;
  }
  return {
    gateways,
    auth: (spiffeId) => {
      const now = nowS();
      return { authorization: `Bearer ${signJwt(signer, { sub: spiffeId, aud: [`${FLEET_AUDIENCE}/mcp`], iat: now, exp: now + 600 })}` };
    },
    stop: async () => {
      for (const g of gateways) {
        g.child.kill('SIGTERM');
        await g.exited;
      }
      rmSync(work, { recursive: true, force: true });
    },
  };
}

export interface LoadResult {
  admitted: number;
  limited: number;
  /** Admitted per gateway index. */
  perGateway: number[];
  /** First send, first response, last send, last response (performance.now() ms). */
  firstSend: number;
  firstResponse: number;
  lastSend: number;
  lastResponse: number;
  /** Anything other than a result or TG_RATE_LIMITED (must stay empty). */
  errors: string[];
}

/**
 * `callers` SDK clients (spread round-robin over the gateways) call `tool` as fast as they can for `seconds`, all as
 * `spiffeId`; returns what was admitted and refused, and the timing bounds of the run.
 */
export async function hammer(fleet: Fleet, opts: { callers: number; seconds: number; tool: string; spiffeId: string }): Promise<LoadResult> {
  const clients = await Promise.all(
    Array.from({ length: opts.callers }, (_, i) => connectClient(`${fleet.gateways[i % fleet.gateways.length]!.url}/mcp`, { headers: fleet.auth(opts.spiffeId) })),
  );
  // Warm each session up (JIT, connections) with a call no limit counts, so the timed run starts at full speed.
  await Promise.all(clients.map((c) => c.listTools()));
  const r: LoadResult = { admitted: 0, limited: 0, perGateway: fleet.gateways.map(() => 0), firstSend: Infinity, firstResponse: Infinity, lastSend: 0, lastResponse: 0, errors: [] };
  const start = performance.now();
  const deadline = start + opts.seconds * 1000;
  await Promise.all(
    clients.map(async (client, i) => {
      while (performance.now() < deadline) {
        const sent = performance.now();
        r.firstSend = Math.min(r.firstSend, sent);
        r.lastSend = Math.max(r.lastSend, sent);
        try {
          await client.callTool({ name: `tools__${opts.tool}`, arguments: { message: 'x' } });
          r.admitted++;
          r.perGateway[i % fleet.gateways.length]!++;
        } catch (err) {
          const code = err instanceof McpError ? (err.data as { code?: string } | undefined)?.code : undefined;
          if (code === 'TG_RATE_LIMITED') r.limited++;
          else r.errors.push(err instanceof Error ? err.message : String(err));
        }
        const received = performance.now();
        r.firstResponse = Math.min(r.firstResponse, received);
        r.lastResponse = Math.max(r.lastResponse, received);
      }
    }),
  );
  await Promise.all(clients.map((c) => c.close().catch(() => {})));
  return r;
}

/**
 * The most a bucket may admit in a run: every decision lies between the first send and the last response, and
 * GCRA admits at most burst + floor(rate * span) in a span (one more for where the span falls between refills).
 */
export function upperBound(r: LoadResult, rate: number, burst: number): { max: number; outerSeconds: number } {
  const outer = (r.lastResponse - r.firstSend) / 1000;
  return { max: burst + Math.floor(rate * outer) + 1, outerSeconds: outer };
}

/**
 * What the bucket's math admits for decisions taken at these server times (microseconds): the in-memory limiter
 * replayed over the arrival times Redis saw. Equal to what the shared limiter admitted, whatever the load did to
 * the arrivals (a starved machine leaves the bucket idle, and then admits less than burst + rate x time). A decision
 * that asked for a lease (`take` > 1) counts the units it was granted: the units Redis handed out.
 */
export function bucketMath(decisions: ReadonlyArray<number | { atUs: number; take: number }>, rate: number, burst: number): number {
  const counters = new MemoryCounters(() => 0);
  const intervalUs = Math.floor(1e6 / rate);
  const op = { kind: 'r' as const, key: 'k', intervalUs, toleranceUs: burst * intervalUs, cost: 1 };
  let units = 0;
  for (const d of decisions) {
    const v = typeof d === 'number' ? counters.decide([op], d) : counters.decide([{ ...op, take: d.take }], d.atUs);
    if (v.admitted) units += v.results[0]!.granted;
  }
  return units;
}
