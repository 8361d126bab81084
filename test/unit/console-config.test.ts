/**
 * The console's config, parameters and record views: never anonymous (enabled without administrators is refused at
 * load), the trace link is an http(s) template, the admin listener comes from config or the environment, query
 * parameters are bounded, and the record view drops session fingerprints and scrubs credentials at any depth.
 */
import { describe, expect, it } from 'vitest';
import { isAdmin } from '../../src/console/auth.ts';
import { LiveFeed } from '../../src/console/live.ts';
import { parseParams } from '../../src/console/params.ts';
import { scrub, viewOf } from '../../src/console/views.ts';
import { adminListener, adminSpec } from '../../src/server/admin-config.ts';
import type { AuditRecord } from '../../src/audit/format.ts';

describe('admin and console config', () => {
  it('refuses a console without administrators and a trace link that is not an http(s) template', () => {
    expect(adminSpec.safeParse({ console: { enabled: true } }).success).toBe(false);
    expect(adminSpec.safeParse({ principals: ['spiffe://x/ops'], console: { enabled: true } }).success).toBe(true);
    expect(adminSpec.safeParse({ groups: ['ops'], console: { enabled: true } }).success).toBe(true);
    for (const traceUrl of ['javascript:alert(1)//{traceId}', 'https://jaeger/trace/', 'ftp://x/{traceId}']) {
      expect(adminSpec.safeParse({ principals: ['a'], console: { enabled: true, traceUrl } }).success, traceUrl).toBe(false);
    }
    expect(adminSpec.safeParse({ console: { enabled: false } }).success).toBe(true);
  });

  it('always starts the admin listener: 127.0.0.1:9090 by default, ephemeral beside an ephemeral public port, config or TOLLGATE_ADMIN_PORT', () => {
    const spec = adminSpec.parse({});
    expect(adminListener(spec, 8080, {})).toEqual({ host: '127.0.0.1', port: 9090 });
    expect(adminListener(spec, 0, {})).toEqual({ host: '127.0.0.1', port: 0 });
    expect(adminListener(adminSpec.parse({ listener: { port: 9191 } }), 8080, {})).toEqual({ host: '127.0.0.1', port: 9191 });
    expect(adminListener(spec, 8080, { TOLLGATE_ADMIN_PORT: '9191', TOLLGATE_ADMIN_HOST: '0.0.0.0' })).toEqual({ host: '0.0.0.0', port: 9191 });
    expect(adminListener(spec, 8080, { TOLLGATE_ADMIN_PORT: 'nope' })).toBeUndefined();
  });

  it('administrators by exact id, prefix, or OIDC group; never anonymous', () => {
    const spec = adminSpec.parse({ principals: ['spiffe://ex/ops/*', 'spiffe://ex/root'], groups: ['tg-admins'] });
    const p = (id: string, claims: Record<string, unknown> = {}, issuer: 'spiffe' | 'oidc' | 'anonymous' = 'spiffe') => ({ id, issuer, trustDomain: 'ex', path: '', segments: [], claims, expiresAt: 0 });
    expect(isAdmin(spec, p('spiffe://ex/ops/a'))).toBe(true);
    expect(isAdmin(spec, p('spiffe://ex/root'))).toBe(true);
    expect(isAdmin(spec, p('spiffe://ex/rootkit'))).toBe(false);
    expect(isAdmin(spec, p('https://idp/alice', { groups: ['dev', 'tg-admins'] }, 'oidc'))).toBe(true);
    expect(isAdmin(spec, p('https://idp/bob', { groups: ['dev'] }, 'oidc'))).toBe(false);
    expect(isAdmin(adminSpec.parse({ principals: ['*'] }), p('anonymous', {}, 'anonymous'))).toBe(false);
  });
});

describe('console parameters and views', () => {
  it('bounds and validates parameters', () => {
    expect(parseParams({})).toMatchObject({ limit: 100, range: '24h', by: 'team', buckets: 48 });
    expect(parseParams({ principal: [''], limit: ['5'] })).not.toHaveProperty('principal');
    expect(parseParams({ limit: ['1001'] })).toMatch(/limit/);
    expect(parseParams({ trace: ['A'.repeat(32)] })).toMatch(/trace/);
    expect(parseParams({ x: ['1'] })).toMatch(/unknown parameter/);
  });

  it('drops the session fingerprint and scrubs credentials by name and by value, at any depth', () => {
    const jwt = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln';
    const rec = {
      seq: 7,
      prev: '0'.repeat(64),
      kind: 'call',
      time: '2026-12-05T08:00:00.000Z',
      call: 'c1',
      session: 'fp-secret-fingerprint',
      rpc: 3,
      principal: 'spiffe://ex/a',
      protocol: 'mcp',
      operation: 'tools/call',
      target: { kind: 'tool', name: '<b>x</b>' },
      args: { q: 'ok', nested: { deeper: { db_password: 'hunter2', note: `Bearer ${jwt}`, pem: '-----BEGIN PRIVATE KEY-----\nabc' } }, token: 'tok' },
    } as unknown as AuditRecord;
    const v = viewOf(rec)!;
    expect(JSON.stringify(v)).not.toMatch(/fp-secret-fingerprint|hunter2|eyJ|BEGIN PRIVATE|"tok"/);
    expect(JSON.parse(v.input!)).toEqual({ q: 'ok', nested: { deeper: { db_password: '[redacted]', note: '[redacted]', pem: '[redacted]' } }, token: '[redacted]' });
    expect(v.target).toBe('<b>x</b>'); // escaped where it is rendered, kept as data here
    expect(scrub({ __proto__: { polluted: 1 } })).not.toHaveProperty('polluted');
  });
});

describe('live feed', () => {
  it('keeps the newest call and decision records in a ring, newest first, and pushes views to listeners up to a cap', () => {
    const feed = new LiveFeed(10, 2);
    const seen: string[] = [];
    const stop = feed.listen((v) => seen.push(v.call!))!;
    expect(feed.listen(() => {})).toBeDefined();
    expect(feed.listen(() => {})).toBeUndefined(); // the cap refuses the newcomer
    for (let i = 0; i < 25; i++) {
      feed.write(JSON.stringify({ seq: i, prev: '', kind: i % 5 === 0 ? 'checkpoint' : 'call', time: new Date(i).toISOString(), call: `c${i}`, principal: i % 2 ? 'spiffe://a' : 'spiffe://b' }));
    }
    const recent = feed.recent(100);
    expect(recent.map((v) => v.call)).toEqual(['c24', 'c23', 'c22', 'c21', 'c19', 'c18', 'c17', 'c16', 'c14', 'c13']);
    expect(feed.recent(3, (v) => v.principal === 'spiffe://a').map((v) => v.call)).toEqual(['c23', 'c21', 'c19']);
    expect(seen).toHaveLength(20);
    stop();
  });
});
