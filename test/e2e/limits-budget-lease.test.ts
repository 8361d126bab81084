/**
 * Budget leases across TWO gateway processes sharing one Redis (real SDK clients, real JWTs, a real tool server):
 * a cost budget of 200 tool calls (toolCosts), spent by six concurrent callers spread over both replicas.
 * - never more than the budget: at most 200 calls admitted, whatever the leases held;
 * - leases served calls (fewer decision scripts than calls);
 * - the replicas drain (SIGTERM): what they held goes back, so the Redis counter equals exactly what was spent;
 * - a second fleet on the same Redis then spends what is left: the budget's edge is exact (200 calls in all, the
 *   counter equals the budget), refused with TG_BUDGET_EXCEEDED as without leases;
 * - another principal's calls never ride on the first one's leases (its own counter, refused at its own edge).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { connectClient } from '../helpers/gateway.ts';
import { startFleet, type Fleet } from '../helpers/limits-fleet.ts';
import { keysOn, startRedis, type RedisServer } from '../helpers/redis.ts';
import { startToolServer, type ToolServer } from '../helpers/tool-server.ts';

const CALLS = 200;
const NANOS_PER_CALL = 1_000_000; // 0.001 per call
const DOCS = `apiVersion: tollgate.dev/v1alpha1
kind: Budget
metadata: { name: spend }
spec: { match: { tools: [tools/echo] }, key: [principal], window: day, cost: ${(CALLS * NANOS_PER_CALL) / 1e9}, failMode: closed }
`;
// Chunks of up to 8 reservations, at most 20% of what remains; 10 s: only the drain gives them back here.
const LIMITS_YAML = `    toolCosts: [{ tool: tools/echo, cost: 0.001 }]
    lease: { budgets: { reservations: 8, share: 0.2, lifetime: 10s } }
`;

let tools: ToolServer;
let redis: RedisServer;
beforeAll(async () => {
  tools = await startToolServer('tools', { echo: ['message'] });
  redis = await startRedis();
});
afterAll(async () => {
  await tools?.close();
  await redis?.stop();
});

const fleetOf = (): Promise<Fleet> => startFleet({ replicas: 2, toolUrl: tools.url, redisYaml: `    url: ${redis.url}\n    commandTimeoutMs: 2000\n`, limitsYaml: LIMITS_YAML, docs: DOCS });

function scripts(): number {
  const info = execFileSync('redis-cli', ['-p', String(redis.port), 'info', 'commandstats'], { encoding: 'utf8' });
  let n = 0;
  for (const m of info.matchAll(/^cmdstat_(evalsha|eval):calls=(\d+)/gm)) n += Number(m[2]);
  return n;
}

function spent(agent: string): number {
  const keys = keysOn(redis.port, `*spend*${agent}*`);
  expect(keys.length).toBeLessThanOrEqual(1);
  if (keys.length === 0) return 0;
  return Number(execFileSync('redis-cli', ['-p', String(redis.port), 'get', keys[0]!], { encoding: 'utf8' }).trim() || 0);
}

/** `callers` clients over the fleet call echo until each is refused; returns the calls admitted and the refusal codes. */
async function spendAll(fleet: Fleet, agent: string, callers: number): Promise<{ admitted: number; codes: Set<string> }> {
  const spiffeId = `spiffe://example.org/agents/${agent}`;
  const clients: Client[] = await Promise.all(Array.from({ length: callers }, (_, i) => connectClient(`${fleet.gateways[i % fleet.gateways.length]!.url}/mcp`, { headers: fleet.auth(spiffeId) })));
  let admitted = 0;
  const codes = new Set<string>();
  await Promise.all(
    clients.map(async (client) => {
      for (;;) {
        try {
          await client.callTool({ name: 'tools__echo', arguments: { message: 'x' } });
          admitted++;
        } catch (err) {
          codes.add(err instanceof McpError ? String((err.data as { code?: string } | undefined)?.code) : String(err));
          return;
        }
      }
    }),
  );
  await Promise.all(clients.map((c) => c.close().catch(() => {})));
  return { admitted, codes };
}

describe('a cost budget leased by two gateway processes', () => {
  it('never spends more than the budget, gives leases back at drain, and spends it exactly', async () => {
    const first = await fleetOf();
    let one: { admitted: number; codes: Set<string> };
    let scriptsRun: number;
    let bobAdmitted = 0;
    try {
      const before = scripts();
      one = await spendAll(first, 'ann', 6);
      scriptsRun = scripts() - before;
      // Isolation: Bob has his own counter; Ann's leases (held in both replicas) never serve him.
      const bob = await spendAll(first, 'bob', 2);
      bobAdmitted = bob.admitted;
      expect(bob.admitted).toBeLessThanOrEqual(CALLS);
      expect([...bob.codes]).toEqual(['TG_BUDGET_EXCEEDED']);
    } finally {
      await first.stop();
    }
    process.stdout.write(`[budget lease] fleet 1: ${one.admitted} calls admitted with ${scriptsRun} scripts; refused with ${[...one.codes].join(',')}\n`);
    expect(one.admitted).toBeLessThanOrEqual(CALLS);
    expect(one.admitted).toBeGreaterThan(CALLS / 2);
    expect([...one.codes]).toEqual(['TG_BUDGET_EXCEEDED']);
    expect(scriptsRun).toBeLessThan(one.admitted);
    // The drain gave back what both replicas held: Redis counts exactly what the admitted calls cost.
    expect(spent('ann')).toBe(one.admitted * NANOS_PER_CALL);
    expect(spent('bob')).toBe(bobAdmitted * NANOS_PER_CALL);
    const second = await fleetOf();
    try {
      const two = await spendAll(second, 'ann', 2);
      expect(one.admitted + two.admitted).toBe(CALLS);
      expect([...two.codes]).toEqual(['TG_BUDGET_EXCEEDED']);
    } finally {
      await second.stop();
    }
    expect(spent('ann')).toBe(CALLS * NANOS_PER_CALL);
  }, 120_000);
});
