/**
 * The route table's precedence (Gateway API: Exact over PathPrefix, longer prefix first, more header matches first,
 * then declaration order) and segment boundaries, now that rules are looked up by the path's prefixes instead of
 * tried one by one: checked case by case, and against the straightforward "sort, then try each rule" reading of
 * the same rules over many generated tables and paths.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { describe, expect, it } from 'vitest';
import type { ResolvedBackend } from '../../src/config/load.ts';
import { compileRoutes } from '../../src/config/routes.ts';
import type { RouteSpec } from '../../src/config/schema.ts';

type Match = { path: { type: 'Exact' | 'PathPrefix'; value: string }; headers: Array<{ type: 'Exact' | 'RegularExpression'; name: string; value: string }> };

const backends = new Map([['b', { name: 'b', spec: { protocol: 'mcp' } } as unknown as ResolvedBackend]]);
const route = (name: string, matches: Match[]): { name: string; spec: RouteSpec } => ({ name, spec: { rules: [{ matches, backendRefs: [{ name: 'b' }] }] } as unknown as RouteSpec });
const prefix = (value: string, headers: Match['headers'] = []): Match => ({ path: { type: 'PathPrefix', value }, headers });
const exact = (value: string, headers: Match['headers'] = []): Match => ({ path: { type: 'Exact', value }, headers });
const table = (routes: Array<{ name: string; spec: RouteSpec }>) => compileRoutes(routes, backends, { maxBodyBytes: 1024 });
const which = (t: ReturnType<typeof table>, path: string, headers: IncomingHttpHeaders = {}) => {
  const m = t.match(path, headers);
  return m === undefined ? undefined : `${m.rule.route.name} ${JSON.stringify(m.rest)}`;
};

describe('route table', () => {
  it('orders Exact over PathPrefix, longer prefixes first, more headers first, then declaration order', () => {
    const t = table([
      route('root', [prefix('/')]),
      route('a', [prefix('/a')]),
      route('ab', [prefix('/a/b/')]),
      route('ab-exact', [exact('/a/b')]),
      route('a-header', [prefix('/a', [{ type: 'Exact', name: 'X-Tenant', value: 'blue' }])]),
      route('a-regex', [prefix('/a', [{ type: 'RegularExpression', name: 'x-tenant', value: 'gr.*' }])]),
      route('c1', [prefix('/c')]),
    ]);
    expect(which(t, '/a/b')).toBe('ab-exact ""');
    expect(which(t, '/a/b/')).toBe('ab ""');
    expect(which(t, '/a/b/c')).toBe('ab "/c"');
    expect(which(t, '/a/bc')).toBe('a "/bc"');
    expect(which(t, '/a/bc', { 'x-tenant': 'blue' })).toBe('a-header "/bc"');
    expect(which(t, '/a', { 'x-tenant': 'green' })).toBe('a-regex ""');
    expect(which(t, '/a', { 'x-tenant': 'red' })).toBe('a ""');
    expect(which(t, '/a/')).toBe('a ""');
    expect(which(t, '/a//x')).toBe('a "//x"');
    expect(which(t, '/ax')).toBe('root "/ax"');
    expect(which(t, '/')).toBe('root ""');
    expect(which(t, '/c/d/e')).toBe('c1 "/d/e"');
  });

  it('matches nothing outside every prefix when no rule is mounted at /', () => {
    const t = table([route('mcp', [prefix('/mcp')]), route('exact', [exact('/v1/models')])]);
    expect(which(t, '/mcpx')).toBeUndefined();
    expect(which(t, '/')).toBeUndefined();
    expect(which(t, '/v1/models/x')).toBeUndefined();
    expect(which(t, '/v1/models')).toBe('exact ""');
    expect(which(t, '/mcp/a/b')).toBe('mcp "/a/b"');
  });

  it('answers as trying every rule in precedence order would, over generated tables and paths', () => {
    let seed = 7;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const segs = ['a', 'b', 'mcp', 'v1', 'x'];
    const pathOf = (): string => `/${Array.from({ length: rand(4) }, () => segs[rand(segs.length)]).join('/')}${rand(4) === 0 ? '/' : ''}`;
    for (let round = 0; round < 50; round++) {
      const matches: Array<{ m: Match; name: string }> = [];
      const seen = new Set<string>();
      for (let i = 0; i < 12; i++) {
        const value = pathOf();
        const headers: Match['headers'] = rand(3) === 0 ? [{ type: 'Exact', name: 'x-k', value: String(rand(2)) }] : [];
        const m = rand(3) === 0 ? exact(value, headers) : prefix(value, headers);
        const norm = value.length > 1 ? value.replace(/\/+$/, '') : value;
        const key = `${m.path.type}:${norm}:${headers.map((h) => h.value).join()}`;
        if (seen.has(key)) continue;
        seen.add(key);
        matches.push({ m, name: `r${i}` });
      }
      const t = table(matches.map(({ m, name }) => route(name, [m])));
      // The reference: every rule sorted by precedence, the first that matches wins.
      const ref = matches
        .map(({ m, name }, order) => ({ name, order, exact: m.path.type === 'Exact', path: m.path.value.length > 1 ? m.path.value.replace(/\/+$/, '') : m.path.value, headers: m.headers }))
        .sort((a, b) => Number(b.exact) - Number(a.exact) || b.path.length - a.path.length || b.headers.length - a.headers.length || a.order - b.order);
      const expected = (path: string, headers: IncomingHttpHeaders): string | undefined => {
        for (const r of ref) {
          let rest: string;
          if (r.exact) {
            if (path !== r.path) continue;
            rest = '';
          } else if (r.path === '/') rest = path === '/' ? '' : path;
          else {
            if (!path.startsWith(r.path)) continue;
            rest = path.slice(r.path.length);
            if (rest !== '' && !rest.startsWith('/')) continue;
            if (rest === '/') rest = '';
          }
          if (r.headers.some((h) => headers[h.name] !== h.value)) continue;
          return `${r.name} ${JSON.stringify(rest)}`;
        }
        return undefined;
      };
      for (let i = 0; i < 40; i++) {
        const path = pathOf();
        const headers = rand(2) === 0 ? { 'x-k': String(rand(2)) } : {};
        expect(which(t, path, headers), `${path} ${JSON.stringify(headers)}`).toBe(expected(path, headers));
      }
    }
  });
});
