/**
 * Parameters the gateway validates before anything is forwarded (A2A v1.0 3.3.2: servers must validate all input
 * parameters; the A2A TCK rejects a negative historyLength). The A2A SDK's server accepts these and acts on them
 * (a negative `historyLength` as "all", an unparsable `statusTimestampAfter` as no filter), so the gateway refuses
 * them with InvalidParams (-32602, REST 400) in every binding and version:
 *
 * - `historyLength` (GetTask, SubscribeToTask, ListTasks; a message's `configuration.historyLength`): an int32 >= 0,
 *   as a JSON number or, as ProtoJSON allows, a decimal string; REST reads it from the query too;
 * - `statusTimestampAfter` (ListTasks): an RFC 3339 timestamp;
 * in each spelling the SDK decodes (also `history_length`, `status_timestamp_after`).
 */
import { Errors, GatewayError } from '../../core/errors.ts';
import { GET_TASK, LIST_TASKS, SUBSCRIBE, type Operation } from './methods.ts';

const INT32_MAX = 2_147_483_647;

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;

function historyLengthOk(v: unknown): boolean {
  if (v === undefined || v === null) return true;
  const n = typeof v === 'string' && /^\d{1,10}$/.test(v) ? Number(v) : v;
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= INT32_MAX;
}

function timestampOk(v: unknown): boolean {
  if (v === undefined || v === null) return true;
  if (typeof v !== 'string') return false;
  const m = RFC3339.exec(v);
  if (m === null) return false;
  const [month, day, hour, minute, second] = [m[2], m[3], m[4], m[5], m[6]].map(Number) as [number, number, number, number, number];
  return month >= 1 && month <= 12 && day >= 1 && day <= 31 && hour <= 23 && minute <= 59 && second <= 60 && Number.isFinite(Date.parse(v));
}

function invalid(message: string): GatewayError {
  return new GatewayError(Errors.INVALID_PARAMS, `Invalid params: ${message}`);
}

/**
 * Throws InvalidParams for a parameter the agent would misread. `params`: the JSON-RPC params or the REST body;
 * `query`: the REST query string (undefined for JSON-RPC).
 */
export function checkParams(op: Operation, params: Record<string, unknown>, query?: URLSearchParams): void {
  // Every spelling the SDK decodes (camelCase and the proto's snake_case), in the body and the REST query.
  const values = (o: Record<string, unknown>, camel: string, snake: string): unknown[] => [o[camel], o[snake], query?.get(camel) ?? undefined, query?.get(snake) ?? undefined];
  if (op === GET_TASK || op === SUBSCRIBE || op === LIST_TASKS) {
    if (!values(params, 'historyLength', 'history_length').every(historyLengthOk)) throw invalid('historyLength must be a non-negative integer');
  }
  if (op.sends) {
    const config = params.configuration;
    if (typeof config === 'object' && config !== null) {
      const c = config as Record<string, unknown>;
      if (!historyLengthOk(c.historyLength) || !historyLengthOk(c.history_length)) throw invalid('configuration.historyLength must be a non-negative integer');
    }
  }
  if (op === LIST_TASKS && !values(params, 'statusTimestampAfter', 'status_timestamp_after').every(timestampOk)) {
    throw invalid('statusTimestampAfter must be an RFC 3339 timestamp');
  }
}
