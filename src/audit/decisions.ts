/**
 * Policy decisions that are not the call's own `call.decision` (e.g. one per target when a list is filtered) reach the
 * audit log through the call: a guard notes them here, and the audit guard writes one `decision` record for each when
 * the call settles.
 */
import type { Call, Decision, Target } from '../core/call.ts';

export const DECISIONS_KEY = 'audit.decisions';

export interface NotedDecision {
  readonly decision: Decision;
  readonly target: Target | undefined;
}

/** Records a decision taken for this call (list filtering: one per target evaluated). */
export function noteDecision(call: Call, decision: Decision, target?: Target): void {
  let list = call.scratch.get(DECISIONS_KEY) as NotedDecision[] | undefined;
  if (list === undefined) {
    list = [];
    call.scratch.set(DECISIONS_KEY, list);
  }
  list.push({ decision, target });
}

export function notedDecisions(call: Call): readonly NotedDecision[] | undefined {
  return call.scratch.get(DECISIONS_KEY) as NotedDecision[] | undefined;
}
