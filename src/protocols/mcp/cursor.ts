/**
 * Merged pagination cursors. A federated list asks every upstream for a page at once; the merged cursor records,
 * per upstream that has more, that upstream's own cursor. It is sealed (sealer.ts) with what it was issued for: the
 * list method and the view that listed (route, server scope, and the session, or the principal of a 2026 client).
 * A cursor that was forged, altered, or issued for another list or view opens as nothing and is answered -32602
 * (server/utilities/pagination.mdx: "Invalid cursors SHOULD result in an error with code -32602"); no upstream is
 * asked with a cursor the gateway did not issue for that list.
 */
import { createHash } from 'node:crypto';
import { Errors, GatewayError } from '../../core/errors.ts';
import { Sealer, keysFingerprint, type SealKey } from './sealer.ts';

export type CursorState = Readonly<Record<string, string>>;

export class Cursors {
  private sealer: Sealer;
  private keys: string;

  constructor(keys: readonly SealKey[]) {
    this.keys = keysFingerprint(keys);
    this.sealer = new Sealer('mcp-cursor', keys);
  }

  /** New keys: cursors sealed under the old ones are no longer accepted (clients list again from the start). */
  reconfigure(keys: readonly SealKey[]): void {
    const fp = keysFingerprint(keys);
    if (fp === this.keys) return;
    this.keys = fp;
    this.sealer = new Sealer('mcp-cursor', keys);
  }

  /** The cursor of the next page (undefined: no upstream has more), bound to `issuedFor`. */
  encode(state: CursorState, issuedFor: string): string | undefined {
    return Object.keys(state).length === 0 ? undefined : this.sealer.seal({ b: bindingOf(issuedFor), c: state });
  }

  /** The per-upstream cursors of a client's cursor; undefined cursor means "first page of every upstream". */
  decode(cursor: unknown, issuedFor: string): CursorState | undefined {
    if (cursor === undefined) return undefined;
    const opened = typeof cursor === 'string' ? (this.sealer.open(cursor) as { b?: unknown; c?: unknown } | undefined) : undefined;
    if (opened !== undefined && opened !== null && opened.b === bindingOf(issuedFor) && typeof opened.c === 'object' && opened.c !== null && !Array.isArray(opened.c)) {
      const state = opened.c as Record<string, unknown>;
      if (Object.values(state).every((v) => typeof v === 'string')) return state as CursorState;
    }
    throw new GatewayError(Errors.MCP_INVALID_CURSOR);
  }
}

/** A short digest of what a cursor was issued for (kept short: the cursor travels in every page request). */
function bindingOf(issuedFor: string): string {
  return createHash('sha256').update(issuedFor).digest('base64url').slice(0, 16);
}
