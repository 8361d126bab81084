/**
 * RFC 9728 OAuth 2.0 Protected Resource Metadata at `/.well-known/oauth-protected-resource[/<path>]`, served on the
 * admin app: `resource` is the canonical URI of what lives at <path> (the value tokens' `aud` may carry), with the
 * OIDC issuers the route accepts as authorization servers and the scopes it requires.
 */
import type { Hono } from 'hono';
import type { AdminExtension } from '../../server/admin.ts';
import { baseFor, METADATA_PATH, type RoutePolicy } from './policy.ts';

export interface MetadataView {
  /** Base URLs resources are named under (no trailing slash); the one the request came in by is used. */
  readonly bases: readonly string[];
  /** The policy of the route serving `path`, and the route's mount that matched (undefined: no route there). */
  lookup(path: string): RoutePolicy | undefined;
}

export function protectedResourceMetadata(view: () => MetadataView | undefined): AdminExtension {
  return (app: Hono) => {
    const serve = (path: string, host: string | undefined): Response => {
      const v = view();
      // The root document describes a route mounted at '/' when there is one, else the gateway itself.
      const policy = v?.lookup(path);
      if (v === undefined || (path !== '' && policy === undefined)) {
        return Response.json({ error: 'not_found', error_description: `No protected resource at ${path || '/'}` }, { status: 404 });
      }
      const doc: Record<string, unknown> = {
        resource: `${baseFor(v.bases, host)}${path}`,
        bearer_methods_supported: ['header'],
        resource_name: 'Tollgate',
      };
      if (policy && policy.authorizationServers.length > 0) doc.authorization_servers = policy.authorizationServers;
      if (policy && policy.scopes.length > 0) doc.scopes_supported = policy.scopes;
      return Response.json(doc, { headers: { 'cache-control': 'public, max-age=300' } });
    };
    app.get(METADATA_PATH, (c) => serve('', c.req.header('host')));
    app.get(`${METADATA_PATH}/*`, (c) => {
      const path = c.req.path.slice(METADATA_PATH.length).replace(/\/+$/, '');
      return serve(path, c.req.header('host'));
    });
  };
}
