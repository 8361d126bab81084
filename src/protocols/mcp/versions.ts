/** MCP protocol versions Tollgate speaks, newest first, and the negotiation rules of the session era. */

/** Session-era versions served over Streamable HTTP (initialize + Mcp-Session-Id). */
export const SESSION_VERSIONS = ['2025-11-25', '2025-06-18', '2025-03-26'] as const;
/** The legacy HTTP+SSE transport's version (accepted in initialize for old clients). */
export const LEGACY_VERSION = '2024-11-05';
export const LATEST_SESSION_VERSION = SESSION_VERSIONS[0];
/** Assumed when a session-era request carries no MCP-Protocol-Version header (spec: basic/transports). */
export const DEFAULT_HEADER_VERSION = '2025-03-26';

const known = new Set<string>([...SESSION_VERSIONS, LEGACY_VERSION]);

export function isSupportedVersion(v: string): boolean {
  return known.has(v);
}

/** The version answered to an initialize request: the client's if supported, else our latest (spec: lifecycle). */
export function negotiateVersion(requested: unknown): string {
  return typeof requested === 'string' && known.has(requested) ? requested : LATEST_SESSION_VERSION;
}
