/**
 * Policy decisions in the audit log: with the committed default bundle deciding, every evaluation (calls and list
 * filtering) leaves exactly one `decision` record with its masked input and bundle revision, denials are found by
 * `--decision deny`, and arguments a policy obligation names are redacted from both the call and the decision record.
 */
import { join } from 'node:path';
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../../src/audit/format.ts';
import { queryLog } from '../../src/audit/query.ts';
import { verifyLog } from '../../src/audit/verify.ts';
import type { DecisionEvent } from '../../src/guards/policy/decision-log.ts';
import { EVERYTHING_STDIO, GATEWAY_YAML, connectClient, mcpBackend, route, startTestGateway, type TestGateway } from '../helpers/gateway.ts';

const SUPPORT = 'spiffe://example.org/agents/support';
let gw: TestGateway;
let dir: string;
const events: DecisionEvent[] = [];
let records: AuditRecord[] = [];

beforeAll(async () => {
  gw = await startTestGateway(
    { 'mcp.yaml': mcpBackend('everything', EVERYTHING_STDIO) + route('mcp', '/mcp', ['everything']) },
    {
      gatewayYaml: `${GATEWAY_YAML}  identity:
    dev: { enabled: true, trustDomain: example.org }
  policy:
    bundle: ${JSON.stringify(join(process.cwd(), 'bundles/tollgate.tar.gz'))}
`,
    },
  );
  dir = join(gw.dir, '..', '.tollgate', 'audit');
  gw.services.policy.decisionLog.subscribe((e) => events.push(e));
  const support = await connectClient(`${gw.url}/mcp`, { headers: gw.authHeaders(SUPPORT) });
  await support.callTool({ name: 'everything__echo', arguments: { message: 'hi', credentials: 'hunter2-credentials' } });
  // Hidden from support: answered like an unknown tool, recorded as the denial it is.
  await expect(support.callTool({ name: 'everything__get-env', arguments: {} })).rejects.toMatchObject({ code: -32602 });
  await support.listTools();
  // Listed again: the filter's answer is memoized; its decision record names the evaluation it reuses.
  await support.listTools();
  await support.close();
  await gw.shutdown();
  records = [...queryLog(dir, {})].map((l) => JSON.parse(l) as AuditRecord);
});

afterAll(async () => {
  await gw?.stop();
});

describe('policy decisions in the audit log', () => {
  it('has one decision record per policy evaluation, list filtering included', () => {
    const decisions = records.filter((r) => r.kind === 'decision');
    expect(events.length).toBeGreaterThanOrEqual(5); // initialize, echo, get-env (+ its visibility), tools/list (+ its filtering)
    expect(decisions.map((r) => r.decision!.id).sort()).toEqual(events.map((e) => e.decision_id).sort());
    const visiblePath = events.find((e) => e.path.endsWith('visible'))?.path;
    const visible = decisions.filter((r) => (r.policy as { path: string }).path === visiblePath).map((r) => r.operation);
    expect(visible).toEqual(['tools/call', 'tools/list', 'tools/list']);
    for (const r of decisions) {
      expect(r.principal).toBe(SUPPORT);
      expect((r.policy as { revision: string }).revision).toMatch(/^src-/);
    }
    expect(verifyLog(dir).ok).toBe(true);
  });

  it('records a memoized list filter as a decision that names the evaluation it reuses, without copying its input', () => {
    const visiblePath = events.find((e) => e.path.endsWith('visible'))!.path;
    const lists = records.filter((r) => r.kind === 'decision' && r.operation === 'tools/list' && (r.policy as { path: string }).path === visiblePath);
    expect(lists).toHaveLength(2);
    const [evaluated, memoized] = lists as [AuditRecord, AuditRecord];
    const first = evaluated.policy as { input: { principal: { id: string }; targets: Record<string, Record<string, string>> }; result: unknown; memoOf?: string };
    expect(first.memoOf).toBeUndefined();
    expect(first.input.principal.id).toBe(SUPPORT);
    expect(Object.values(first.input.targets.everything!)).toContain('everything__echo');
    expect(first.result).toBeDefined();
    expect(memoized.policy).toEqual({ path: (evaluated.policy as { path: string }).path, revision: (evaluated.policy as { revision: string }).revision, source: (evaluated.policy as { source: string }).source, evalNs: expect.any(Number), memoOf: evaluated.decision!.id });
    expect(memoized.decision!.id).not.toBe(evaluated.decision!.id);
    expect(memoized.decision!.allow).toBe(true);
  });

  it('finds the denial, as a decision and as a call', () => {
    const denied = [...queryLog(dir, { decision: 'deny' })].map((l) => JSON.parse(l) as AuditRecord);
    expect(denied.map((r) => [r.kind, r.target?.name])).toEqual([
      ['decision', 'everything__get-env'],
      ['call', 'everything__get-env'],
    ]);
    expect(denied[1]).toMatchObject({ outcome: 'denied', code: 'TG_MCP_UNKNOWN_TOOL', decision: { allow: false, reason: `${SUPPORT} may not use tool everything__get-env` } });
    expect(denied[0]!.decision!.id).toBe(denied[1]!.decision!.id);
  });

  it('redacts what the policy obligation names, in the call record and the decision input', () => {
    const call = records.find((r) => r.kind === 'call' && r.target?.name === 'everything__echo')!;
    expect(call.args).toEqual({ message: 'hi', credentials: '[REDACTED]' });
    const decision = records.find((r) => r.kind === 'decision' && r.decision!.id === call.decision!.id)!;
    const input = (decision.policy as { input: { target: { arguments: Record<string, unknown> } }; erased: string[] });
    expect(input.erased).toEqual(['/target/arguments/credentials']);
    expect(input.input.target.arguments).toEqual({ message: 'hi' });
    const raw = readdirSync(dir).filter((f) => f.endsWith('.jsonl')).map((f) => readFileSync(join(dir, f), 'utf8')).join('');
    expect(raw).not.toContain('hunter2-credentials');
  });
});
