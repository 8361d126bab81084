/**
 * Operational endpoints, served by Hono (off the proxy hot path): /healthz, /readyz, and whatever the guard
 * services add (metrics, OAuth protected-resource metadata...).
 */
import { Hono } from 'hono';
import { Errors, GatewayError, jsonRpcErrorObject } from '../core/errors.ts';
import type { Gateway } from '../gateway/gateway.ts';
export { RESERVED_PATHS, reservedPathOf } from '../config/reserved-paths.ts';

/** Lets a service mount its own endpoints on the admin app. */
export type AdminExtension = (app: Hono) => void;

/** Whether the public listener answers this path itself (before routes): /healthz and the RFC 9728 metadata. */
export function publicOwnPath(path: string): boolean {
  return path === '/healthz' || path === '/.well-known/oauth-protected-resource' || path.startsWith('/.well-known/oauth-protected-resource/');
}

/**
 * What the public listener serves besides its routes: a minimal /healthz (no detail) and what the services expose
 * to callers (RFC 9728 protected-resource metadata). /readyz, /metrics and the console are on the admin listener only.
 */
export function createPublicApp(extensions: readonly AdminExtension[]): Hono {
  const app = new Hono();
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  for (const extend of extensions) extend(app);
  app.notFound((c) => {
    const err = new GatewayError(Errors.NOT_FOUND, `No route matches ${c.req.path}`);
    return c.json({ error: jsonRpcErrorObject(err) }, 404);
  });
  return app;
}

export function createAdminApp(gateway: Gateway, extensions: readonly AdminExtension[]): Hono {
  const app = new Hono();
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', (c) => {
    const r = gateway.readiness(c.req.query('strict') !== undefined);
    return c.json(r, r.ready ? 200 : 503);
  });
  for (const extend of extensions) extend(app);
  app.notFound((c) => {
    const err = new GatewayError(Errors.NOT_FOUND, `No route matches ${c.req.path}`);
    return c.json({ error: jsonRpcErrorObject(err) }, 404);
  });
  return app;
}
