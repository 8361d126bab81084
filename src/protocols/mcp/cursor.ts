/**
 * Merged pagination cursors. A federated list asks every upstream for a page at once; the merged cursor records,
 * per upstream that has more, that upstream's own cursor. Cursors are opaque to clients (base64url JSON).
 */
import { Errors, GatewayError } from '../../core/errors.ts';

export type CursorState = Readonly<Record<string, string>>;

export function encodeCursor(state: CursorState): string | undefined {
  return Object.keys(state).length === 0 ? undefined : Buffer.from(JSON.stringify({ v: 1, c: state })).toString('base64url');
}

/** Decodes a merged cursor; undefined cursor means "first page of every upstream". */
export function decodeCursor(cursor: unknown): CursorState | undefined {
  if (cursor === undefined) return undefined;
  if (typeof cursor !== 'string' || cursor.length > 8192) throw new GatewayError(Errors.MCP_INVALID_CURSOR);
  try {
    const parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { v?: unknown; c?: unknown };
    if (parsed.v === 1 && typeof parsed.c === 'object' && parsed.c !== null && !Array.isArray(parsed.c)) {
      const state = parsed.c as Record<string, unknown>;
      if (Object.values(state).every((v) => typeof v === 'string')) return state as CursorState;
    }
  } catch {
    // fall through to the error below
  }
  throw new GatewayError(Errors.MCP_INVALID_CURSOR);
}
