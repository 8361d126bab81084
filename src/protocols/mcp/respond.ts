/** How the MCP adapter writes an error: a JSON-RPC error object, with the HTTP status the transport calls for. */
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { Errors, jsonRpcErrorObject, type GatewayError } from '../../core/errors.ts';
import { sendBody } from '../../server/io.ts';
import { RETIRED_RESOURCE_NOT_FOUND, errorResponse, type RpcId } from './jsonrpc.ts';

/** HTTP status of an error answer. 2026-07-28: an unknown method is 404 even though it answers a request. */
export function statusOf(err: GatewayError, id: RpcId | null, modern: boolean): number {
  if (modern && err.def === Errors.METHOD_NOT_FOUND) return 404;
  return err.def.inBand && id !== null ? 200 : err.def.status;
}

/**
 * HTTP status of an upstream's JSON-RPC error relayed as a whole JSON body to a 2026-07-28 client: 200 (the error
 * is the payload) except the codes the transport ties to a status whatever produced them (-32021 -> 400).
 */
export function relayedErrorStatus(code: number | undefined): number {
  return code === Errors.MCP_MISSING_CLIENT_CAPABILITY.rpc ? Errors.MCP_MISSING_CLIENT_CAPABILITY.status : 200;
}

/** Writes a JSON-RPC error: in-band errors answering a request go out as HTTP 200, the others with their status. */
export function writeError(res: ServerResponse, id: RpcId | null, err: GatewayError, extra?: OutgoingHttpHeaders, modern = false): void {
  const headers: OutgoingHttpHeaders = { ...err.headers, ...extra };
  sendBody(res, statusOf(err, id, modern), 'application/json', modern ? modernErrorResponse(id, err) : errorResponse(id, err), headers);
}

/** An error for a 2026-07-28 client: the retired -32002 (resource not found) is -32602 there. */
export function modernErrorResponse(id: RpcId | null, err: GatewayError): string {
  if (err.def.rpc !== RETIRED_RESOURCE_NOT_FOUND) return errorResponse(id, err);
  return JSON.stringify({ jsonrpc: '2.0', id, error: { ...jsonRpcErrorObject(err), code: -32602 } });
}
