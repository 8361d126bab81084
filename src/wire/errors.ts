/**
 * A GatewayError in each protocol's own shape. Codes, statuses and messages come from src/core/errors.ts; this
 * module only says how each wire format carries them, so every adapter renders the same error the same way:
 *
 * - JSON-RPC 2.0 (MCP, A2A JSON-RPC): `{"jsonrpc":"2.0","id":..,"error":{code,message,data:{code:"TG_.."}}}`;
 *   in-band errors answering a request go out as HTTP 200, transport-level ones with their HTTP status.
 * - A2A HTTP+JSON (REST): google.rpc.Status as JSON (AIP-193), the stable code as the ErrorInfo reason.
 * - OpenAI-compatible: `{"error":{"message","type","param","code"}}` (what OpenAI and vLLM clients parse).
 * - KServe v2 / Triton: `{"error":"<message>","code":"TG_.."}` (KServe clients read `error`; the code rides along).
 * - Plain HTTP: `{"error":{"code":"TG_..","message":".."}}`.
 */
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { A2A_ERROR_DOMAIN, A2A_REASONS, type GatewayError } from '../core/errors.ts';
import { errorResponse, type RpcId } from './jsonrpc.ts';

/** Writes a complete JSON response (no chunking, one write); ends an already-started response instead. */
function send(res: ServerResponse, status: number, body: string, err: GatewayError, extra?: OutgoingHttpHeaders): void {
  if (res.headersSent || res.destroyed) {
    // Too late for an error answer (a stream was already under way): end the exchange so the client sees a break.
    if (!res.writableEnded) res.destroy();
    return;
  }
  const headers: OutgoingHttpHeaders = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...err.headers, ...extra };
  res.writeHead(status, headers);
  res.end(body);
}

/** HTTP status of a JSON-RPC error answer: in-band errors answering a request are HTTP 200. */
export function jsonRpcStatus(err: GatewayError, id: RpcId | null): number {
  return err.def.inBand && id !== null ? 200 : err.def.status;
}

export function writeJsonRpcError(res: ServerResponse, id: RpcId | null, err: GatewayError, options?: { status?: number; headers?: OutgoingHttpHeaders }): void {
  send(res, options?.status ?? jsonRpcStatus(err, id), errorResponse(id, err), err, options?.headers);
}

/** The `error` object of a plain HTTP error body. */
export function httpErrorBody(err: GatewayError): string {
  return JSON.stringify({ error: { code: err.def.code, message: err.message, ...(err.data !== undefined && { data: err.data }) } });
}

export function writeHttpError(res: ServerResponse, err: GatewayError, headers?: OutgoingHttpHeaders): void {
  send(res, err.def.status, httpErrorBody(err), err, headers);
}

/** OpenAI's error `type` for an HTTP status (the classes OpenAI's SDKs raise). */
export function openAiErrorType(status: number): string {
  switch (status) {
    case 401:
      return 'authentication_error';
    case 403:
      return 'permission_error';
    case 404:
      return 'not_found_error';
    case 409:
      return 'conflict_error';
    case 429:
      return 'rate_limit_error';
    default:
      return status >= 500 ? 'server_error' : 'invalid_request_error';
  }
}

export function openAiErrorBody(err: GatewayError): string {
  const param = typeof err.data?.param === 'string' ? err.data.param : null;
  return JSON.stringify({ error: { message: err.message, type: openAiErrorType(err.def.status), param, code: err.def.code } });
}

export function writeOpenAiError(res: ServerResponse, err: GatewayError, headers?: OutgoingHttpHeaders): void {
  send(res, err.def.status, openAiErrorBody(err), err, headers);
}

/** KServe v2's error body: `error` is what KServe clients (tritonclient) read; `code` is the gateway's stable code. */
export function kserveErrorBody(err: GatewayError): string {
  return JSON.stringify({ error: err.message, code: err.def.code });
}

export function writeKServeError(res: ServerResponse, err: GatewayError, headers?: OutgoingHttpHeaders): void {
  send(res, err.def.status, kserveErrorBody(err), err, headers);
}

/** google.rpc.Code names by HTTP status (AIP-193's mapping). */
const RPC_STATUS: Readonly<Record<number, string>> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  405: 'UNIMPLEMENTED',
  406: 'INVALID_ARGUMENT',
  409: 'ABORTED',
  413: 'INVALID_ARGUMENT',
  415: 'INVALID_ARGUMENT',
  429: 'RESOURCE_EXHAUSTED',
  499: 'CANCELLED',
  500: 'INTERNAL',
  501: 'UNIMPLEMENTED',
  502: 'UNAVAILABLE',
  503: 'UNAVAILABLE',
  504: 'DEADLINE_EXCEEDED',
};

const ERROR_INFO = 'type.googleapis.com/google.rpc.ErrorInfo';

/**
 * The google.rpc.Code of the A2A errors whose code the HTTP status alone does not give (A2A v1.0.1, 5.4, and the
 * A2A SDK): a refused capability or version is a failed precondition, a bad agent answer an internal error.
 */
const A2A_STATUS: Readonly<Record<string, string>> = {
  PUSH_NOTIFICATION_NOT_SUPPORTED: 'FAILED_PRECONDITION',
  UNSUPPORTED_OPERATION: 'FAILED_PRECONDITION',
  VERSION_NOT_SUPPORTED: 'FAILED_PRECONDITION',
  INVALID_AGENT_RESPONSE: 'INTERNAL',
};

/**
 * The google.rpc.ErrorInfo of an error in an A2A answer. An error of the A2A specification carries its reason
 * (`TASK_NOT_FOUND`...) in the domain `a2a-protocol.org`, with the gateway's stable code in `metadata.code`; any other
 * carries the stable code as its reason in the domain `tollgate.dev`. Metadata values are strings (proto map).
 */
export function a2aErrorInfo(err: GatewayError): { '@type': string; reason: string; domain: string; metadata: Record<string, string> } {
  const reason = A2A_REASONS.get(err.def);
  const metadata: Record<string, string> = reason === undefined ? {} : { code: err.def.code };
  if (err.data !== undefined) for (const [k, v] of Object.entries(err.data)) metadata[k] = typeof v === 'string' ? v : JSON.stringify(v);
  return { '@type': ERROR_INFO, reason: reason ?? err.def.code, domain: reason === undefined ? 'tollgate.dev' : A2A_ERROR_DOMAIN, metadata };
}

/**
 * google.rpc.Status as JSON (AIP-193). For a v0.3 caller (`legacy`) the body also has the top-level `code` (the
 * JSON-RPC code) and `message` of the v0.3 REST error body, which the A2A SDKs' v0.3 REST clients read to raise
 * their typed errors; a Status reader ignores them.
 */
export function a2aRestErrorBody(err: GatewayError, legacy = false): string {
  const status = err.def.status;
  const reason = A2A_REASONS.get(err.def);
  const code = (reason === undefined ? undefined : A2A_STATUS[reason]) ?? RPC_STATUS[status] ?? (status >= 500 ? 'INTERNAL' : 'UNKNOWN');
  const error = { code: status, status: code, message: err.message, details: [a2aErrorInfo(err)] };
  return JSON.stringify(legacy ? { code: err.def.rpc, message: err.message, error } : { error });
}

/** A2A's HTTP+JSON media type: what the binding's answers, errors included, are labelled with (A2A v1.0, 11.1). */
const A2A_JSON = 'application/a2a+json';

export function writeA2aRestError(res: ServerResponse, err: GatewayError, headers?: OutgoingHttpHeaders, legacy = false): void {
  send(res, err.def.status, a2aRestErrorBody(err, legacy), err, { 'content-type': A2A_JSON, ...headers });
}

/**
 * A JSON-RPC error answer of the A2A binding. An error of the A2A specification has `data` as A2A v1.0 (9.5) and the
 * A2A SDKs write it: an array holding its google.rpc.ErrorInfo (the stable code in `metadata.code`); any other keeps
 * the gateway's `data` object with the stable code in `data.code`.
 */
export function a2aJsonRpcErrorResponse(id: RpcId | null, err: GatewayError): string {
  if (!A2A_REASONS.has(err.def)) return errorResponse(id, err);
  return JSON.stringify({ jsonrpc: '2.0', id, error: { code: err.def.rpc, message: err.message, data: [a2aErrorInfo(err)] } });
}

/**
 * An in-band A2A JSON-RPC error as one SSE error event (HTTP 200, text/event-stream): how a2a-python 0.3 answers
 * its streaming methods (message/stream, tasks/resubscribe) whatever happens (the JS SDK's server too, for
 * tasks/resubscribe), and all a2a-python 0.3's client reads there (text/event-stream only; the JS SDK's 0.3 client
 * reads both). Refusals of the exchange itself keep their status.
 */
export function writeA2aJsonRpcErrorEvent(res: ServerResponse, id: RpcId | null, err: GatewayError): void {
  if (!err.def.inBand || id === null) return writeA2aJsonRpcError(res, id, err);
  send(res, 200, `data: ${a2aJsonRpcErrorResponse(id, err)}\n\n`, err, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
}

/**
 * Writes an A2A JSON-RPC error. Every answer to a JSON-RPC message is HTTP 200, invalid envelopes and unparsable
 * bodies included (what A2A servers and the A2A TCK do); refusals of the HTTP exchange itself (authentication, size,
 * content type, load) keep their HTTP status.
 */
export function writeA2aJsonRpcError(res: ServerResponse, id: RpcId | null, err: GatewayError): void {
  const envelope = err.def.code === 'TG_PARSE_ERROR' || err.def.code === 'TG_INVALID_REQUEST' || err.def.code === 'TG_BATCH_NOT_SUPPORTED';
  send(res, envelope || (err.def.inBand && id !== null) ? 200 : err.def.status, a2aJsonRpcErrorResponse(id, err), err);
}
