/**
 * MCP's JSON-RPC framing is the shared one (src/wire/jsonrpc.ts); what is MCP's own lives here.
 */
import { addResultMember } from '../../wire/jsonrpc.ts';

export * from '../../wire/jsonrpc.ts';

/**
 * Adds `"resultType":"complete"` to the result object of a serialized response (a 2026-07-28 client requires it;
 * session-era servers never send it), leaving the rest of the bytes as they are.
 */
export function withResultType(text: string): string {
  return addResultMember(text, 'resultType', '"complete"');
}

/**
 * withResultType, plus the cache hints a 2026-07-28 ReadResourceResult requires (`ttlMs`, `cacheScope`), for a
 * session-era upstream's resources/read answer: it says nothing about caching, so nothing may be cached (0 ms) and
 * never shared between callers (`private`).
 */
export function withReadResultHints(text: string): string {
  return addResultMember(addResultMember(addResultMember(text, 'cacheScope', '"private"'), 'ttlMs', '0'), 'resultType', '"complete"');
}
