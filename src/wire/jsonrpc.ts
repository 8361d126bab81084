/**
 * JSON-RPC 2.0 framing shared by every JSON-RPC protocol (MCP, A2A): parse and classify a message (request,
 * notification, response, batch), build result and error bodies, and read or splice a response's top-level members
 * in serialized bytes without re-serialising the (possibly large) result.
 */
import { Errors, GatewayError, jsonRpcErrorObject } from '../core/errors.ts';

export type RpcId = string | number;

export interface RpcRequest {
  jsonrpc: '2.0';
  id: RpcId;
  method: string;
  params?: Record<string, unknown>;
}
export interface RpcNotification {
  jsonrpc: '2.0';
  method: string;
  params?: Record<string, unknown>;
}
export interface RpcResponse {
  jsonrpc: '2.0';
  id: RpcId | null;
  result?: unknown;
  error?: { code: number; message: string; data?: unknown };
}
export type RpcMessage =
  | { kind: 'request'; msg: RpcRequest }
  | { kind: 'notification'; msg: RpcNotification }
  | { kind: 'response'; msg: RpcResponse };

function isId(v: unknown): v is RpcId {
  return typeof v === 'string' || (typeof v === 'number' && Number.isInteger(v));
}

/** Validates the JSON-RPC envelope of one parsed message. Throws TG_INVALID_REQUEST / TG_BATCH_NOT_SUPPORTED. */
export function classify(value: unknown): RpcMessage {
  if (Array.isArray(value)) throw new GatewayError(Errors.BATCH_NOT_SUPPORTED);
  if (typeof value !== 'object' || value === null) {
    throw new GatewayError(Errors.INVALID_REQUEST, 'Invalid Request: a JSON-RPC message must be an object');
  }
  const m = value as Record<string, unknown>;
  if (m.jsonrpc !== '2.0') throw new GatewayError(Errors.INVALID_REQUEST, 'Invalid Request: jsonrpc must be "2.0"');
  if (m.params !== undefined && (typeof m.params !== 'object' || m.params === null || Array.isArray(m.params))) {
    throw new GatewayError(Errors.INVALID_REQUEST, 'Invalid Request: params must be an object');
  }
  if (typeof m.method === 'string') {
    if (m.method.length === 0) throw new GatewayError(Errors.INVALID_REQUEST, 'Invalid Request: empty method');
    if (!('id' in m)) return { kind: 'notification', msg: m as unknown as RpcNotification };
    if (!isId(m.id)) throw new GatewayError(Errors.INVALID_REQUEST, 'Invalid Request: id must be a string or an integer');
    return { kind: 'request', msg: m as unknown as RpcRequest };
  }
  if ('method' in m) throw new GatewayError(Errors.INVALID_REQUEST, 'Invalid Request: method must be a string');
  if (('result' in m) !== ('error' in m) && (isId(m.id) || m.id === null)) {
    return { kind: 'response', msg: m as unknown as RpcResponse };
  }
  throw new GatewayError(Errors.INVALID_REQUEST, 'Invalid Request: neither a request, a notification nor a response');
}

/** One member of a batch: a valid message, or the error its envelope earned (answered under `id`). */
export type BatchItem = RpcMessage | { kind: 'invalid'; id: RpcId | null; error: GatewayError };

/**
 * Classifies a parsed body that may be a batch (JSON-RPC 2.0 section 6). Protocols that take batches use this;
 * an empty batch is an invalid request. A single message is returned as a batch of one only when `value` is not an
 * array, so callers can answer it unwrapped.
 */
export function classifyBatch(value: unknown): { batch: boolean; items: BatchItem[] } {
  if (!Array.isArray(value)) return { batch: false, items: [classify(value)] };
  if (value.length === 0) throw new GatewayError(Errors.INVALID_REQUEST, 'Invalid Request: an empty batch');
  const items: BatchItem[] = value.map((v: unknown) => {
    if (Array.isArray(v)) return { kind: 'invalid', id: null, error: new GatewayError(Errors.INVALID_REQUEST, 'Invalid Request: a batch inside a batch') };
    try {
      return classify(v);
    } catch (err) {
      return { kind: 'invalid', id: salvageId(v), error: err as GatewayError };
    }
  });
  return { batch: true, items };
}

/** A body that is not a valid JSON-RPC message, with the id to answer it under (null when none could be read). */
export class RpcParseError extends Error {
  readonly id: RpcId | null;
  readonly error: GatewayError;
  constructor(id: RpcId | null, error: GatewayError) {
    super(error.message);
    this.name = 'RpcParseError';
    this.id = id;
    this.error = error;
  }
}

/**
 * Parses and classifies one JSON-RPC message from the bytes of a body. Throws RpcParseError (TG_PARSE_ERROR for bad
 * JSON, the envelope's error otherwise). `value` is the parsed JSON, for callers that also read other members.
 */
export function parseMessage(body: Buffer | string): { message: RpcMessage; value: unknown } {
  let value: unknown;
  try {
    value = JSON.parse(typeof body === 'string' ? body : body.toString('utf8'));
  } catch {
    throw new RpcParseError(null, new GatewayError(Errors.PARSE_ERROR));
  }
  try {
    return { message: classify(value), value };
  } catch (err) {
    throw new RpcParseError(salvageId(value), err instanceof GatewayError ? err : new GatewayError(Errors.INVALID_REQUEST));
  }
}

/** Best effort: the id of something that failed envelope validation, so the error can still be correlated. */
export function salvageId(value: unknown): RpcId | null {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const id = (value as Record<string, unknown>).id;
    if (isId(id)) return id;
  }
  return null;
}

export function errorResponse(id: RpcId | null, err: GatewayError): string {
  return JSON.stringify({ jsonrpc: '2.0', id, error: jsonRpcErrorObject(err) });
}

export function resultResponse(id: RpcId, result: unknown): string {
  return JSON.stringify({ jsonrpc: '2.0', id, result });
}

export function notification(method: string, params?: Record<string, unknown>): string {
  return JSON.stringify(params === undefined ? { jsonrpc: '2.0', method } : { jsonrpc: '2.0', method, params });
}

/**
 * Finds the value span of the top-level "id" member of a serialized JSON-RPC object, without parsing it all.
 * Looks at the tail first (the TypeScript SDK writes `{"result":...,"jsonrpc":"2.0","id":N}`), then the head
 * (`{"jsonrpc":"2.0","id":N,...}`, Python SDK), and otherwise scans the top level.
 * Returns [start, end) of the id value, or undefined if there is no top-level id.
 */
export function findTopLevelId(text: string): [number, number] | undefined {
  let end = text.length - 1;
  while (end >= 0 && isSpace(text.charCodeAt(end))) end--;
  if (end < 0 || text.charCodeAt(end) !== 125 /* } */) return undefined;
  // Tail: ...,"id":<value>}
  const tail = matchIdBefore(text, end);
  if (tail) return tail;
  return scanTopLevel(text);
}

function isSpace(c: number): boolean {
  return c === 32 || c === 10 || c === 13 || c === 9;
}

function matchIdBefore(text: string, close: number): [number, number] | undefined {
  let vEnd = close;
  while (vEnd > 0 && isSpace(text.charCodeAt(vEnd - 1))) vEnd--;
  let vStart: number;
  const last = text.charCodeAt(vEnd - 1);
  if (last === 34 /* " */) {
    // A string id: walk back to its opening quote (ids never contain escaped quotes in practice; verify below).
    vStart = text.lastIndexOf('"', vEnd - 2);
    if (vStart < 0 || text.charCodeAt(vStart - 1) === 92 /* \ */) return undefined;
  } else {
    vStart = vEnd;
    while (vStart > 0) {
      const c = text.charCodeAt(vStart - 1);
      if ((c >= 48 && c <= 57) || c === 45 /* - */ || c === 108 || c === 117 || c === 110 /* null */) vStart--;
      else break;
    }
    if (vStart === vEnd) return undefined;
  }
  let k = vStart;
  while (k > 0 && isSpace(text.charCodeAt(k - 1))) k--;
  if (text.charCodeAt(k - 1) !== 58 /* : */) return undefined;
  k--;
  while (k > 0 && isSpace(text.charCodeAt(k - 1))) k--;
  if (text.slice(k - 4, k) !== '"id"') return undefined;
  let p = k - 4;
  while (p > 0 && isSpace(text.charCodeAt(p - 1))) p--;
  const before = text.charCodeAt(p - 1);
  // Preceded by ',' or '{': the key is a member of the object closed by the final '}' (the top level).
  if (before !== 44 && before !== 123) return undefined;
  return [vStart, vEnd];
}

/**
 * Walks the top-level members of a serialized object in order, skipping strings and nested values, calling `visit`
 * with each key and the offset of its value. Stops when `visit` returns true. Cost is proportional to the bytes
 * before the member sought, so callers look for keys that serializers put early.
 */
function scanKeys(text: string, visit: (key: string, valueAt: number) => boolean): void {
  let i = text.indexOf('{');
  if (i < 0) return;
  i++;
  const n = text.length;
  let depth = 1;
  let expectKey = true;
  let key = '';
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 34 /* " */) {
      const start = i;
      i++;
      while (i < n) {
        const d = text.charCodeAt(i);
        if (d === 92) i += 2;
        else if (d === 34) break;
        else i++;
      }
      if (depth === 1 && expectKey) key = text.slice(start + 1, i);
      i++;
      continue;
    }
    if (depth === 1) {
      if (c === 58 /* : */ && expectKey) {
        expectKey = false;
        let s = i + 1;
        while (s < n && isSpace(text.charCodeAt(s))) s++;
        if (visit(key, s)) return;
      } else if (c === 44 /* , */) expectKey = true;
    }
    if (c === 123 || c === 91) depth++;
    else if (c === 125 || c === 93) {
      depth--;
      if (depth === 0) return;
    }
    i++;
  }
}

function scanTopLevel(text: string): [number, number] | undefined {
  let span: [number, number] | undefined;
  scanKeys(text, (key, s) => {
    if (key !== 'id') return false;
    const n = text.length;
    let e = s;
    if (text.charCodeAt(s) === 34) {
      e = s + 1;
      while (e < n && text.charCodeAt(e) !== 34) e += text.charCodeAt(e) === 92 ? 2 : 1;
      e++;
    } else {
      while (e < n && !isSpace(text.charCodeAt(e)) && text.charCodeAt(e) !== 44 && text.charCodeAt(e) !== 125) e++;
    }
    span = [s, e];
    return true;
  });
  return span;
}

/**
 * Adds a member (`"key":<json>`) at the start of the result object of a serialized response: an insertion after
 * the result's opening brace, the rest of the bytes are left as they are. Error responses and non-object results
 * are returned unchanged. `json` must be serialized JSON.
 */
export function addResultMember(text: string, key: string, json: string): string {
  let at = -1;
  scanKeys(text, (key, valueAt) => {
    if (key === 'result') at = valueAt;
    return key === 'result' || key === 'error';
  });
  if (at < 0 || text.charCodeAt(at) !== 123 /* { */) return text;
  let next = at + 1;
  while (next < text.length && isSpace(text.charCodeAt(next))) next++;
  const empty = text.charCodeAt(next) === 125; /* } */
  return `${text.slice(0, at + 1)}${JSON.stringify(key)}:${json}${empty ? '' : ','}${text.slice(at + 1)}`;
}

/** Whether a serialized response carries `result` or `error`, from its first decisive top-level key. */
export function peekOutcome(text: string): 'result' | 'error' | undefined {
  let found: 'result' | 'error' | undefined;
  scanKeys(text, (key) => {
    if (key === 'result' || key === 'error') found = key;
    return found !== undefined;
  });
  return found;
}

/**
 * Whether a serialized message is a response ('response': has result/error) or a request/notification
 * ('method'), decided from the first decisive top-level key.
 */
export function peekKind(text: string): 'response' | 'method' | undefined {
  let kind: 'response' | 'method' | undefined;
  scanKeys(text, (key) => {
    if (key === 'result' || key === 'error') kind = 'response';
    else if (key === 'method') kind = 'method';
    return kind !== undefined;
  });
  return kind;
}

/** Replaces the top-level id of a serialized message; falls back to parse+stringify if it cannot be located. */
export function spliceId(text: string, id: RpcId | null): string {
  const span = findTopLevelId(text);
  const serialized = JSON.stringify(id);
  if (span) return text.slice(0, span[0]) + serialized + text.slice(span[1]);
  const parsed = JSON.parse(text) as Record<string, unknown>;
  parsed.id = id;
  return JSON.stringify(parsed);
}

/** Reads the top-level id of a serialized message cheaply (see findTopLevelId). */
export function peekId(text: string): RpcId | null | undefined {
  const span = findTopLevelId(text);
  if (!span) return undefined;
  return JSON.parse(text.slice(span[0], span[1])) as RpcId | null;
}
