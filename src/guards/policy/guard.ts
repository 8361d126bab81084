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
import { interpretDecision, interpretVisible, type PolicyDecision } from './decision.ts';
import { erase, traceIdOf, type DecisionLog } from './decision-log.ts';
import { PolicyEvalError, type PolicyEngine } from './engine.ts';
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

export interface PolicyGuardOptions {
  readonly runtime: PolicyRuntime;
  readonly inputs: InputBuilder;
  /** Gateway-level entrypoints; a route's `policy` section may override them or disable the guard. */
  readonly entrypoints: Entrypoints;
  /** Decision-log masking (JSON pointers into the input). */
  readonly mask: readonly string[];
}

export class PolicyGuard implements Guard {
  readonly name = 'policy';
  private readonly runtime: PolicyRuntime;
  private readonly inputs: InputBuilder;
  private readonly entrypoints: Entrypoints;
  private readonly mask: readonly string[];

  constructor(opts: PolicyGuardOptions) {
    this.runtime = opts.runtime;
    this.inputs = opts.inputs;
    this.entrypoints = opts.entrypoints;
    this.mask = opts.mask;
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
    const engine = this.runtime.engine;
    const id = randomUUID();
    const logging = this.runtime.decisionLog.active;
    const t0 = logging ? process.hrtime.bigint() : 0n;
    const input = this.inputs.forCall(call);
    let value: unknown;
    let decision: PolicyDecision | string;
    try {
      if (engine === undefined) throw new PolicyEvalError('no policy is loaded', { entrypoint: ep.decision, source: '-', revision: '-' });
      value = engine.evaluate(ep.decision, input);
      decision = interpretDecision(value);
    } catch (err) {
      decision = this.failure(err, ep.decision, engine, call);
    }
    if (typeof decision === 'string') {
      call.decision = { id, allow: false, reason: 'policy error', obligations: undefined };
      if (logging) this.emit(call, id, ep.decision, engine, input, value, false, undefined, decision, undefined, t0);
      throw new GatewayError(Errors.POLICY_ERROR, undefined, { data: { decision_id: id } });
    }
    call.decision = { id, allow: decision.allow, reason: decision.reason, obligations: decision.obligations };
    if (logging) this.emit(call, id, ep.decision, engine, input, value, decision.allow, decision.reason, undefined, decision.obligations?.redact, t0);
    if (!decision.allow) {
      throw new GatewayError(Errors.POLICY_DENIED, decision.reason ?? Errors.POLICY_DENIED.message, { data: { decision_id: id } });
    }
  }

  /**
   * One evaluation for the whole list: the visible entrypoint gets every target in `input.targets` and returns the
   * names the caller may see. The batch is summarised in call.decision (obligations.hidden = names hidden).
   */
  visible(call: Call, targets: readonly Target[]): readonly boolean[] {
    const ep = this.entrypointsFor(call);
    if (ep === null || ep.visible === null) return targets.map(() => true);
    const engine = this.runtime.engine;
    const id = randomUUID();
    const logging = this.runtime.decisionLog.active;
    const t0 = logging ? process.hrtime.bigint() : 0n;
    const input = this.inputs.forList(call, targets);
    let value: unknown;
    let names: ReadonlySet<string> | string;
    try {
      if (engine === undefined) throw new PolicyEvalError('no policy is loaded', { entrypoint: ep.visible, source: '-', revision: '-' });
      value = engine.evaluate(ep.visible, input);
      names = interpretVisible(value);
    } catch (err) {
      names = this.failure(err, ep.visible, engine, call);
    }
    if (typeof names === 'string') {
      call.decision = { id, allow: false, reason: 'policy error', obligations: undefined };
      if (logging) this.emit(call, id, ep.visible, engine, input, value, false, undefined, names, undefined, t0);
      throw new GatewayError(Errors.POLICY_ERROR, undefined, { data: { decision_id: id } });
    }
    const verdict = new Array<boolean>(targets.length);
    const hidden: string[] = [];
    for (let i = 0; i < targets.length; i++) {
      const name = targets[i]!.name;
      const seen = names.has(name);
      verdict[i] = seen;
      if (!seen) hidden.push(name);
    }
    call.decision = { id, allow: true, reason: undefined, obligations: { hidden, shown: targets.length - hidden.length } };
    if (logging) this.emit(call, id, ep.visible, engine, input, value, true, undefined, undefined, undefined, t0);
    return verdict;
  }

  /** Logs an evaluation failure with where it happened; returns the message for the decision log. */
  private failure(err: unknown, entrypoint: string, engine: PolicyEngine | undefined, call: Call): string {
    const message = err instanceof Error ? err.message : String(err);
    this.runtime.log.error(
      { policy: entrypoint, bundle: engine?.source, revision: engine?.revision, call: call.id, op: call.operation, err: message },
      'policy evaluation failed; call denied (fail closed)',
    );
    return message;
  }

  private emit(
    call: Call,
    id: string,
    path: string,
    engine: PolicyEngine | undefined,
    input: string,
    result: unknown,
    allow: boolean,
    reason: string | undefined,
    error: string | undefined,
    redact: readonly string[] | undefined,
    t0: bigint,
  ): void {
    const evalNs = Number(process.hrtime.bigint() - t0);
    const doc: unknown = JSON.parse(input);
    const pointers = redact === undefined ? this.mask : [...this.mask, ...redact.map((p) => `/target/arguments${p}`)];
    const erased = pointers.length === 0 ? [] : erase(doc, pointers);
    this.runtime.decisionLog.emit(
      {
        decision_id: id,
        timestamp: new Date().toISOString(),
        path,
        input: doc,
        result,
        allow,
        reason,
        erased,
        bundles: { tollgate: { revision: engine?.revision ?? '' } },
        source: engine?.source ?? '',
        trace_id: traceIdOf(call),
        call_id: call.id,
        error,
        eval_ns: evalNs,
      },
      call,
    );
  }
}
