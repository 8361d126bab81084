/**
 * The policy guard: authorizes each call with the decision entrypoint and filters lists with one evaluation of the
 * visible entrypoint per list. Synchronous (WASM evaluation is), so the pipeline stays synchronous.
 *
 * Every decision is attached to `call.decision` ({id, allow, reason, obligations}); a denial throws
 * TG_POLICY_DENIED with the policy's reason as the message; anything that goes wrong (evaluation error, memory
 * bound, a non-decision result, no policy loaded) throws TG_POLICY_ERROR: the call is denied (fail closed), the
 * error logged with the entrypoint and bundle, and the process keeps serving.
 */
import { randomUUID } from 'node:crypto';
import type { Call, Target } from '../../core/call.ts';
import { Errors, GatewayError } from '../../core/errors.ts';
import type { Guard } from '../../core/pipeline.ts';
import type { Logger } from '../../telemetry/logger.ts';
import { interpretDecision, interpretVisible } from './decision.ts';
import { LazyDecisionEvent, traceIdOf, type DecisionLog } from './decision-log.ts';
import { PolicyEvalError, type PolicyEngine } from './engine.ts';
import type { VisibleMemo } from './visible-memo.ts';
import type { InputBuilder } from './input.ts';

/** What the guard reads at call time (the service swaps the engine on reload). */
export interface PolicyRuntime {
  /** The policy in force; undefined until one has loaded. */
  readonly engine: PolicyEngine | undefined;
  readonly decisionLog: DecisionLog;
  readonly log: Logger;
}

export interface Entrypoints {
  readonly decision: string;
  /** null: lists are not filtered. */
  readonly visible: string | null;
}

/** One evaluation in progress (what the decision log needs of it). */
interface Evaluation {
  readonly id: string;
  readonly entrypoint: string;
  readonly engine: PolicyEngine | undefined;
  /** The input text (a function for a memoized answer: built only if a decision-log listener reads it). */
  readonly input: string | (() => string);
  value: unknown;
  /** Start time when a decision-log listener wants the event; undefined otherwise. */
  readonly t0: bigint | undefined;
}

export interface PolicyGuardOptions {
  readonly runtime: PolicyRuntime;
  readonly inputs: InputBuilder;
  /** Gateway-level entrypoints; a route's `policy` section may override them or disable the guard. */
  readonly entrypoints: Entrypoints;
  /** Decision-log masking (JSON pointers into the input). */
  readonly mask: readonly string[];
  /** Memo of list filters (absent: every list is evaluated). */
  readonly visibleMemo?: VisibleMemo | undefined;
}

export class PolicyGuard implements Guard {
  readonly name = 'policy';
  private readonly runtime: PolicyRuntime;
  private readonly inputs: InputBuilder;
  private readonly entrypoints: Entrypoints;
  private readonly mask: readonly string[];
  private readonly memo: VisibleMemo | undefined;

  constructor(opts: PolicyGuardOptions) {
    this.runtime = opts.runtime;
    this.inputs = opts.inputs;
    this.entrypoints = opts.entrypoints;
    this.mask = opts.mask;
    this.memo = opts.visibleMemo?.enabled ? opts.visibleMemo : undefined;
  }

  /** Entrypoints for a call's route (null: the route disables policy explicitly). */
  private entrypointsFor(call: Call): Entrypoints | null {
    const o = call.route.spec.policy;
    if (o === undefined) return this.entrypoints;
    if (!o.enabled) return null;
    const e = o.entrypoints;
    if (e === undefined) return this.entrypoints;
    return { decision: e.decision ?? this.entrypoints.decision, visible: e.visible === undefined ? this.entrypoints.visible : e.visible };
  }

  admit(call: Call): void {
    const ep = this.entrypointsFor(call);
    if (ep === null) return;
    const { ev, outcome } = this.evaluate(call, ep.decision, undefined, interpretDecision);
    call.decision = { id: ev.id, allow: outcome.allow, reason: outcome.reason, obligations: outcome.obligations };
    if (ev.t0 !== undefined) this.emit(call, ev, outcome.allow, outcome.reason, undefined, outcome.obligations?.redact);
    if (!outcome.allow) {
      throw new GatewayError(Errors.POLICY_DENIED, outcome.reason ?? Errors.POLICY_DENIED.message, { data: { decision_id: ev.id } });
    }
  }

  /**
   * One evaluation for the whole list: the visible entrypoint gets every target in `input.targets` and returns the
   * names the caller may see. The batch is summarised in call.decision (obligations.hidden = names hidden).
   */
  visible(call: Call, targets: readonly Target[]): readonly boolean[] {
    const ep = this.entrypointsFor(call);
    if (ep === null || ep.visible === null) return targets.map(() => true);
    const memo = this.memo;
    const engine = this.runtime.engine;
    let names: ReadonlySet<string>;
    if (memo !== undefined && engine !== undefined) {
      const t0 = this.runtime.decisionLog.active ? process.hrtime.bigint() : undefined;
      const parts = this.inputs.listParts(call, targets);
      const key = `${ep.visible}\u0000${parts.key}`;
      const now = Date.now();
      const hit = memo.get(engine, key, now);
      if (hit !== undefined) {
        const ev: Evaluation = { id: randomUUID(), entrypoint: ep.visible, engine, input: parts.input, value: hit.value, t0 };
        const verdict = this.verdict(call, ev, targets, hit.names);
        if (t0 !== undefined) this.emit(call, ev, true, undefined, undefined, undefined, hit.id);
        return verdict;
      }
      const { ev, outcome } = this.evaluate(call, ep.visible, parts.input(), interpretVisible, t0);
      memo.set(engine, key, { id: ev.id, names: outcome, value: ev.value }, now);
      names = outcome;
      const verdict = this.verdict(call, ev, targets, names);
      if (ev.t0 !== undefined) this.emit(call, ev, true, undefined, undefined, undefined);
      return verdict;
    }
    const { ev, outcome } = this.evaluate(call, ep.visible, this.inputs.forList(call, targets), interpretVisible);
    const verdict = this.verdict(call, ev, targets, outcome);
    if (ev.t0 !== undefined) this.emit(call, ev, true, undefined, undefined, undefined);
    return verdict;
  }

  /** One boolean per target; the batch is summarised in call.decision (obligations.hidden = names hidden). */
  private verdict(call: Call, ev: Evaluation, targets: readonly Target[], names: ReadonlySet<string>): boolean[] {
    const verdict = new Array<boolean>(targets.length);
    const hidden: string[] = [];
    for (let i = 0; i < targets.length; i++) {
      const name = targets[i]!.name;
      const seen = names.has(name);
      verdict[i] = seen;
      if (!seen) hidden.push(name);
    }
    call.decision = { id: ev.id, allow: true, reason: undefined, obligations: { hidden, shown: targets.length - hidden.length } };
    return verdict;
  }

  /**
   * Builds the input (for one call, or a list when `targets` is given), evaluates and interprets the result. Any
   * failure is logged, recorded (call.decision, decision log) and thrown as TG_POLICY_ERROR: fail closed.
   */
  private evaluate<T>(
    call: Call,
    entrypoint: string,
    input: string | undefined,
    interpret: (value: unknown) => T | string,
    started?: bigint,
  ): { ev: Evaluation; outcome: T } {
    const engine = this.runtime.engine;
    const t0 = started ?? (this.runtime.decisionLog.active ? process.hrtime.bigint() : undefined);
    const text = input ?? this.inputs.forCall(call);
    const ev: Evaluation = { id: randomUUID(), entrypoint, engine, input: text, value: undefined, t0 };
    let outcome: T | string;
    try {
      if (engine === undefined) throw new PolicyEvalError('no policy is loaded', { entrypoint, source: '-', revision: '-' });
      ev.value = engine.evaluate(entrypoint, text);
      outcome = interpret(ev.value);
    } catch (err) {
      outcome = err instanceof Error ? err.message : String(err);
    }
    if (typeof outcome === 'string') {
      this.runtime.log.error(
        { policy: entrypoint, bundle: engine?.source, revision: engine?.revision, call: call.id, op: call.operation, err: outcome },
        'policy evaluation failed; call denied (fail closed)',
      );
      call.decision = { id: ev.id, allow: false, reason: 'policy error', obligations: undefined };
      if (t0 !== undefined) this.emit(call, ev, false, undefined, outcome, undefined);
      throw new GatewayError(Errors.POLICY_ERROR, undefined, { data: { decision_id: ev.id } });
    }
    return { ev, outcome };
  }

  private emit(call: Call, ev: Evaluation, allow: boolean, reason: string | undefined, error: string | undefined, redact: readonly string[] | undefined, memoOf?: string): void {
    const evalNs = Number(process.hrtime.bigint() - ev.t0!);
    const pointers = redact === undefined || redact.length === 0 ? this.mask : [...this.mask, ...redact.map((p) => `/target/arguments${p}`)];
    this.runtime.decisionLog.emit(
      new LazyDecisionEvent({
        decision_id: ev.id,
        time: Date.now(),
        path: ev.entrypoint,
        rawInput: ev.input,
        pointers,
        result: ev.value,
        allow,
        reason,
        revision: ev.engine?.revision ?? '',
        source: ev.engine?.source ?? '',
        trace_id: traceIdOf(call),
        call_id: call.id,
        error,
        eval_ns: evalNs,
        memo_of: memoOf,
      }),
      call,
    );
  }
}
