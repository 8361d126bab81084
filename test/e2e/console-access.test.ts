/**
 * Who reaches the operator console, and what it never shows, against a real gateway after a mixed MCP + model run:
 * - the console exists on the admin listener only: every console path is 404 on the public listener;
 * - no token is 401, a token for another resource is 401, a valid token of a non-administrator is 403 on every
 *   page and API (and the answer carries no data); the administrator gets 200;
 * - bad query parameters are 400 with the reason; the login form sets an HttpOnly cookie and refuses cross-origin posts;
 * - a strict Content-Security-Policy on every response; markup in a tool name is escaped in the HTML;
 * - no token, session fingerprint or redacted argument value appears on any page or API answer.
 * The browser behaviour (live updates, chain, denials, no script run from data) is in console-browser.test.ts.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CSP } from '../../src/console/service.ts';
import { ADMIN, FRUGAL, startConsoleRun, SUPPORT, WORKER, XSS_TOOL, type ConsoleRun } from '../helpers/console.ts';

let run: ConsoleRun;

beforeAll(async () => {
  run = await startConsoleRun();
}, 60_000);

afterAll(async () => {
  await run?.stop();
});

const PAGES = ['/console', '/console/denials', '/console/usage', '/console/upstreams', '/console/config', `/console/chain?trace=${'a'.repeat(32)}`, '/console/static/console.js', '/console/static/console.css'];
const APIS = ['/console/api/calls', '/console/api/denials', '/console/api/usage', '/console/api/upstreams', '/console/api/config', '/console/api/live', `/console/api/chain?trace=${'a'.repeat(32)}`];
const ROUTES = [...PAGES, ...APIS];

async function get(path: string, token?: string, headers: Record<string, string> = {}): Promise<Response> {
  const ctl = new AbortController();
  const res = await fetch(`${run.gw.adminUrl}${path}`, { headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers }, signal: ctl.signal });
  // The live stream stays open: read what is needed, then let go.
  if ((res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
    const reader = res.body!.getReader();
    const first = await reader.read();
    ctl.abort();
    return new Response(first.value ?? new Uint8Array(), { status: res.status, headers: res.headers });
  }
  return res;
}

describe('console access', () => {
  it('is absent from the public listener', async () => {
    for (const path of [...ROUTES, '/console/login']) {
      const res = await fetch(`${run.gw.url}${path}`, { headers: { authorization: `Bearer ${run.consoleToken(ADMIN)}` } });
      expect(res.status, path).toBe(404);
      expect(await res.text()).not.toContain('Tollgate console');
    }
  });

  it('answers 401 without a token or with a token for another resource, 403 to a non-administrator, on every route', async () => {
    const wrongAudience = run.gw.devToken(ADMIN); // names /mcp and /v1, not the console
    for (const path of ROUTES) {
      const none = await get(path);
      expect(none.status, path).toBe(401);
      const wrong = await get(path, wrongAudience);
      expect(wrong.status, path).toBe(401);
      for (const who of [WORKER, SUPPORT]) {
        const res = await get(path, run.consoleToken(who), { accept: path.includes('/api/') ? 'application/json' : 'text/html' });
        expect(res.status, `${path} as ${who}`).toBe(403);
        const body = await res.text();
        expect(body).not.toContain('tools__search');
        expect(body).not.toContain(FRUGAL);
      }
      const garbage = await get(path, 'not-a-jwt');
      expect(garbage.status, path).toBe(401);
    }
  });

  it('serves every page and API to an administrator, with a strict CSP and no-store', async () => {
    for (const path of ROUTES) {
      const res = await get(path, run.consoleToken(ADMIN));
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-security-policy'), path).toBe(CSP);
      expect(res.headers.get('cache-control'), path).toBe('no-store');
      expect(res.headers.get('x-content-type-options'), path).toBe('nosniff');
    }
    expect(CSP).toContain("script-src 'self'");
    expect(CSP).not.toContain('unsafe-inline');
  });

  it('validates query parameters (400 with the reason)', async () => {
    const token = run.consoleToken(ADMIN);
    const cases: Array<[string, RegExp]> = [
      ['/console/api/calls?limit=0', /limit/],
      ['/console/api/calls?limit=abc', /limit/],
      ['/console/api/calls?limit=1&limit=2', /more than once/],
      ['/console/api/calls?evil=1', /unknown parameter/],
      ['/console/api/chain?trace=../../etc', /trace/],
      ['/console/api/chain', /trace is required/],
      ['/console/api/usage?range=999d', /range/],
      ['/console/api/calls?protocol=%3Cscript%3E', /protocol/],
      ['/console/api/calls?principal=a%20b', /principal/],
    ];
    for (const [path, reason] of cases) {
      const res = await get(path, token);
      expect(res.status, path).toBe(400);
      const body = (await res.json()) as { error: { message: string; data: { code: string } } };
      expect(body.error.data.code).toBe('TG_INVALID_REQUEST');
      expect(body.error.message, path).toMatch(reason);
    }
    const page = await get('/console/chain?trace=%3Cimg%20src%3Dx%3E', token, { accept: 'text/html' });
    expect(page.status).toBe(400);
    expect(await page.text()).not.toContain('<img');
  });

  it('signs a browser in with an HttpOnly cookie, refuses cross-origin sign-in and non-administrators', async () => {
    const form = (token: string) => new URLSearchParams({ token });
    const post = (token: string, headers: Record<string, string> = {}) =>
      fetch(`${run.gw.adminUrl}/console/login`, { method: 'POST', body: form(token), redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers } });
    const ok = await post(run.consoleToken(ADMIN));
    expect(ok.status).toBe(303);
    const cookie = ok.headers.get('set-cookie')!;
    expect(cookie).toMatch(/^tg_console=/);
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    expect(cookie).toMatch(/Path=\/console/);
    const page = await fetch(`${run.gw.adminUrl}/console`, { headers: { cookie: cookie.split(';')[0]! } });
    expect(page.status).toBe(200);
    expect(await page.text()).not.toContain(run.consoleToken(ADMIN).split('.')[2]!);
    expect((await post(run.consoleToken(WORKER))).status).toBe(403);
    expect((await post('nope')).status).toBe(401);
    expect((await post(run.consoleToken(ADMIN), { origin: 'https://evil.example' })).status).toBe(403);
  });

  it('ends a live stream when the token that opened it expires', async () => {
    const token = run.gw.devToken(ADMIN, { audiences: [run.gw.resourceUri('/console')], ttlSeconds: 3 });
    const res = await fetch(`${run.gw.adminUrl}/console/api/live`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const started = Date.now();
    let text = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString();
    }
    expect(text).toContain('event: ready');
    // Ended by the gateway at the token's expiry (3 s; bound generous for a loaded machine), not by the client.
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it('escapes markup from tool names and shows no secret: no token, session fingerprint or redacted value', async () => {
    const token = run.consoleToken(ADMIN);
    const html = await (await get('/console', token)).text();
    expect(html).toContain('tools__&lt;img src=x onerror=alert(1)&gt;');
    expect(html).not.toContain(XSS_TOOL);
    // What the audit log holds that must stay there: session fingerprints.
    const dir = join(run.gw.dir, '..', '.tollgate', 'audit');
    const sessions = new Set<string>();
    for (const f of readdirSync(dir).filter((n) => n.endsWith('.jsonl'))) {
      for (const line of readFileSync(join(dir, f), 'utf8').split('\n')) {
        const m = /"session":"([^"]+)"/.exec(line);
        if (m) sessions.add(m[1]!);
      }
    }
    expect(sessions.size).toBeGreaterThan(0);
    const bodies: string[] = [];
    for (const path of ROUTES.filter((p) => !p.includes('/static/'))) bodies.push(await (await get(path, token)).text());
    bodies.push(await (await get('/console/api/denials?limit=100', token)).text());
    const all = bodies.join('\n');
    for (const s of sessions) expect(all).not.toContain(s);
    expect(all).not.toContain(token);
    expect(all).not.toContain('sk-live-should-never-show');
    expect(all).not.toMatch(/eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\./);
  });
});
