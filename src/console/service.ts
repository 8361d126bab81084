/**
 * The operator console: read-only pages and a JSON/SSE API under /console, mounted on the admin listener only
 * (main.ts never gives it to the public listener). Every route but the login form requires an administrator
 * (auth.ts); every response carries a strict Content-Security-Policy (scripts and styles from /console/static only,
 * nothing inline, no framing) and `Cache-Control: no-store`. Query parameters are validated; a bad one is 400.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Context, Hono } from 'hono';
import { deleteCookie, setCookie } from 'hono/cookie';
import { streamSSE } from 'hono/streaming';
import { Errors, GatewayError, jsonRpcErrorObject } from '../core/errors.ts';
import type { AdminExtension } from '../server/admin.ts';
import { authenticate, COOKIE, requireAdmin, type AdminAuthOptions, type AuthResult } from './auth.ts';
import { ConsoleData, type ConsoleSources } from './data.ts';
import { chainPage, configPage, denialsPage, forbiddenPage, layout, livePage, loginPage, upstreamsPage, usagePage } from './pages.ts';
import { parseParams, RANGES, type Params } from './params.ts';

export const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const STATIC: Readonly<Record<string, { type: string; body: string }>> = {
  'console.js': { type: 'text/javascript; charset=utf-8', body: readFileSync(join(import.meta.dirname, 'static', 'console.js'), 'utf8') },
  'console.css': { type: 'text/css; charset=utf-8', body: readFileSync(join(import.meta.dirname, 'static', 'console.css'), 'utf8') },
};

export interface ConsoleOptions extends AdminAuthOptions {
  readonly sources: ConsoleSources;
  /** Link template to the trace backend (`{traceId}`), from config. */
  readonly traceUrl: () => string | undefined;
  /** Keep-alive comments on the live stream. */
  readonly keepAliveMs?: number;
}

function secure(c: Context): void {
  c.header('content-security-policy', CSP);
  c.header('x-content-type-options', 'nosniff');
  c.header('referrer-policy', 'no-referrer');
  c.header('x-frame-options', 'DENY');
  c.header('cache-control', 'no-store');
}

function wantsHtml(c: Context): boolean {
  return !c.req.path.startsWith('/console/api/') && (c.req.header('accept') ?? '').includes('text/html');
}

function apiError(c: Context, def: (typeof Errors)[keyof typeof Errors], message: string): Response {
  return c.json({ error: jsonRpcErrorObject(new GatewayError(def, message)) }, def.status as 400);
}

/** Mounts the console on an admin app. */
export function consoleExtension(opts: ConsoleOptions): AdminExtension {
  const data = new ConsoleData(opts.sources);
  const refuse = async (c: Context, r: Extract<AuthResult, { ok: false }>): Promise<Response> => {
    secure(c);
    if (r.status === 401) c.header('www-authenticate', 'Bearer realm="tollgate-console"');
    if (!wantsHtml(c)) return c.json({ error: { code: r.code, message: r.reason } }, r.status);
    const page = r.status === 401 ? layout('Sign in', '', loginPage(undefined)) : layout('Forbidden', '', forbiddenPage(r.reason));
    return c.html(page, r.status);
  };
  const guard = requireAdmin(opts, refuse);
  const params = (c: Context): Params | string => parseParams(c.req.queries());
  const bad = (c: Context, reason: string): Response | Promise<Response> => {
    secure(c);
    return wantsHtml(c) ? c.html(layout('Bad request', '', forbiddenPage(reason)), 400) : apiError(c, Errors.INVALID_REQUEST, reason);
  };
  const admin = (c: Context): string => c.get('admin' as never) as string;

  return (app: Hono) => {
    // Sign-in and sign-out: the only routes open without a token.
    app.get('/console/login', (c) => {
      secure(c);
      return c.html(layout('Sign in', '', loginPage(undefined)));
    });
    app.post('/console/login', async (c) => {
      secure(c);
      const origin = c.req.header('origin');
      const host = c.req.header('host');
      if (origin !== undefined && (host === undefined || new URL(origin).host !== host)) return c.html(layout('Sign in', '', loginPage('Cross-origin sign-in refused.')), 403);
      const form = await c.req.parseBody().catch(() => ({}) as Record<string, unknown>);
      const token = typeof form.token === 'string' ? form.token.trim() : '';
      const r = await authenticate(token === '' ? undefined : token, opts);
      if (!r.ok) return c.html(layout('Sign in', '', loginPage(r.status === 403 ? r.reason : 'That token is not valid for this console.')), r.status);
      const maxAge = Math.max(1, Math.min(8 * 3600, Math.floor((r.expiresAt - Date.now()) / 1000)));
      setCookie(c, COOKIE, token, { httpOnly: true, sameSite: 'Strict', path: '/console', maxAge, secure: c.req.url.startsWith('https:') });
      return c.redirect('/console', 303);
    });
    app.post('/console/logout', (c) => {
      secure(c);
      deleteCookie(c, COOKIE, { path: '/console' });
      return c.redirect('/console/login', 303);
    });

    app.use('/console', guard);
    app.use('/console/*', guard);

    app.get('/console/static/:file', (c) => {
      secure(c);
      const file = c.req.param('file');
      const f = Object.hasOwn(STATIC, file) ? STATIC[file] : undefined;
      if (f === undefined) return apiError(c, Errors.NOT_FOUND, 'No such console file');
      return c.body(f.body, 200, { 'content-type': f.type });
    });

    // Pages.
    app.get('/console', (c) => {
      const p = params(c);
      if (typeof p === 'string') return bad(c, p);
      secure(c);
      const rows = data.calls({ limit: p.limit, principal: p.principal, protocol: p.protocol });
      return c.html(layout('Live calls', '/console', livePage(rows, p), { admin: admin(c), live: true }));
    });
    app.get('/console/chain', (c) => {
      const p = params(c);
      if (typeof p === 'string') return bad(c, p);
      secure(c);
      if (p.trace === undefined) return c.html(layout('Bad request', '', forbiddenPage('trace is required (32 hex digits)')), 400);
      return c.html(layout('Task chain', '', chainPage(p.trace, data.chain(p.trace), opts.traceUrl()), { admin: admin(c) }));
    });
    app.get('/console/denials', (c) => {
      const p = params(c);
      if (typeof p === 'string') return bad(c, p);
      secure(c);
      return c.html(layout('Denials', '/console/denials', denialsPage(data.denials(p.limit, p.principal), p.principal), { admin: admin(c) }));
    });
    app.get('/console/usage', async (c) => {
      const p = params(c);
      if (typeof p === 'string') return bad(c, p);
      secure(c);
      const t0 = performance.now();
      const now = Date.now();
      const series = data.usage({ since: now - RANGES[p.range], until: now, buckets: p.buckets, by: p.by, principal: p.principal });
      const ms = performance.now() - t0;
      const limits = await opts.sources.limits({ principal: p.principal?.endsWith('*') ? undefined : p.principal }).catch(() => undefined);
      return c.html(layout('Budgets and usage', '/console/usage', usagePage(series, limits, p, ms), { admin: admin(c) }));
    });
    app.get('/console/upstreams', async (c) => {
      secure(c);
      return c.html(layout('Upstreams', '/console/upstreams', upstreamsPage(await data.upstreams()), { admin: admin(c) }));
    });
    app.get('/console/config', (c) => {
      secure(c);
      return c.html(layout('Config and policy', '/console/config', configPage(data.config()), { admin: admin(c) }));
    });

    // API.
    app.get('/console/api/calls', (c) => {
      const p = params(c);
      if (typeof p === 'string') return bad(c, p);
      secure(c);
      return c.json({ calls: data.calls({ limit: p.limit, principal: p.principal, protocol: p.protocol, decision: p.decision }) });
    });
    app.get('/console/api/chain', (c) => {
      const p = params(c);
      if (typeof p === 'string') return bad(c, p);
      secure(c);
      if (p.trace === undefined) return apiError(c, Errors.INVALID_REQUEST, 'trace is required (32 hex digits)');
      const url = opts.traceUrl();
      return c.json({ trace: p.trace, traceUrl: url?.replaceAll('{traceId}', p.trace), records: data.chain(p.trace) });
    });
    app.get('/console/api/denials', (c) => {
      const p = params(c);
      if (typeof p === 'string') return bad(c, p);
      secure(c);
      return c.json({ denials: data.denials(p.limit, p.principal) });
    });
    app.get('/console/api/usage', async (c) => {
      const p = params(c);
      if (typeof p === 'string') return bad(c, p);
      secure(c);
      const now = Date.now();
      const series = data.usage({ since: now - RANGES[p.range], until: now, buckets: p.buckets, by: p.by, principal: p.principal });
      const limits = await opts.sources.limits({ principal: p.principal?.endsWith('*') ? undefined : p.principal }).catch((err: Error) => ({ error: err.message }));
      return c.json({ usage: series, limits });
    });
    app.get('/console/api/upstreams', async (c) => {
      secure(c);
      return c.json({ upstreams: await data.upstreams() });
    });
    app.get('/console/api/config', (c) => {
      secure(c);
      return c.json(data.config());
    });
    app.get('/console/api/live', (c) => {
      const p = params(c);
      if (typeof p === 'string') return bad(c, p);
      secure(c);
      const res = streamSSE(c, async (stream) => {
        const stop = opts.sources.live.listen((v) => {
          if (v.kind !== 'call') return;
          if (p.protocol !== undefined && v.protocol !== p.protocol) return;
          if (p.principal !== undefined && !(p.principal.endsWith('*') ? (v.principal ?? '').startsWith(p.principal.slice(0, -1)) : v.principal === p.principal)) return;
          void stream.writeSSE({ event: 'call', data: JSON.stringify(v) });
        });
        if (stop === undefined) {
          await stream.writeSSE({ event: 'error', data: JSON.stringify({ code: Errors.CAP_REACHED.code, message: 'Too many live streams open' }) });
          return;
        }
        await stream.writeSSE({ event: 'ready', data: '{}' });
        const keepAlive = setInterval(() => void stream.write(': keep-alive\n\n'), opts.keepAliveMs ?? 15_000);
        // The stream lives no longer than the token that opened it (the browser reconnects, and is asked again).
        const expiresAt = c.get('adminExpiresAt' as never) as number;
        const expiry = setTimeout(() => stream.abort(), Math.max(0, Math.min(2 ** 31 - 1, expiresAt - Date.now())));
        await new Promise<void>((resolve) => stream.onAbort(resolve));
        clearInterval(keepAlive);
        clearTimeout(expiry);
        stop();
      });
      res.headers.set('cache-control', 'no-store');
      return res;
    });
  };
}
