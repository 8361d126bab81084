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
import type { GatewayError } from '../core/errors.ts';
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

export function a2aRestErrorBody(err: GatewayError): string {
  const status = err.def.status;
  const metadata: Record<string, string> = {};
  if (err.data !== undefined) for (const [k, v] of Object.entries(err.data)) metadata[k] = typeof v === 'string' ? v : JSON.stringify(v);
  return JSON.stringify({
    error: {
      code: status,
      status: RPC_STATUS[status] ?? (status >= 500 ? 'INTERNAL' : 'UNKNOWN'),
      message: err.message,
      details: [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: err.def.code, domain: 'tollgate.dev', metadata }],
    },
  });
}

export function writeA2aRestError(res: ServerResponse, err: GatewayError, headers?: OutgoingHttpHeaders): void {
  send(res, err.def.status, a2aRestErrorBody(err), err, headers);
}
