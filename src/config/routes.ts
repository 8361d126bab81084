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
  /** Exact-path matchers by path, and PathPrefix matchers by prefix, each list in precedence order. */
  private readonly exact = new Map<string, Matcher[]>();
  private readonly prefix = new Map<string, Matcher[]>();
  private readonly root: readonly Matcher[];
  readonly rules: readonly CompiledRule[];

  constructor(matchers: Matcher[], rules: CompiledRule[]) {
    matchers.sort((a, b) => b.headers.length - a.headers.length || a.order - b.order);
    const root: Matcher[] = [];
    for (const m of matchers) {
      // '/' (and a prefix of only slashes, which normalises to '') matches every path.
      if (!m.exact && (m.path === '/' || m.path === '')) root.push(m);
      else {
        const by = m.exact ? this.exact : this.prefix;
        const list = by.get(m.path);
        if (list) list.push(m);
        else by.set(m.path, [m]);
      }
    }
    this.root = root.sort((a, b) => b.path.length - a.path.length);
    this.rules = rules;
  }

  /**
   * Finds the rule for a request path (no query string) and its headers. Precedence as Gateway API orders it (Exact
   * over PathPrefix, longer prefix first, more header matches first, then declaration order), looked up by the
   * path's own prefixes (one Map lookup per '/' of the path) instead of trying every rule: the cost does not grow
   * with the number of routes (bench/scale.ts).
   */
  match(path: string, headers: IncomingHttpHeaders): RouteMatch | undefined {
    const exact = this.exact.get(path);
    if (exact !== undefined) {
      const m = firstMatching(exact, headers);
      if (m !== undefined) return { rule: m.rule, rest: '' };
    }
    // Prefixes of the path that end at a segment boundary, longest first: the whole path (rest ''), then the path up
    // to each '/' (the rest starts with '/'; a rest of exactly '/' is '').
    if (this.prefix.size > 0) {
      for (let end = path.length; end > 1; end = path.lastIndexOf('/', end - 1)) {
        const list = this.prefix.get(end === path.length ? path : path.slice(0, end));
        if (list === undefined) continue;
        const m = firstMatching(list, headers);
        if (m === undefined) continue;
        const rest = end === path.length ? '' : path.slice(end);
        return { rule: m.rule, rest: rest === '/' ? '' : rest };
      }
    }
    const m = firstMatching(this.root, headers);
    return m === undefined ? undefined : { rule: m.rule, rest: path === '/' ? '' : path };
  }
}

function firstMatching(list: readonly Matcher[], headers: IncomingHttpHeaders): Matcher | undefined {
  for (const m of list) if (m.headers.length === 0 || headersMatch(m.headers, headers)) return m;
  return undefined;
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
