/**
 * Policy decisions reach the audit log through the call they were taken for: a guard notes them here (the policy's
 * decision log does, once per evaluation, list filtering included), and the audit writer turns each into a
 * `decision` record, written before the call's own record when the call settles.
 */
import type { Call, Decision, Target } from '../core/call.ts';
import type { DecisionEvent, DecisionLog } from '../guards/policy/decision-log.ts';

export const DECISIONS_KEY = 'audit.decisions';

export interface NotedDecision {
  readonly decision: Decision;
  readonly target: Target | undefined;
  /** When it was taken (ms since epoch); the call's start when absent. */
  readonly time?: number | undefined;
  /** What the policy engine reports about it (entrypoint, bundle revision, masked input, result...). */
  readonly detail?: Readonly<Record<string, unknown>> | undefined;
  /** The policy's decision event: the writer serialises it (`policyJson`) off the request path. */
  readonly event?: DecisionEvent | undefined;
}

/** Records a decision taken for this call. */
export function noteDecision(call: Call, decision: Decision, target?: Target, extra?: { time?: number; detail?: Record<string, unknown>; event?: DecisionEvent }): void {
  let list = call.scratch.get(DECISIONS_KEY) as NotedDecision[] | undefined;
  if (list === undefined) {
    list = [];
    call.scratch.set(DECISIONS_KEY, list);
  }
  list.push({ decision, target, time: extra?.time, detail: extra?.detail, event: extra?.event });
}

export function notedDecisions(call: Call): readonly NotedDecision[] | undefined {
  return call.scratch.get(DECISIONS_KEY) as NotedDecision[] | undefined;
}

/**
 * Subscribes to the policy's decision log: every evaluation becomes a noted decision of its call (the listener runs
 * on the request path, so it only keeps the event; the record is built by the writer). Returns the unsubscribe.
 */
export function recordPolicyDecisions(log: DecisionLog): () => void {
  return log.subscribe((e: DecisionEvent, call: Call) => {
    noteDecision(call, { id: e.decision_id, allow: e.allow, reason: e.reason }, call.target, { time: e.time, event: e });
  });
}

/**
 * The `policy` member of a decision record (before the writer scrubs it: argument mode, sensitive names, credential
 * values): entrypoint, bundle revision and origin, evaluation time, the masked input and the result. Built by the
 * writer off the request path; the input is parsed from the event's JSON text only then.
 */
export function policyDetail(e: DecisionEvent): Record<string, unknown> {
  const detail: Record<string, unknown> = { path: e.path, revision: e.bundles.tollgate?.revision, source: e.source, evalNs: e.eval_ns };
  if (e.memo_of !== undefined) {
    // A memoized list filter: the input and result are those of the evaluation it reuses, whose record `memoOf` names
    // (the memo key is the whole input but request.time_ns, which is this record's time). Not copied into every list
    // call's record: for a list of hundreds of targets that copy was a fifth of the gateway's busy time.
    detail.memoOf = e.memo_of;
    return detail;
  }
  detail.input = e.input;
  detail.result = e.result;
  if (e.error !== undefined) detail.error = e.error;
  if (e.erased.length > 0) detail.erased = e.erased;
  return detail;
}
