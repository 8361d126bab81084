/** The gateway's own endpoint paths (src/server/admin.ts serves them), which no route may shadow. */

/**
 * Paths the gateway serves itself, on either listener: no route may be configured at or under one of them (it would
 * shadow it), and on the public listener the public ones are answered before any route is matched.
 */
export const RESERVED_PATHS: readonly string[] = ['/healthz', '/readyz', '/metrics', '/limits', '/console', '/.well-known/oauth-protected-resource'];

/** The reserved path `path` is, or is under; undefined when none. */
export function reservedPathOf(path: string): string | undefined {
  for (const r of RESERVED_PATHS) if (path === r || path.startsWith(`${r}/`)) return r;
  return undefined;
}

