/** How the MCP adapter writes an error: a JSON-RPC error object, with the HTTP status the transport calls for. */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { Errors, jsonRpcErrorObject, type GatewayError } from '../../core/errors.ts';
import { sendBody } from '../../server/io.ts';
import { RETIRED_RESOURCE_NOT_FOUND, errorResponse, type RpcId } from './jsonrpc.ts';
import { isModernVersion } from './modern.ts';

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

/**
 * Whether a request's MCP-Protocol-Version header names the stateless era: an error written before its body is read
 * (authentication, admission) is answered in that era's codes (see modernCode).
 */
export function modernHeader(req: IncomingMessage | undefined): boolean {
  const hv = req?.headers['mcp-protocol-version'];
  return typeof hv === 'string' && isModernVersion(hv.trim());
}

/** The codes 2026-07-28 defines in the range it reserves (basic/index, Error Codes): HeaderMismatch,
 * MissingRequiredClientCapability, UnsupportedProtocolVersion. */
const MODERN_DEFINED: ReadonlySet<number> = new Set([-32020, -32021, -32022]);

/**
 * The JSON-RPC code a 2026-07-28 client gets for one of the gateway's errors. That revision reserves -32020..-32099
 * for codes it defines ("MUST NOT emit any code from this sub-range that is not defined") and asks new
 * implementations not to use -32000..-32019; codes "for purposes not defined by this specification SHOULD be
 * allocated outside the JSON-RPC reserved range". So the gateway's own codes there (-32060 unauthenticated, -32062
 * policy denial, -32064 rate limited, -32070 upstream unavailable...) move out of it by 1000 (-31060, -31062...):
 * the same number to read, the same meaning, and `data.code` (the stable TG_ code) unchanged. The retired -32002
 * (resource not found) is -32602 there. Session-era clients keep the codes as documented.
 */
export function modernCode(rpc: number): number {
  if (rpc === RETIRED_RESOURCE_NOT_FOUND) return -32602;
  if (rpc >= -32099 && rpc <= -32000 && !MODERN_DEFINED.has(rpc)) return rpc + 1000;
  return rpc;
}

/** An error for a 2026-07-28 client (see modernCode). */
export function modernErrorResponse(id: RpcId | null, err: GatewayError): string {
  const code = modernCode(err.def.rpc);
  if (code === err.def.rpc) return errorResponse(id, err);
  return JSON.stringify({ jsonrpc: '2.0', id, error: { ...jsonRpcErrorObject(err), code } });
}
