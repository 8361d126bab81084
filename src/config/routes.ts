/**
 * The compiled route table: which rule a request matches, by Gateway API precedence (Exact path over PathPrefix,
 * longer prefix first, more header matches first, then declaration order).
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Protocol, RouteRef } from '../core/call.ts';
import type { ResolvedBackend } from './load.ts';
import type { RouteSpec } from './schema.ts';

export interface CompiledRule {
  readonly route: RouteRef;
  readonly ruleIndex: number;
  readonly ruleName: string;
  readonly protocol: Protocol;
  readonly backends: readonly ResolvedBackend[];
  /** Path this rule is mounted at (the matched prefix or exact path, without trailing slash). */
  readonly mount: string;
  /** Largest request body this rule accepts: the route's http.maxBodyBytes, else the Gateway's. */
  readonly maxBodyBytes: number;
}

interface Matcher {
  readonly rule: CompiledRule;
  readonly exact: boolean;
  readonly path: string;
  readonly headers: readonly { name: string; exact?: string; regex?: RegExp }[];
  readonly order: number;
}

export interface RouteMatch {
  readonly rule: CompiledRule;
  /** The rest of the path after the mount point ('' or '/...'). */
  readonly rest: string;
}

export class RouteTable {
  private readonly matchers: readonly Matcher[];
  readonly rules: readonly CompiledRule[];

  constructor(matchers: Matcher[], rules: CompiledRule[]) {
    this.matchers = matchers.sort(
      (a, b) =>
        Number(b.exact) - Number(a.exact) ||
        b.path.length - a.path.length ||
        b.headers.length - a.headers.length ||
        a.order - b.order,
    );
    this.rules = rules;
  }

  /** Finds the rule for a request path (no query string) and its headers. */
  match(path: string, headers: IncomingHttpHeaders): RouteMatch | undefined {
    for (const m of this.matchers) {
      let rest: string;
      if (m.exact) {
        if (path !== m.path) continue;
        rest = '';
      } else if (m.path === '/') {
        rest = path === '/' ? '' : path;
      } else {
        if (!path.startsWith(m.path)) continue;
        rest = path.slice(m.path.length);
        if (rest !== '' && rest.charCodeAt(0) !== 47 /* '/' */) continue;
        if (rest === '/') rest = '';
      }
      if (m.headers.length > 0 && !headersMatch(m.headers, headers)) continue;
      return { rule: m.rule, rest };
    }
    return undefined;
  }
}

function headersMatch(wanted: Matcher['headers'], headers: IncomingHttpHeaders): boolean {
  for (const h of wanted) {
    const v = headers[h.name];
    const value = Array.isArray(v) ? v.join(',') : v;
    if (value === undefined) return false;
    if (h.exact !== undefined ? value !== h.exact : !h.regex!.test(value)) return false;
  }
  return true;
}

/** Builds the table; throws an Error carrying `route` and `rule` when two rules claim the same match. */
export function compileRoutes(
  routes: readonly { name: string; spec: RouteSpec }[],
  backends: ReadonlyMap<string, ResolvedBackend>,
  defaults: { readonly maxBodyBytes: number },
): RouteTable {
  const matchers: Matcher[] = [];
  const rules: CompiledRule[] = [];
  const seen = new Map<string, string>();
  let order = 0;
  for (const { name, spec } of routes) {
    const route: RouteRef = Object.freeze({ name, spec });
    const maxBodyBytes = spec.http?.maxBodyBytes ?? defaults.maxBodyBytes;
    spec.rules.forEach((r, ruleIndex) => {
      const ruleBackends = r.backendRefs.map((ref) => backends.get(ref.name)!);
      for (const match of r.matches) {
        const path = match.path.value.length > 1 ? match.path.value.replace(/\/+$/, '') : match.path.value;
        const rule: CompiledRule = Object.freeze({
          route,
          ruleIndex,
          ruleName: r.name ?? `${name}/${ruleIndex}`,
          protocol: ruleBackends[0]!.spec.protocol,
          backends: Object.freeze(ruleBackends),
          mount: path === '/' ? '' : path,
          maxBodyBytes,
        });
        rules.push(rule);
        const headers = match.headers.map((h) =>
          h.type === 'Exact'
            ? { name: h.name.toLowerCase(), exact: h.value }
            : { name: h.name.toLowerCase(), regex: compileRegex(h.value, name, ruleIndex) },
        );
        const key = `${match.path.type}:${path}:${match.headers.map((h) => `${h.type}:${h.name.toLowerCase()}=${h.value}`).sort().join('&')}`;
        const prior = seen.get(key);
        if (prior) {
          throw Object.assign(new Error(`rule matches the same requests as ${prior}`), { route: name, rule: ruleIndex });
        }
        seen.set(key, `route ${name} rule ${ruleIndex}`);
        matchers.push({ rule, exact: match.path.type === 'Exact', path, headers, order: order++ });
      }
    });
  }
  return new RouteTable(matchers, rules);
}

function compileRegex(source: string, route: string, rule: number): RegExp {
  try {
    return new RegExp(`^(?:${source})$`);
  } catch (err) {
    throw Object.assign(new Error(`invalid header regular expression: ${(err as Error).message}`), { route, rule });
  }
}
