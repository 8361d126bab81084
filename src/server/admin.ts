/**
 * Operational endpoints, served by Hono (off the proxy hot path): /healthz, /readyz, and whatever the guard
 * services add (metrics, OAuth protected-resource metadata...).
 */
import { Hono } from 'hono';
import { Errors, GatewayError, jsonRpcErrorObject } from '../core/errors.ts';
import type { Gateway } from '../gateway/gateway.ts';

/** Lets a service mount its own endpoints on the admin app. */
export type AdminExtension = (app: Hono) => void;

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
