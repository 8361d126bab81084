/**
 * What a policy's answer means, end to end through the real engine (opa build, WASM evaluation) and the guard: one
 * policy returns whatever the call's `answer` argument holds, so every shape a decision rule can produce is tried on
 * the same engine. Anything that is not a decision denies with TG_POLICY_ERROR (fail closed) and the decision log
 * says why; a denial carries the policy's reason, or the stable default when it gives none.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { Errors, GatewayError } from '../../src/core/errors.ts';
import { DecisionLog, type DecisionEvent } from '../../src/guards/policy/decision-log.ts';
import type { PolicyEngine } from '../../src/guards/policy/engine.ts';
import { PolicyGuard, type PolicyRuntime } from '../../src/guards/policy/guard.ts';
import { InputBuilder } from '../../src/guards/policy/input.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { makeCall, spiffe, tool } from '../helpers/calls.ts';
import { buildEngine } from '../helpers/policy.ts';

const log = createLogger('silent');
const ALICE = spiffe('spiffe://dev.tollgate.local/alice');
const INPUT = { shape: 'tollgate' as const, headers: [], claims: 'all' as const, dropArguments: [] };

let engine: PolicyEngine;
beforeAll(async () => {
  engine = await buildEngine(
    { 'echo/main.rego': 'package echo\n\ndecision := input.target.arguments.answer\n\nvisible contains "x" if false\n' },
    ['echo/decision', 'echo/visible'],
  );
});

/** Runs one call whose policy answer is `answer`; returns the refusal (if any), the call and its decision event. */
function decide(answer: unknown): { err: GatewayError | undefined; call: ReturnType<typeof makeCall>; event: DecisionEvent } {
  const runtime: PolicyRuntime = { engine, decisionLog: new DecisionLog(log), log };
  const events: DecisionEvent[] = [];
  runtime.decisionLog.subscribe((e) => events.push(e));
  const guard = new PolicyGuard({ runtime, inputs: new InputBuilder(INPUT), entrypoints: { decision: 'echo/decision', visible: 'echo/visible' }, mask: [] });
  const call = makeCall({ operation: 'tools/call', target: tool('everything', 'echo'), args: answer === undefined ? {} : { answer }, principal: ALICE });
  let err: GatewayError | undefined;
  try {
    guard.admit(call);
  } catch (e) {
    if (!(e instanceof GatewayError)) throw e;
    err = e;
  }
  expect(events).toHaveLength(1);
  return { err, call, event: events[0]! };
}

describe('policy decisions of every shape (real engine)', () => {
  it.each([
    ['true', true],
    ['{allow: true}', { allow: true }],
    ['OPA-Envoy {allowed: true}', { allowed: true }],
  ])('%s admits with no reason and no obligations', (_what, answer) => {
    const { err, call, event } = decide(answer);
    expect(err).toBeUndefined();
    expect(call.decision).toMatchObject({ allow: true, reason: undefined, obligations: undefined });
    expect(event).toMatchObject({ allow: true, error: undefined });
  });

  it.each([
    ['false', false],
    ['{allow: false}', { allow: false }],
    ['an empty reason', { allow: false, reason: '' }],
    ['an empty list of reasons', { allow: false, reason: [] }],
    ['an Envoy body that is not text', { allowed: false, body: 5 }],
  ])('%s denies with the default message', (_what, answer) => {
    const { err, call, event } = decide(answer);
    expect(err?.def).toBe(Errors.POLICY_DENIED);
    expect(err?.message).toBe(Errors.POLICY_DENIED.message);
    expect(err?.data).toEqual({ decision_id: call.decision?.id });
    expect(call.decision).toMatchObject({ allow: false, reason: undefined });
    expect(event).toMatchObject({ allow: false, error: undefined, decision_id: call.decision?.id });
  });

  it.each([
    ['a reason', { allow: false, reason: 'not on Sundays' }, 'not on Sundays'],
    ['reasons, joined', { allow: false, reason: ['not on Sundays', 'not you'] }, 'not on Sundays; not you'],
    ['an Envoy body', { allowed: false, body: 'only echo' }, 'only echo'],
    ['a reason before an Envoy body', { allowed: false, reason: 'the reason', body: 'the body' }, 'the reason'],
  ])('a denial with %s carries it', (_what, answer, reason) => {
    const { err, call, event } = decide(answer);
    expect(err?.def).toBe(Errors.POLICY_DENIED);
    expect(err?.message).toBe(reason);
    expect(call.decision).toMatchObject({ allow: false, reason });
    expect(event).toMatchObject({ allow: false, reason });
  });

  it('`allow` wins over an Envoy `allowed` in the same object (both ways)', () => {
    expect(decide({ allow: false, allowed: true }).err?.def).toBe(Errors.POLICY_DENIED);
    expect(decide({ allow: true, allowed: false }).err).toBeUndefined();
  });

  it('keeps obligations the policy attaches; an empty object is no obligation', () => {
    const kept = decide({ allow: true, obligations: { redact: ['/password', '/nested/pin'], rate_class: 'bulk' } });
    expect(kept.err).toBeUndefined();
    expect(kept.call.decision?.obligations).toEqual({ redact: ['/password', '/nested/pin'], rate_class: 'bulk' });
    const empty = decide({ allow: true, obligations: {} });
    expect(empty.err).toBeUndefined();
    expect(empty.call.decision?.obligations).toBeUndefined();
    const denied = decide({ allow: false, reason: 'no', obligations: { redact: ['/password'] } });
    expect(denied.call.decision).toMatchObject({ allow: false, reason: 'no', obligations: { redact: ['/password'] } });
  });

  it.each([
    ['no decision (undefined)', undefined, 'decision is undefined for this input (give the rule a default value)'],
    ['null', null, 'decision must be a boolean or an object, got null'],
    ['a list', [true], 'decision must be a boolean or an object, got an array'],
    ['a string', 'allow', 'decision must be a boolean or an object, got a string'],
    ['a number', 1, 'decision must be a boolean or an object, got a number'],
    ['an object without allow', { reason: 'x' }, 'decision.allow must be a boolean, got nothing'],
    ['a textual allow', { allow: 'true' }, 'decision.allow must be a boolean, got a string'],
    ['a null allow', { allow: null }, 'decision.allow must be a boolean, got null'],
    ['a numeric reason', { allow: false, reason: 7 }, 'decision.reason must be a string, got a number'],
    ['reasons that are not all text', { allow: false, reason: ['a', 1] }, 'decision.reason must be a string, got an array'],
    ['an object reason', { allow: true, reason: { why: 'x' } }, 'decision.reason must be a string, got an object'],
    ['obligations that are a list', { allow: true, obligations: ['/a'] }, 'decision.obligations must be an object, got an array'],
    ['obligations that are null', { allow: true, obligations: null }, 'decision.obligations must be an object, got null'],
    ['obligations that are text', { allow: true, obligations: 'redact' }, 'decision.obligations must be an object, got a string'],
    ['a redact that is not a list', { allow: true, obligations: { redact: '/a' } }, 'decision.obligations.redact must be an array of JSON pointers'],
    ['a redact entry that is not a pointer', { allow: true, obligations: { redact: ['/a', 'b'] } }, 'decision.obligations.redact must be an array of JSON pointers'],
    ['a redact entry that is not text', { allow: true, obligations: { redact: [1] } }, 'decision.obligations.redact must be an array of JSON pointers'],
  ])('%s is no decision: denied with TG_POLICY_ERROR, the log says why', (_what, answer, why) => {
    const { err, call, event } = decide(answer);
    expect(err?.def).toBe(Errors.POLICY_ERROR);
    expect(err?.message).toBe(Errors.POLICY_ERROR.message);
    expect(err?.data).toEqual({ decision_id: call.decision?.id });
    expect(call.decision).toEqual({ id: event.decision_id, allow: false, reason: 'policy error', obligations: undefined });
    expect(event).toMatchObject({ allow: false, error: why, path: 'echo/decision' });
  });

  it('no policy loaded: denied with TG_POLICY_ERROR, the log says so', () => {
    const runtime: PolicyRuntime = { engine: undefined, decisionLog: new DecisionLog(log), log };
    const events: DecisionEvent[] = [];
    runtime.decisionLog.subscribe((e) => events.push(e));
    const guard = new PolicyGuard({ runtime, inputs: new InputBuilder(INPUT), entrypoints: { decision: 'echo/decision', visible: null }, mask: [] });
    const call = makeCall({ operation: 'tools/call', target: tool('everything', 'echo'), args: { answer: true }, principal: ALICE });
    expect(() => guard.admit(call)).toThrow(expect.objectContaining({ def: Errors.POLICY_ERROR }) as Error);
    expect(call.decision).toMatchObject({ allow: false, reason: 'policy error' });
    expect(events).toEqual([expect.objectContaining({ allow: false, error: 'no policy is loaded' })]);
  });
});
