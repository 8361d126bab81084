/**
 * Rate limits and budgets through the gateway with the official SDK client, real SVIDs and a real opa-built policy,
 * counters in memory (the embedded default: no Redis configured). Proves the refusal shapes (JSON-RPC error with
 * the retry hint in data, Retry-After and RateLimit headers), that the policy's `rate_class` selects the limit and
 * its `cost_multiplier` changes the charge, team keys from the SPIFFE path, the audit record and metrics, the admin
 * report and `tollgate limits show`, live reload, and a bad reload refused with its line.
 */
import { execFile } from 'node:child_process';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryLog } from '../../src/audit/query.ts';
import { GATEWAY_YAML, connectClient, eventually, mcpBackend, route, startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { rawPost } from '../helpers/raw-http.ts';
import { startToolServer, type ToolServer } from '../helpers/tool-server.ts';

const run = promisify(execFile);
const AGENT = 'spiffe://example.org/agents/a';
const OTHER = 'spiffe://example.org/agents/b';
const GOLD = 'spiffe://example.org/agents/gold';
const BRONZE = 'spiffe://example.org/agents/bronze';
const HEAVY = 'spiffe://example.org/agents/heavy';
const RED_1 = 'spiffe://example.org/teams/red/agent-1';
const RED_2 = 'spiffe://example.org/teams/red/agent-2';

const POLICY = `package tollgate

classes := {"${GOLD}": "gold", "${BRONZE}": "bronze"}

multipliers := {"${HEAVY}": 4}

obligations["rate_class"] := classes[input.principal.id]

obligations["cost_multiplier"] := multipliers[input.principal.id]

decision := {"allow": true, "obligations": obligations}

visible contains name if {
	some _, items in input.targets
	some _, name in items
}
`;

const LIMITS = `apiVersion: tollgate.dev/v1alpha1
kind: RateLimit
metadata: { name: per-agent }
spec:
  match: { operations: [tools/call], tools: [tools/echo] }
  key: [principal]
  requests: 3
  per: 1m
---
apiVersion: tollgate.dev/v1alpha1
kind: RateLimit
metadata: { name: gold }
spec: { match: { rateClasses: [gold], tools: [tools/ping] }, key: [principal], requests: 5, per: 1m }
---
apiVersion: tollgate.dev/v1alpha1
kind: RateLimit
metadata: { name: bronze }
spec: { match: { rateClasses: [bronze], tools: [tools/ping] }, key: [principal], requests: 1, per: 1m }
---
apiVersion: tollgate.dev/v1alpha1
kind: RateLimit
metadata: { name: team-calls }
spec: { match: { tools: [tools/team] }, key: [team], requests: 2, per: 1m }
---
apiVersion: tollgate.dev/v1alpha1
kind: Budget
metadata: { name: spend }
spec: { match: { tools: [tools/pricey] }, key: [principal], window: day, cost: 1.00 }
`;

let gw: TestGateway;
let tools: ToolServer;
const clients = new Map<string, Client>();

async function client(id: string): Promise<Client> {
  let c = clients.get(id);
  if (c === undefined) {
    c = await connectClient(`${gw.url}/mcp`, { headers: gw.authHeaders(id) });
    clients.set(id, c);
  }
  return c;
}

async function call(id: string, tool: string): Promise<'ok' | McpError> {
  try {
    await (await client(id)).callTool({ name: `tools__${tool}`, arguments: { message: 'x' } });
    return 'ok';
  } catch (err) {
    if (err instanceof McpError) return err;
    throw err;
  }
}

async function calls(id: string, tool: string, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = await call(id, tool);
    out.push(r === 'ok' ? 'ok' : String((r.data as { code?: string }).code));
  }
  return out;
}

function auditRecords(): Array<Record<string, unknown>> {
  return [...queryLog(join(gw.dir, '..', '.tollgate', 'audit'), { kinds: ['call'] })].map((l) => JSON.parse(l) as Record<string, unknown>);
}

beforeAll(async () => {
  tools = await startToolServer('tools', { echo: ['message'], ping: ['message'], pricey: ['message'], team: ['message'] });
  const root = join(process.cwd(), 'test-results', `limits-policy-${process.pid}`);
  mkdirSync(root, { recursive: true });
  writeFileSync(join(root, 'main.rego'), POLICY);
  const gatewayYaml = `${GATEWAY_YAML}  identity:
    dev: { enabled: true, trustDomain: example.org }
  policy: { dir: ${JSON.stringify(root)}, watch: false }
  limits:
    toolCosts: [{ tool: tools/pricey, cost: 0.25 }]
    teams: { spiffePath: "/teams/{team}/*" }
`;
  gw = await startTestGateway({ 'mcp.yaml': mcpBackend('tools', { url: tools.url }) + route('mcp', '/mcp', ['tools']), 'limits.yaml': LIMITS }, { gatewayYaml });
});

afterAll(async () => {
  for (const c of clients.values()) await c.close().catch(() => {});
  await gw?.stop();
  await tools?.close();
});

describe('limits through the gateway (in memory)', () => {
  it('refuses the call over the rate with TG_RATE_LIMITED and the retry hint in data; other callers are not affected', async () => {
    expect(await calls(AGENT, 'echo', 3)).toEqual(['ok', 'ok', 'ok']);
    const err = await call(AGENT, 'echo');
    expect(err).toBeInstanceOf(McpError);
    const e = err as McpError;
    expect(e.code).toBe(-32064);
    expect(e.message).toMatch(/Rate limit "per-agent" exceeded: 3 per 1 minutes|Rate limit "per-agent" exceeded: 3 per minute/);
    const data = e.data as { code: string; limit: string; retry_after: number; retry_after_ms: number; limits: Array<{ name: string; remaining: number }> };
    expect(data.code).toBe('TG_RATE_LIMITED');
    expect(data.limit).toBe('per-agent');
    // One unit refills every 20 s; the bucket was emptied a moment ago.
    expect(data.retry_after_ms).toBeGreaterThan(15_000);
    expect(data.retry_after_ms).toBeLessThanOrEqual(20_000);
    expect(data.retry_after).toBe(Math.ceil(data.retry_after_ms / 1000));
    expect(data.limits).toEqual([expect.objectContaining({ name: 'per-agent', remaining: 0, quota: 3, windowSeconds: 60 })]);
    expect(await calls(OTHER, 'echo', 3)).toEqual(['ok', 'ok', 'ok']);
    // The upstream never saw the refused call.
    expect(tools.calls.filter(([t]) => t === 'echo')).toHaveLength(6);
  });

  it('sends Retry-After and the IETF RateLimit-Policy / RateLimit fields with the refusal', async () => {
    const headers = { ...gw.authHeaders(AGENT), 'mcp-protocol-version': '2025-06-18' };
    const init = await rawPost(`${gw.url}/mcp`, { headers });
    const sid = init.headers['mcp-session-id'] as string;
    expect(sid).toBeTruthy();
    const body = JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'tools__echo', arguments: { message: 'x' } } });
    const res = await rawPost(`${gw.url}/mcp`, { headers: { ...headers, 'mcp-session-id': sid }, body });
    expect(res.status).toBe(200); // an in-band JSON-RPC error answering a well-formed request
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    expect(res.headers['ratelimit-policy']).toBe('"per-agent";q=3;w=60');
    expect(res.headers.ratelimit).toMatch(/^"per-agent";r=0;t=\d+$/);
    const text = res.body.includes('data:') ? res.body.split('\n').find((l) => l.startsWith('data:'))!.slice(5) : res.body;
    const msg = JSON.parse(text) as { id: number; error: { code: number; data: { code: string } } };
    expect(msg).toMatchObject({ id: 9, error: { code: -32064, data: { code: 'TG_RATE_LIMITED' } } });
  });

  it('applies the limit the policy selects with its rate_class obligation', async () => {
    expect(await calls(GOLD, 'ping', 6)).toEqual(['ok', 'ok', 'ok', 'ok', 'ok', 'TG_RATE_LIMITED']);
    expect(await calls(BRONZE, 'ping', 2)).toEqual(['ok', 'TG_RATE_LIMITED']);
    // No class, no limit on this tool.
    expect(await calls(OTHER, 'ping', 7)).toEqual(Array(7).fill('ok'));
  });

  it('charges the policy cost_multiplier against the budget', async () => {
    // 0.25 per call against 1.00 a day: four calls; at x4 one call uses the whole budget.
    expect(await calls(AGENT, 'pricey', 5)).toEqual(['ok', 'ok', 'ok', 'ok', 'TG_BUDGET_EXCEEDED']);
    expect(await calls(HEAVY, 'pricey', 2)).toEqual(['ok', 'TG_BUDGET_EXCEEDED']);
    const err = (await call(HEAVY, 'pricey')) as McpError;
    expect(err.code).toBe(-32065);
    expect(err.message).toMatch(/Budget "spend" exceeded: 1 of 1 USD used this day \(\d{4}-\d{2}-\d{2}\); this call reserves 1 USD; it resets in \d+s/);
  });

  it('keys by team from the SPIFFE path mapping: two agents of one team share its limit', async () => {
    expect(await calls(RED_1, 'team', 1)).toEqual(['ok']);
    expect(await calls(RED_2, 'team', 2)).toEqual(['ok', 'TG_RATE_LIMITED']);
    expect(await calls(RED_1, 'team', 1)).toEqual(['TG_RATE_LIMITED']);
  });

  it('records usage and the limit decision in the audit log', async () => {
    let records: Array<Record<string, unknown>> = [];
    await eventually(() => {
      records = auditRecords().filter((r) => r.principal === HEAVY && (r.target as { name?: string } | undefined)?.name === 'tools__pricey');
      return records.length >= 3;
    }, 10_000, 'audit records of the heavy agent');
    const [first, second] = records;
    expect(first).toMatchObject({ outcome: 'ok', usage: { cost: 1 }, limit: { decision: 'admitted', store: 'memory', limits: ['spend'], reserved: { cost: 1 }, charged: { cost: 1, multiplier: 4 }, settle: 'ok' } });
    expect(second).toMatchObject({ outcome: 'limited', code: 'TG_BUDGET_EXCEEDED', limit: { decision: 'budget_exceeded', refused: 'spend' } });
    const limited = auditRecords().find((r) => r.principal === AGENT && r.code === 'TG_RATE_LIMITED');
    expect(limited).toMatchObject({ outcome: 'limited', limit: { decision: 'rate_limited', refused: 'per-agent', store: 'memory' } });
  });

  it('counts refusals and decisions per limit family in /metrics', async () => {
    const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    const value = (re: RegExp): number => Number(re.exec(text)?.[1] ?? 'NaN');
    expect(value(/^tollgate_limit_rejections_total\{protocol="mcp",route="mcp",code="TG_RATE_LIMITED"\} (\d+)/m)).toBeGreaterThanOrEqual(5);
    expect(value(/^tollgate_limit_rejections_total\{protocol="mcp",route="mcp",code="TG_BUDGET_EXCEEDED"\} (\d+)/m)).toBeGreaterThanOrEqual(3);
    expect(value(/^tollgate_rate_limit_decisions_total\{limit="per-agent",decision="admitted"\} (\d+)/m)).toBe(6);
    expect(value(/^tollgate_rate_limit_decisions_total\{limit="gold",decision="limited"\} (\d+)/m)).toBe(1);
    expect(value(/^tollgate_budget_decisions_total\{budget="spend",decision="reserved"\} (\d+)/m)).toBe(5);
    expect(value(/^tollgate_budget_charged_total\{budget="spend",unit="cost"\} ([\d.]+)/m)).toBe(2);
  });

  it('shows usage and what is left per limit on the admin endpoint and with `tollgate limits show`', async () => {
    const res = await fetch(`${gw.adminUrl}/limits?principal=${encodeURIComponent(HEAVY)}`);
    expect(res.status).toBe(200);
    const report = (await res.json()) as { store: string; limits: Array<{ name: string; kind: string; counters: Array<Record<string, unknown>> }> };
    expect(report.store).toBe('memory');
    const spend = report.limits.find((l) => l.name === 'spend')!;
    expect(spend.counters).toEqual([{ key: { principal: HEAVY }, cost: { used: '1', remaining: '0' } }]);
    // Limits keyed by team are not about a principal filter; per-principal ones show only this principal's counters.
    expect(report.limits.map((l) => l.name).sort()).toEqual(['bronze', 'gold', 'per-agent', 'spend']);
    expect(report.limits.find((l) => l.name === 'per-agent')!.counters).toEqual([]);
    const team = (await (await fetch(`${gw.adminUrl}/limits?team=red`)).json()) as typeof report;
    expect(team.limits.find((l) => l.name === 'team-calls')!.counters).toEqual([expect.objectContaining({ key: { team: 'red' }, remaining: 0 })]);
    const cli = await run(process.execPath, ['bin/tollgate.mjs', 'limits', 'show', '--url', gw.adminUrl!, '--principal', AGENT]);
    expect(cli.stdout).toContain('rate per-agent: 3 per 60s, burst 3');
    expect(cli.stdout).toMatch(new RegExp(`principal=${AGENT}  remaining 0/3  full in \\d+ ms`));
    expect(cli.stdout).toMatch(new RegExp(`budget spend: 1 USD per day .*\\n  principal=${AGENT}  cost 1 used, 0 left`));
  });

  it('reloads limits live, and refuses a bad reload with its line while the limits in force stay', async () => {
    gw.write('limits.yaml', LIMITS.replace('requests: 3\n  per: 1m', 'requests: 3\n  per: 1m\n  burst: 100'));
    await eventually(async () => (await call(AGENT, 'echo')) === 'ok', 10_000, 'the raised burst in force');
    gw.write('broken.yaml', 'apiVersion: tollgate.dev/v1alpha1\nkind: RateLimit\nmetadata: { name: broken }\nspec:\n  key: [principal, arguments.path]\n  requests: 0\n  burst: 0\n');
    let rejected: { issues: Array<{ line: number; message: string }> } | undefined;
    await eventually(async () => {
      const r = (await (await fetch(`${gw.adminUrl}/readyz`)).json()) as { config: { rejected?: typeof rejected } };
      rejected = r.config.rejected;
      return rejected !== undefined;
    }, 10_000, 'the broken file refused');
    const messages = rejected!.issues.map((i) => `${i.line}: ${i.message}`);
    expect(messages).toContain('5: spec.key.1: "arguments.path" is not a key dimension (one of principal, team, route, upstream, tool, model, rate_class, skill): keying on a free-form value such as a tool argument or a header would let callers create counters without bound');
    expect(messages).toContain('6: spec.requests: a rate of 0 with a burst of 0 admits nothing: deny such calls with policy instead');
    expect(await call(AGENT, 'echo')).toBe('ok');
  });
});
