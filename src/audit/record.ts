/**
 * Turns a settled call into audit records (its noted policy decisions, then the call itself). Runs in the writer, off
 * the request path: the guard only queues the Call. Record bodies are JSON objects without `seq`/`prev`, which the
 * writer prepends when it chains them.
 */
import type { Call, Decision, Target } from '../core/call.ts';
import { traceIdOf } from '../telemetry/context.ts';
import { notedDecisions, policyDetail } from './decisions.ts';
import { DECISION_ALLOW, DECISION_DENY, KIND_CODE, indexExtra, outcomeCode } from './format.ts';
import type { IndexExtra } from './segindex.ts';
import type { ArgumentPolicy } from './redact.ts';

/** One record ready to be chained, with the columns the index keeps. */
export interface PendingRecord {
  /** `"kind":...` and the other members, without braces. */
  readonly body: string;
  readonly timeMs: number;
  readonly principal: string | undefined;
  readonly target: string | undefined;
  /** Kind code | decision bits. */
  readonly flags: number;
  readonly outcome: number;
  /** Trace key, tokens and cost columns (absent: none). */
  readonly extra?: IndexExtra | undefined;
}

function targetOf(t: Target | undefined): Record<string, string> | undefined {
  if (t === undefined) return undefined;
  const out: Record<string, string> = { kind: t.kind, name: t.name };
  if (t.server !== undefined) out.server = t.server;
  if (t.local !== undefined && t.local !== t.name) out.local = t.local;
  if (t.version !== undefined) out.version = t.version;
  return out;
}

function decisionOf(d: Decision | undefined): Record<string, unknown> | undefined {
  if (d === undefined) return undefined;
  const out: Record<string, unknown> = { id: d.id, allow: d.allow };
  if (d.reason !== undefined) out.reason = d.reason;
  return out;
}

function decisionFlags(d: Decision | undefined): number {
  return d === undefined ? 0 : d.allow ? DECISION_ALLOW : DECISION_DENY;
}

/** What a limits guard left for the record: its scratch entry when it is a plain object, else the refusal code. */
function limitOf(call: Call): unknown {
  const noted = call.scratch.get('limits');
  if (typeof noted === 'object' && noted !== null && !Array.isArray(noted)) return noted;
  return call.outcome === 'limited' ? call.error?.code : undefined;
}

/** `,"key":<json>` when the value is defined (JSON.stringify escapes strings; objects are small). */
function member(key: string, value: unknown): string {
  return value === undefined ? '' : `,"${key}":${JSON.stringify(value)}`;
}

/**
 * The members every call and decision record starts with, in order. Built as a string: the writer turns every call
 * into a record, and this avoids an intermediate object per record.
 */
function common(kind: 'call' | 'decision', call: Call, time: string, trace: string | undefined, principal: string | undefined): string {
  return `"kind":"${kind}","time":"${time}","call":${JSON.stringify(call.id)}${member('trace', trace)}${member('principal', principal)},"route":${JSON.stringify(call.route.name)},"protocol":"${call.protocol}","operation":${JSON.stringify(call.operation)}`;
}

/** The records for one settled call (`ms`: its duration, taken when it settled), appended to `out`. */
export function recordsOf(call: Call, ms: number, args: ArgumentPolicy, out: PendingRecord[]): void {
  const time = new Date(call.startedAt).toISOString();
  const trace = traceIdOf(call);
  const principal = call.principal?.id;
  const noted = notedDecisions(call);
  if (noted !== undefined) {
    for (const n of noted) {
      const at = n.time ?? call.startedAt;
      let body = `${common('decision', call, n.time === undefined ? time : new Date(at).toISOString(), trace, principal)}${member('target', targetOf(n.target))}${member('decision', decisionOf(n.decision))}`;
      const detail = n.event !== undefined ? policyDetail(n.event) : n.detail;
      if (detail !== undefined) body += `,"policy":${args.serialiseDetail(detail)}`;
      out.push({
        body,
        timeMs: at,
        principal,
        target: n.target?.name,
        flags: KIND_CODE.decision | decisionFlags(n.decision),
        outcome: 0,
        extra: indexExtra(trace, 0, 0, 0),
      });
    }
  }
  let body =
    common('call', call, time, trace, principal) +
    member('target', targetOf(call.target)) +
    member('upstream', call.upstream) +
    member('session', call.sessionId) +
    member('rpc', call.rpcId) +
    member('decision', decisionOf(call.decision)) +
    member('limit', limitOf(call)) +
    member('usage', call.usage) +
    member('model', call.model) +
    member('settleFailed', call.settleFailures) +
    `,"status":${call.status},"outcome":"${call.outcome}"` +
    member('code', call.error?.code) +
    `,"ms":${Math.round(ms * 1000) / 1000}`;
  const a = args.serialise(call.args, call.decision);
  if (a !== undefined) body += `,"args":${a}`;
  out.push({
    body,
    timeMs: call.startedAt,
    principal,
    target: call.target?.name,
    flags: KIND_CODE.call | decisionFlags(call.decision),
    outcome: outcomeCode(call.outcome),
    extra: indexExtra(trace, call.usage?.inputTokens, call.usage?.outputTokens, call.usage?.cost),
  });
}
