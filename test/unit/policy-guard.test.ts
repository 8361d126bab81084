import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { Errors, GatewayError } from '../../src/core/errors.ts';
import { readBundle } from '../../src/guards/policy/bundle.ts';
import { DecisionLog, type DecisionEvent } from '../../src/guards/policy/decision-log.ts';
import { PolicyEngine } from '../../src/guards/policy/engine.ts';
import { VisibleMemo } from '../../src/guards/policy/visible-memo.ts';
import { PolicyGuard, type PolicyRuntime } from '../../src/guards/policy/guard.ts';
import { ANONYMOUS } from '../../src/guards/identity/guard.ts';
import { InputBuilder } from '../../src/guards/policy/input.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { makeCall, spiffe, tool } from '../helpers/calls.ts';
import { buildEngine } from '../helpers/policy.ts';

const log = createLogger('silent');
const DEV = spiffe('spiffe://dev.tollgate.local/alice');
const SUPPORT = spiffe('spiffe://example.org/agents/support');
const OPS = spiffe('spiffe://example.org/agents/ops');
const TOLLGATE_INPUT = { shape: 'tollgate' as const, headers: ['x-tenant'], claims: 'all' as const, dropArguments: ['messages'] };

function runtime(engine: PolicyEngine | undefined): PolicyRuntime & { decisionLog: DecisionLog } {
  return { engine, decisionLog: new DecisionLog(log), log };
}

function guardFor(rt: PolicyRuntime, mask: string[] = []): PolicyGuard {
  return new PolicyGuard({ runtime: rt, inputs: new InputBuilder(TOLLGATE_INPUT), entrypoints: { decision: 'tollgate/decision', visible: 'tollgate/visible' }, mask });
}

function memoGuard(rt: PolicyRuntime, memo: VisibleMemo): PolicyGuard {
  return new PolicyGuard({ runtime: rt, inputs: new InputBuilder(TOLLGATE_INPUT), entrypoints: { decision: 'tollgate/decision', visible: 'tollgate/visible' }, mask: [], visibleMemo: memo });
}

function refusal(fn: () => unknown): GatewayError {
  try {
    fn();
  } catch (err) {
    if (err instanceof GatewayError) return err;
    throw err;
  }
  throw new Error('expected a refusal');
}

describe('policy guard with the default policies (committed bundle)', () => {
  let engine: PolicyEngine;
  beforeAll(async () => {
    engine = await PolicyEngine.load(await readBundle(readFileSync('bundles/tollgate.tar.gz'), { source: 'bundles/tollgate.tar.gz' }), {
      initialPages: 16,
      maxPages: 512,
    });
  });

  it('allows a granted call and attaches the decision with its obligations', () => {
    const call = makeCall({ operation: 'tools/call', target: tool('everything', 'echo'), args: { message: 'hi' }, principal: DEV });
    guardFor(runtime(engine)).admit(call);
    expect(call.decision).toMatchObject({ allow: true, reason: undefined, obligations: { rate_class: 'dev' } });
    expect(call.decision!.id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('denies with the policy reason, a stable code and the decision id', () => {
    const call = makeCall({ operation: 'tools/call', target: tool('everything', 'get-env'), args: {}, principal: SUPPORT });
    const err = refusal(() => guardFor(runtime(engine)).admit(call));
    expect(err.def).toBe(Errors.POLICY_DENIED);
    expect(err.message).toBe('spiffe://example.org/agents/support may not use tool everything__get-env');
    expect(err.data).toEqual({ decision_id: call.decision!.id });
    expect(call.decision).toMatchObject({ allow: false, reason: err.message });
  });

  it('denies anonymous calls (default deny)', () => {
    const call = makeCall({ operation: 'tools/call', target: tool('everything', 'echo'), args: {} });
    expect(refusal(() => guardFor(runtime(engine)).admit(call)).message).toBe("an anonymous caller has no grant");
    // What a route with auth.anonymous really gives the policy: the ANONYMOUS principal (policies/README.md).
    const anon = makeCall({ operation: 'tools/call', target: tool('everything', 'echo'), args: {}, principal: ANONYMOUS });
    expect(JSON.parse(new InputBuilder(TOLLGATE_INPUT).forCall(anon)).principal).toEqual({
      id: 'anonymous',
      issuer: 'anonymous',
      trust_domain: '',
      path: '',
      segments: [],
      claims: {},
    });
    expect(refusal(() => guardFor(runtime(engine)).admit(anon)).message).toBe('an anonymous caller has no grant');
  });

  it('enforces argument rules at call time', () => {
    const g = guardFor(runtime(engine));
    g.admit(makeCall({ operation: 'tools/call', target: tool('files', 'read_file'), args: { path: '/srv/shared/a.txt' }, principal: OPS }));
    const err = refusal(() => g.admit(makeCall({ operation: 'tools/call', target: tool('files', 'read_file'), args: { path: '/srv/shared/../../etc/passwd' }, principal: OPS })));
    expect(err.message).toBe('files__read_file: path /srv/shared/../../etc/passwd is outside /srv/shared/');
    const drop = refusal(() => g.admit(makeCall({ operation: 'tools/call', target: tool('db', 'query'), args: { sql: 'drop table users' }, principal: OPS })));
    expect(drop.message).toBe('db__query: DROP statements are not allowed');
  });

  it('enforces the model allow-list and max_tokens cap, dropping bulky content from the input', () => {
    const g = guardFor(runtime(engine));
    const target = { kind: 'model' as const, name: 'llama-3.1-8b-instruct', server: 'vllm', local: 'llama-3.1-8b-instruct' };
    const ok = makeCall({ protocol: 'openai', operation: 'chat.completions', target, args: { max_tokens: 100, messages: [{ role: 'user', content: 'x'.repeat(10_000) }] }, principal: SUPPORT });
    g.admit(ok);
    expect(ok.decision?.obligations).toEqual({ rate_class: 'standard', cost_multiplier: 1 });
    const big = makeCall({ protocol: 'openai', operation: 'chat.completions', target, args: { max_tokens: 100_000 }, principal: SUPPORT });
    expect(refusal(() => g.admit(big)).message).toBe('max_tokens 100000 exceeds the cap of 4096 for model llama-3.1-8b-instruct');
  });

  it('filters a 500-item list with one evaluation, summarising the batch in call.decision', () => {
    const targets = [tool('everything', 'echo'), tool('everything', 'get-env'), ...Array.from({ length: 498 }, (_, i) => tool('bulk', `tool-${i}`))];
    const call = makeCall({ operation: 'tools/list', principal: SUPPORT });
    const seen = guardFor(runtime(engine)).visible(call, targets);
    expect(seen.filter(Boolean)).toHaveLength(1);
    expect(seen[0]).toBe(true);
    expect(call.decision?.obligations).toMatchObject({ shown: 1 });
    expect((call.decision?.obligations?.hidden as string[]).length).toBe(499);
    const devCall = makeCall({ operation: 'tools/list', principal: DEV });
    expect(guardFor(runtime(engine)).visible(devCall, targets).every(Boolean)).toBe(true);
  });

  it('lists names that need JSON escaping correctly', () => {
    const odd = [tool('everything', 'we"ird\\name'), tool('everything', 'tab\there'), tool('everything', 'echo')];
    const seen = guardFor(runtime(engine)).visible(makeCall({ operation: 'tools/list', principal: DEV }), odd);
    expect(seen).toEqual([true, true, true]);
    const support = guardFor(runtime(engine)).visible(makeCall({ operation: 'tools/list', principal: SUPPORT }), odd);
    expect(support).toEqual([false, false, true]);
  });

  it('publishes decision-log events with masking, redactions, bundle revision and trace id', () => {
    const rt = runtime(engine);
    const events: DecisionEvent[] = [];
    rt.decisionLog.subscribe((e) => events.push(e));
    const call = makeCall({
      operation: 'tools/call',
      target: tool('everything', 'echo'),
      args: { message: 'hi', api_key: 'sk-secret', nested: { pin: '1234' } },
      principal: DEV,
      headers: { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', 'x-tenant': 'acme' },
    });
    guardFor(rt, ['/target/arguments/nested/pin']).admit(call);
    expect(events).toHaveLength(1);
    const e = events[0]!;
    expect(e).toMatchObject({
      decision_id: call.decision!.id,
      path: 'tollgate/decision',
      allow: true,
      bundles: { tollgate: { revision: engine.revision } },
      trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
      call_id: call.id,
    });
    expect([...e.erased].sort()).toEqual(['/target/arguments/api_key', '/target/arguments/nested/pin']);
    const input = e.input as { target: { arguments: Record<string, unknown> }; request: { headers: Record<string, string> } };
    expect(input.target.arguments).toEqual({ message: 'hi', nested: {} });
    expect(input.request.headers).toEqual({ 'x-tenant': 'acme' });
    expect(call.decision?.obligations?.redact).toEqual(['/api_key']);
  });

  it('memoizes a list filter per policy engine and whole input but its time; a memoized answer is still a logged decision', async () => {
    const rt = runtime(engine);
    const events: DecisionEvent[] = [];
    rt.decisionLog.subscribe((e) => events.push(e));
    const memo = new VisibleMemo(100, 60_000);
    const g = memoGuard(rt, memo);
    const odd = [tool('everything', 'echo'), tool('everything', 'get-env'), tool('files', 'read_file')];
    const list = (principal = SUPPORT, headers: Record<string, string> = {}) => makeCall({ operation: 'tools/list', principal, headers });
    const first = list();
    expect(g.visible(first, odd)).toEqual([true, false, false]);
    expect(events.at(-1)!.memo_of).toBeUndefined();
    expect(memo.size).toBe(1);

    // Same principal, same tools, a moment later: the answer of the first evaluation, a decision of its own.
    const again = list();
    expect(g.visible(again, odd)).toEqual([true, false, false]);
    const hit = events.at(-1)!;
    expect(hit.memo_of).toBe(first.decision!.id);
    expect(hit.decision_id).toBe(again.decision!.id);
    expect(again.decision!.id).not.toBe(first.decision!.id);
    expect(again.decision!.obligations).toEqual({ hidden: ['everything__get-env', 'files__read_file'], shown: 1 });
    expect(JSON.parse(hit.inputJson).principal.id).toBe('spiffe://example.org/agents/support');
    // The hit's input is the evaluated one but its time, built only because a listener read it.
    const evaluated = JSON.parse(events.at(-2)!.inputJson) as Record<string, { time_ns?: number }>;
    const reused = JSON.parse(hit.inputJson) as Record<string, { time_ns?: number }>;
    expect(reused.request!.time_ns).toBe(again.startedAt * 1_000_000);
    expect({ ...reused, request: { ...reused.request, time_ns: 0 } }).toEqual({ ...evaluated, request: { ...evaluated.request, time_ns: 0 } });
    // Another array with the same targets (a list built afresh) is the same key; other content is not.
    expect(g.visible(list(), odd.map((t) => ({ ...t })))).toEqual([true, false, false]);
    expect(events.at(-1)!.memo_of).toBe(first.decision!.id);
    expect(g.visible(list(), [tool('everything', 'get-env'), tool('everything', 'echo'), tool('files', 'read_file')])).toEqual([false, true, false]);
    expect(events.at(-1)!.memo_of).toBeUndefined();
    expect(memo.size).toBe(2);

    // Anything else in the input is another key: another principal, other targets, a configured header, the source.
    expect(g.visible(list(DEV), odd)).toEqual([true, true, true]);
    expect(events.at(-1)!.memo_of).toBeUndefined();
    expect(g.visible(list(), odd.slice(1))).toEqual([false, false]);
    expect(events.at(-1)!.memo_of).toBeUndefined();
    expect(g.visible(list(SUPPORT, { 'x-tenant': 'acme' }), odd)).toEqual([true, false, false]);
    expect(events.at(-1)!.memo_of).toBeUndefined();
    const elsewhere = list();
    (elsewhere.request as { remoteAddress: string }).remoteAddress = '10.0.0.9';
    g.visible(elsewhere, odd);
    expect(events.at(-1)!.memo_of).toBeUndefined();
    expect(memo.size).toBe(6);

    // A new policy revision (a new engine) starts from an empty memo.
    const next = await PolicyEngine.load(await readBundle(readFileSync('bundles/tollgate.tar.gz'), { source: 'bundles/tollgate.tar.gz' }), { initialPages: 16, maxPages: 512 });
    const rt2 = { ...rt, engine: next };
    memoGuard(rt2, memo).visible(list(), odd);
    expect(events.at(-1)!.memo_of).toBeUndefined();
    expect(memo.size).toBe(1);
  });

  it('the list memo expires after its TTL, is bounded (least recently used first), and ttlMs 0 turns it off', async () => {
    const rt = runtime(engine);
    const events: DecisionEvent[] = [];
    rt.decisionLog.subscribe((e) => events.push(e));
    const targets = [tool('everything', 'echo')];
    const short = memoGuard(rt, new VisibleMemo(100, 5));
    short.visible(makeCall({ operation: 'tools/list', principal: DEV }), targets);
    await new Promise((r) => setTimeout(r, 20));
    short.visible(makeCall({ operation: 'tools/list', principal: DEV }), targets);
    expect(events.at(-1)!.memo_of).toBeUndefined();

    const small = new VisibleMemo(2, 60_000);
    const g = memoGuard(rt, small);
    const who = ['a', 'b', 'c'].map((n) => spiffe(`spiffe://dev.tollgate.local/${n}`));
    g.visible(makeCall({ operation: 'tools/list', principal: who[0]! }), targets);
    g.visible(makeCall({ operation: 'tools/list', principal: who[1]! }), targets);
    g.visible(makeCall({ operation: 'tools/list', principal: who[0]! }), targets); // a: used again
    g.visible(makeCall({ operation: 'tools/list', principal: who[2]! }), targets); // evicts b
    expect(small.size).toBe(2);
    g.visible(makeCall({ operation: 'tools/list', principal: who[0]! }), targets);
    expect(events.at(-1)!.memo_of).toBeDefined();
    g.visible(makeCall({ operation: 'tools/list', principal: who[1]! }), targets);
    expect(events.at(-1)!.memo_of).toBeUndefined();

    const off = new VisibleMemo(100, 0);
    const g0 = memoGuard(rt, off);
    g0.visible(makeCall({ operation: 'tools/list', principal: DEV }), targets);
    g0.visible(makeCall({ operation: 'tools/list', principal: DEV }), targets);
    expect(events.at(-1)!.memo_of).toBeUndefined();
    expect(off.size).toBe(0);
  });

  it('decision events carry the input as JSON text: unmasked as evaluated, masked with nothing of what was erased', () => {
    const rt = runtime(engine);
    const events: DecisionEvent[] = [];
    rt.decisionLog.subscribe((e) => events.push(e));
    const plain = makeCall({ operation: 'tools/call', target: tool('everything', 'echo'), args: { message: 'hi' }, principal: DEV });
    const before = Date.now();
    guardFor(rt).admit(plain);
    const e = events[0]!;
    expect(e.erased).toEqual([]);
    expect(JSON.parse(e.inputJson)).toEqual(e.input);
    expect((e.input as { target: { arguments: unknown } }).target.arguments).toEqual({ message: 'hi' });
    expect(e.time).toBeGreaterThanOrEqual(before);
    expect(Date.parse(e.timestamp)).toBe(e.time);
    // JSON.stringify(event) gives OPA's decision-log fields.
    expect(JSON.parse(JSON.stringify(e))).toMatchObject({ decision_id: plain.decision!.id, path: 'tollgate/decision', allow: true, input: { target: { arguments: { message: 'hi' } } } });

    const secret = makeCall({ operation: 'tools/call', target: tool('everything', 'echo'), args: { message: 'hi', api_key: 'sk-secret', nested: { pin: '1234' } }, principal: DEV });
    guardFor(rt, ['/target/arguments/nested/pin']).admit(secret);
    const m = events[1]!;
    expect(m.inputJson).not.toContain('sk-secret');
    expect(m.inputJson).not.toContain('1234');
    expect(JSON.parse(m.inputJson).target.arguments).toEqual({ message: 'hi', nested: {} });
  });

  it('a route may disable policy explicitly or use another entrypoint', async () => {
    const g = guardFor(runtime(engine));
    const spec = { rules: [{ matches: [{ path: { type: 'PathPrefix' as const, value: '/open' }, headers: [] }], backendRefs: [{ name: 'everything' }] }] };
    const open = makeCall({ operation: 'tools/call', target: tool('everything', 'get-env'), route: { name: 'open', spec: { ...spec, policy: { enabled: false } } } });
    g.admit(open);
    expect(open.decision).toBeUndefined();
    const strict = makeCall({ operation: 'tools/call', target: tool('everything', 'echo'), principal: DEV, route: { name: 'strict', spec: { ...spec, policy: { enabled: true, entrypoints: { decision: 'tollgate/nope' } } } } });
    expect(refusal(() => g.admit(strict)).def).toBe(Errors.POLICY_ERROR);
  });
});

describe('policy guard fails closed', () => {
  const cases: Array<[string, string]> = [
    ['a non-boolean allow', 'decision := {"allow": "yes"}'],
    ['an undefined decision', 'decision := {"allow": true} if input.never'],
    ['a number', 'decision := 1'],
    ['conflicting values', 'decision := {"allow": true} if input.protocol == "mcp"\n\ndecision := {"allow": false} if input.operation == "tools/call"'],
  ];
  for (const [what, rego] of cases) {
    it(`denies on ${what} with TG_POLICY_ERROR and keeps serving`, async () => {
      const engine = await buildEngine({ 'tollgate/main.rego': `package tollgate\n\n${rego}\n\nvisible contains "x" if false\n` }, ['tollgate/decision', 'tollgate/visible']);
      const rt = runtime(engine);
      const events: DecisionEvent[] = [];
      rt.decisionLog.subscribe((e) => events.push(e));
      const call = makeCall({ operation: 'tools/call', target: tool('everything', 'echo'), principal: DEV });
      const err = refusal(() => guardFor(rt).admit(call));
      expect(err.def).toBe(Errors.POLICY_ERROR);
      expect(err.message).toBe(Errors.POLICY_ERROR.message);
      expect(call.decision).toMatchObject({ allow: false });
      expect(events[0]?.error).toBeTruthy();
      expect(events[0]?.allow).toBe(false);
    });
  }

  it('denies when no policy is loaded', () => {
    const err = refusal(() => guardFor(runtime(undefined)).admit(makeCall({ operation: 'ping', principal: DEV })));
    expect(err.def).toBe(Errors.POLICY_ERROR);
  });

  it('a list whose visible rule is not a set of names is refused', async () => {
    const engine = await buildEngine({ 'tollgate/main.rego': 'package tollgate\n\ndecision := true\n\nvisible := 42\n' }, ['tollgate/decision', 'tollgate/visible']);
    const err = refusal(() => guardFor(runtime(engine)).visible(makeCall({ operation: 'tools/list', principal: DEV }), [tool('everything', 'echo')]));
    expect(err.def).toBe(Errors.POLICY_ERROR);
  });
});

describe('OPA-Envoy input shape', () => {
  it('runs an Envoy ext_authz policy unchanged (boolean or object decisions)', async () => {
    const engine = await buildEngine(
      {
        'envoy/authz.rego': `package envoy.authz

default allow := false

allow if {
	input.attributes.request.http.method == "POST"
	input.parsed_path == ["mcp"]
	input.parsed_body.params.name == "everything__echo"
	input.attributes.source.principal == "spiffe://dev.tollgate.local/alice"
}

verdict := {"allowed": allow, "body": "only echo, sorry", "http_status": 403}
`,
      },
      ['envoy/authz/allow', 'envoy/authz/verdict'],
    );
    const inputs = new InputBuilder({ shape: 'envoy', headers: [], claims: 'all', dropArguments: [] });
    const g = new PolicyGuard({ runtime: runtime(engine), inputs, entrypoints: { decision: 'envoy/authz/allow', visible: null }, mask: [] });
    g.admit(makeCall({ operation: 'tools/call', target: tool('everything', 'echo'), args: { message: 'x' }, principal: DEV }));
    const denied = refusal(() => g.admit(makeCall({ operation: 'tools/call', target: tool('everything', 'get-env'), args: {}, principal: DEV })));
    expect(denied.def).toBe(Errors.POLICY_DENIED);
    const g2 = new PolicyGuard({ runtime: runtime(engine), inputs, entrypoints: { decision: 'envoy/authz/verdict', visible: null }, mask: [] });
    expect(refusal(() => g2.admit(makeCall({ operation: 'tools/call', target: tool('everything', 'get-env'), args: {}, principal: DEV }))).message).toBe('only echo, sorry');
    // No visible entrypoint: lists are not filtered by an Envoy policy.
    expect(g.visible(makeCall({ operation: 'tools/list', principal: DEV }), [tool('everything', 'get-env')])).toEqual([true]);
  });
});
