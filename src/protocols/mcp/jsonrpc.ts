/**
 * MCP's JSON-RPC framing is the shared one (src/wire/jsonrpc.ts); what is MCP's own lives here.
 */
import { addResultMember, peekOutcome } from '../../wire/jsonrpc.ts';

export * from '../../wire/jsonrpc.ts';

/**
 * Adds `"resultType":"complete"` to the result object of a serialized response (a 2026-07-28 client requires it;
 * session-era servers never send it), leaving the rest of the bytes as they are.
 */
export function withResultType(text: string): string {
  return addResultMember(retireResourceNotFound(text), 'resultType', '"complete"');
}

/** Resource not found before 2026-07-28; that revision retired the code (basic/index, Error Codes) for -32602. */
export const RETIRED_RESOURCE_NOT_FOUND = -32002;

/**
 * A session-era upstream's -32002 (resource not found) as a 2026-07-28 client must get it: -32602, the rest of the
 * error (message, data) unchanged. Any other message is returned as it is.
 */
export function retireResourceNotFound(text: string): string {
  if (!text.includes(String(RETIRED_RESOURCE_NOT_FOUND)) || peekOutcome(text) !== 'error') return text;
  try {
    const m = JSON.parse(text) as { error?: { code?: unknown } };
    if (m.error?.code !== RETIRED_RESOURCE_NOT_FOUND) return text;
    m.error.code = -32602;
    return JSON.stringify(m);
  } catch {
    return text;
  }
}

/**
 * withResultType, plus the cache hints a 2026-07-28 ReadResourceResult requires (`ttlMs`, `cacheScope`), for a
 * session-era upstream's resources/read answer: it says nothing about caching, so nothing may be cached (0 ms) and
 * never shared between callers (`private`).
 */
export function withReadResultHints(text: string): string {
  return withResultType(addResultMember(addResultMember(text, 'cacheScope', '"private"'), 'ttlMs', '0'));
}
