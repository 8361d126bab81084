/**
 * Loads routes/*.yaml into a validated, immutable ConfigSnapshot. Any error is reported with file, line and reason;
 * the caller keeps its previous snapshot when loading fails.
 */
import { createHash, createPrivateKey } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { LineCounter, parseAllDocuments, isNode, type Document } from 'yaml';
import type { z } from 'zod';
import {
  configDoc,
  defaultGatewaySpec,
  type BackendSpec,
  type ConfigDoc,
  type GatewaySpec,
  type RouteSpec,
  type SecretRefSpec,
} from './schema.ts';
import { compileRoutes, type RouteTable } from './routes.ts';
import { checkRouteAuth } from '../guards/identity/config.ts';
import { checkModelRoutes } from '../upstream/models.ts';
import { checkLimits, type BudgetSpec, type NamedLimit, type RateLimitSpec } from '../guards/limits/config.ts';

export interface ConfigIssue {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  readonly message: string;
}

export class ConfigError extends Error {
  readonly issues: readonly ConfigIssue[];
  constructor(issues: readonly ConfigIssue[]) {
    super(issues.map((i) => `${i.file}:${i.line}:${i.column}: ${i.message}`).join('\n'));
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

/** A backend with its secrets resolved. */
export interface ResolvedBackend {
  readonly name: string;
  readonly spec: BackendSpec;
  readonly transport: 'streamable-http' | 'sse' | 'stdio' | 'openapi' | 'http';
  /** Headers to send upstream, secrets resolved. */
  readonly headers: Readonly<Record<string, string>>;
  /** stdio env, secrets resolved. */
  readonly env: Readonly<Record<string, string>>;
  /** Hash of the resolved spec: an upstream whose hash did not change survives a reload untouched. */
  readonly fingerprint: string;
}

export interface ConfigSnapshot {
  readonly revision: number;
  readonly loadedAt: number;
  readonly dir: string;
  readonly gateway: GatewaySpec;
  readonly dataDir: string;
  readonly backends: ReadonlyMap<string, ResolvedBackend>;
  readonly routes: RouteTable;
  /** Raw route objects by name (settings that guards read). */
  readonly routeSpecs: ReadonlyMap<string, RouteSpec>;
  /** MCP session-sealing keys, resolved from their secret references; the first one seals. */
  readonly mcpSessionKeys: readonly { readonly id: string; readonly secret: string }[];
  /** RateLimit and Budget objects in file order (the Gateway's `limits` section holds their shared settings). */
  readonly limits: { readonly rates: readonly NamedLimit<RateLimitSpec>[]; readonly budgets: readonly NamedLimit<BudgetSpec>[] };
}

interface Located<T> {
  readonly value: T;
  readonly file: string;
  readonly doc: Document.Parsed;
  readonly lines: LineCounter;
}

let revisionCounter = 0;

/**
 * Loads and validates every *.yaml / *.yml file of a directory. Throws ConfigError listing every problem found.
 *
 * `protocols`: the protocol names the gateway's registered adapters serve (src/gateway/registry.ts). A Backend
 * naming another protocol is refused here, with its file and line, rather than failing at request time. The
 * loader is told the set instead of importing the adapters (config knows no protocol); undefined skips the check
 * (tools that only read config, unit tests of other sections).
 */
export function loadConfigDir(dir: string, env: NodeJS.ProcessEnv = process.env, protocols?: ReadonlySet<string>): ConfigSnapshot {
  const root = resolve(dir);
  let names: string[];
  try {
    names = readdirSync(root)
      .filter((n) => /\.ya?ml$/.test(n) && !n.startsWith('.'))
      .sort();
  } catch (err) {
    throw new ConfigError([{ file: root, line: 0, column: 0, message: `cannot read config directory: ${(err as Error).message}` }]);
  }
  const issues: ConfigIssue[] = [];
  const docs: Located<ConfigDoc>[] = [];
  for (const name of names) {
    const file = join(root, name);
    if (!statSync(file).isFile()) continue;
    docs.push(...parseFile(file, readFileSync(file, 'utf8'), issues));
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return buildSnapshot(root, docs, env, protocols);
}

/** Parses one file's YAML documents and validates each against the schema. */
export function parseFile(file: string, text: string, issues: ConfigIssue[]): Located<ConfigDoc>[] {
  const lines = new LineCounter();
  const parsed = parseAllDocuments(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const out: Located<ConfigDoc>[] = [];
  const list = Array.isArray(parsed) ? parsed : [];
  if (!Array.isArray(parsed)) {
    issues.push({ file, line: 1, column: 1, message: 'not a YAML document stream' });
    return out;
  }
  for (const doc of list) {
    if (doc.errors.length > 0) {
      for (const e of doc.errors) {
        const pos = lines.linePos(e.pos[0]);
        issues.push({ file, line: pos.line, column: pos.col, message: `YAML: ${e.message.split('\n')[0]}` });
      }
      continue;
    }
    if (doc.contents === null) continue; // empty document (e.g. trailing ---)
    let raw: unknown;
    try {
      raw = doc.toJS({ maxAliasCount: 50 });
    } catch (err) {
      // An alias to no anchor, or one expanding past maxAliasCount: the yaml library throws rather than reporting it.
      const pos = lines.linePos(doc.range[0]);
      issues.push({ file, line: pos.line, column: pos.col, message: `YAML: ${(err as Error).message.split('\n')[0]}` });
      continue;
    }
    const result = configDoc.safeParse(raw);
    if (!result.success) {
      for (const issue of result.error.issues) issues.push(locate(file, doc, lines, issue));
      continue;
    }
    out.push({ value: result.data, file, doc, lines });
  }
  return out;
}

function locate(file: string, doc: Document.Parsed, lines: LineCounter, issue: z.core.$ZodIssue): ConfigIssue {
  const path = issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p));
  const where = path.length > 0 ? `${path.join('.')}: ` : '';
  return at({ file, doc, lines }, path, `${where}${issue.message}`);
}

/** Position of the deepest node of `path` that exists in the YAML tree (a missing key points at its parent). */
function at(loc: Omit<Located<unknown>, 'value'>, path: readonly (string | number)[], message: string): ConfigIssue {
  let offset = loc.doc.contents?.range?.[0] ?? 0;
  for (let depth = path.length; depth >= 0; depth--) {
    const node: unknown = depth === 0 ? loc.doc.contents : loc.doc.getIn(path.slice(0, depth), true);
    if (isNode(node) && node.range) {
      offset = node.range[0];
      break;
    }
  }
  const pos = loc.lines.linePos(offset);
  return { file: loc.file, line: pos.line, column: pos.col, message };
}

function buildSnapshot(root: string, docs: Located<ConfigDoc>[], env: NodeJS.ProcessEnv, protocols: ReadonlySet<string> | undefined): ConfigSnapshot {
  const issues: ConfigIssue[] = [];
  let gateway: GatewaySpec | undefined;
  let gatewayLoc: Located<ConfigDoc> | undefined;
  const backends = new Map<string, Located<ConfigDoc & { kind: 'Backend' }>>();
  const routes = new Map<string, Located<ConfigDoc & { kind: 'Route' }>>();
  const rateLimits = new Map<string, Located<ConfigDoc & { kind: 'RateLimit' }>>();
  const budgets = new Map<string, Located<ConfigDoc & { kind: 'Budget' }>>();

  for (const loc of docs) {
    const d = loc.value;
    if (d.kind === 'Gateway') {
      if (gatewayLoc) {
        issues.push(at(loc, ['kind'], `a second Gateway object (the first is in ${gatewayLoc.file}); exactly one is allowed`));
        continue;
      }
      gateway = d.spec;
      gatewayLoc = loc;
    } else if (d.kind === 'Backend') {
      const prior = backends.get(d.metadata.name);
      if (prior) issues.push(at(loc, ['metadata', 'name'], `duplicate Backend "${d.metadata.name}" (also in ${prior.file})`));
      else backends.set(d.metadata.name, loc as Located<ConfigDoc & { kind: 'Backend' }>);
    } else if (d.kind === 'RateLimit' || d.kind === 'Budget') {
      const map = (d.kind === 'RateLimit' ? rateLimits : budgets) as Map<string, Located<ConfigDoc>>;
      const prior = map.get(d.metadata.name);
      if (prior) issues.push(at(loc, ['metadata', 'name'], `duplicate ${d.kind} "${d.metadata.name}" (also in ${prior.file})`));
      else map.set(d.metadata.name, loc);
    } else {
      const prior = routes.get(d.metadata.name);
      if (prior) issues.push(at(loc, ['metadata', 'name'], `duplicate Route "${d.metadata.name}" (also in ${prior.file})`));
      else routes.set(d.metadata.name, loc as Located<ConfigDoc & { kind: 'Route' }>);
    }
  }

  if (protocols !== undefined) {
    for (const [name, loc] of backends) {
      const protocol = (loc.value as ConfigDoc & { kind: 'Backend' }).spec.protocol;
      if (!protocols.has(protocol)) {
        const served = [...protocols].sort().join(', ') || 'none';
        issues.push(at(loc, ['spec', 'protocol'], `Backend "${name}": protocol "${protocol}" is not served by this gateway (served: ${served})`));
      }
    }
  }

  const resolvedBackends = new Map<string, ResolvedBackend>();
  for (const [name, loc] of backends) {
    const resolved = resolveBackend(name, loc, root, env, issues);
    if (resolved) resolvedBackends.set(name, resolved);
  }

  for (const [, loc] of routes) {
    loc.value.spec.rules.forEach((rule, r) => {
      const protocols = new Set<string>();
      rule.backendRefs.forEach((ref, b) => {
        const backend = resolvedBackends.get(ref.name);
        if (!backends.has(ref.name)) {
          issues.push(at(loc, ['spec', 'rules', r, 'backendRefs', b, 'name'], `unknown Backend "${ref.name}"`));
        } else if (backend) protocols.add(backend.spec.protocol);
      });
      if (protocols.size > 1) {
        issues.push(at(loc, ['spec', 'rules', r, 'backendRefs'], `backends of one rule must share a protocol (found ${[...protocols].join(', ')})`));
      }
    });
  }

  const gatewaySpec = gateway ?? defaultGatewaySpec();
  const mcpSessionKeys: { id: string; secret: string }[] = [];
  gatewaySpec.mcp.sessionKeys.forEach((k, i) => {
    const r = resolveSecret(k.valueFrom, root, env);
    const where = ['spec', 'mcp', 'sessionKeys', i, 'valueFrom'];
    if ('error' in r) issues.push(gatewayLoc ? at(gatewayLoc, where, r.error) : { file: root, line: 0, column: 0, message: r.error });
    else if (r.value.length < 16) issues.push(gatewayLoc ? at(gatewayLoc, where, 'session key is shorter than 16 characters') : { file: root, line: 0, column: 0, message: 'short session key' });
    else mcpSessionKeys.push({ id: k.id, secret: r.value });
  });
  for (const [, loc] of routes) {
    const signing = loc.value.spec.a2a?.cardSigning;
    if (signing === undefined) continue;
    const r = resolveSecret(signing.key.valueFrom, root, env);
    const where = ['spec', 'a2a', 'cardSigning', 'key', 'valueFrom'];
    if ('error' in r) issues.push(at(loc, where, r.error));
    else {
      try {
        const type = createPrivateKey(r.value).asymmetricKeyType;
        if (type !== 'ec' && type !== 'ed25519') issues.push(at(loc, where, `card signing key must be EC P-256 or Ed25519 (got ${type})`));
      } catch {
        issues.push(at(loc, where, 'card signing key is not a PEM private key'));
      }
    }
  }
  for (const [, loc] of routes) {
    loc.value.spec.mcp?.virtualServers.forEach((v, vi) => {
      const ruleBackends = new Set(loc.value.spec.rules.flatMap((r) => r.backendRefs.map((b) => b.name)));
      if (ruleBackends.has(v.name)) issues.push(at(loc, ['spec', 'mcp', 'virtualServers', vi, 'name'], `virtual server "${v.name}" has the name of a backend of this route`));
      v.tools.forEach((t, ti) => {
        if (!ruleBackends.has(t.backend)) issues.push(at(loc, ['spec', 'mcp', 'virtualServers', vi, 'tools', ti, 'backend'], `backend "${t.backend}" is not a backend of this route`));
      });
    });
  }
  for (const [, loc] of routes) {
    const models = loc.value.spec.models;
    if (models === undefined) continue;
    const ruleBackends = new Set(loc.value.spec.rules.flatMap((r) => r.backendRefs.map((b) => b.name)));
    for (const p of checkModelRoutes(models, ruleBackends)) issues.push(at(loc, ['spec', 'models', ...p.path], `spec.models: ${p.message}`));
  }
  for (const [, loc] of routes) {
    for (const p of checkRouteAuth(gatewaySpec.identity, loc.value.spec.auth)) issues.push(at(loc, ['spec', 'auth', ...p.path], `spec.auth: ${p.message}`));
  }
  const rateList = [...rateLimits.values()].map((l) => ({ name: l.value.metadata.name, spec: l.value.spec }));
  const budgetList = [...budgets.values()].map((l) => ({ name: l.value.metadata.name, spec: l.value.spec }));
  for (const p of checkLimits(gatewaySpec.limits, rateList, budgetList, { routes: new Set(routes.keys()), backends: new Set(backends.keys()) })) {
    const loc = p.object.kind === 'RateLimit' ? rateLimits.get(p.object.name) : p.object.kind === 'Budget' ? budgets.get(p.object.name) : gatewayLoc;
    issues.push(loc ? at(loc, p.path, p.message) : { file: root, line: 0, column: 0, message: p.message });
  }
  let table: RouteTable | undefined;
  if (issues.length === 0) {
    try {
      table = compileRoutes(
        [...routes.values()].map((l) => ({ name: l.value.metadata.name, spec: l.value.spec })),
        resolvedBackends,
        { maxBodyBytes: gatewaySpec.http.maxBodyBytes },
      );
    } catch (err) {
      const conflict = err as Error & { route?: string; rule?: number };
      const loc = conflict.route ? routes.get(conflict.route) : undefined;
      issues.push(loc ? at(loc, ['spec', 'rules', conflict.rule ?? 0], conflict.message) : { file: root, line: 0, column: 0, message: conflict.message });
    }
  }
  if (issues.length > 0 || !table) throw new ConfigError(issues);

  return Object.freeze({
    revision: ++revisionCounter,
    loadedAt: Date.now(),
    dir: root,
    gateway: deepFreeze(gatewaySpec),
    dataDir: resolve(dirname(root), gatewaySpec.dataDir),
    backends: resolvedBackends,
    routes: table,
    routeSpecs: new Map([...routes].map(([n, l]) => [n, deepFreeze(l.value.spec)])),
    mcpSessionKeys: Object.freeze(mcpSessionKeys),
    limits: deepFreeze({ rates: rateList, budgets: budgetList }),
  });
}

/** Resolves a `valueFrom` secret reference (files relative to the config directory `root`). */
export function resolveSecret(
  ref: SecretRefSpec['valueFrom'],
  root: string,
  env: NodeJS.ProcessEnv,
): { value: string } | { error: string } {
  if ('env' in ref) {
    const v = env[ref.env];
    return v === undefined ? { error: `environment variable ${ref.env} is not set` } : { value: v };
  }
  const path = resolve(root, ref.file);
  try {
    return { value: readFileSync(path, 'utf8').trim() };
  } catch (err) {
    return { error: `cannot read secret file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
  }
}

function resolveBackend(
  name: string,
  loc: Located<ConfigDoc & { kind: 'Backend' }>,
  root: string,
  env: NodeJS.ProcessEnv,
  issues: ConfigIssue[],
): ResolvedBackend | undefined {
  const spec = loc.value.spec;
  let ok = true;
  const headers: Record<string, string> = {};
  spec.headers.forEach((h, i) => {
    if (h.value !== undefined) headers[h.name.toLowerCase()] = h.value;
    else if (h.valueFrom) {
      const r = resolveSecret(h.valueFrom, root, env);
      if ('error' in r) {
        ok = false;
        issues.push(at(loc, ['spec', 'headers', i, 'valueFrom'], r.error));
      } else headers[h.name.toLowerCase()] = r.value;
    }
  });
  const stdioEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries(spec.stdio?.env ?? {})) {
    if (typeof v === 'string') stdioEnv[k] = v;
    else {
      const r = resolveSecret(v.valueFrom, root, env);
      if ('error' in r) {
        ok = false;
        issues.push(at(loc, ['spec', 'stdio', 'env', k], r.error));
      } else stdioEnv[k] = r.value;
    }
  }
  if (!ok) return undefined;
  const transport = spec.protocol === 'mcp' ? (spec.transport ?? (spec.stdio ? 'stdio' : spec.openapi ? 'openapi' : 'streamable-http')) : 'http';
  const fingerprint = createHash('sha256')
    .update(JSON.stringify({ spec, headers, stdioEnv }))
    .digest('base64url')
    .slice(0, 16);
  return Object.freeze({
    name,
    spec: deepFreeze(spec),
    transport,
    headers: Object.freeze(headers),
    env: Object.freeze(stdioEnv),
    fingerprint,
  });
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as Record<string, unknown>)) deepFreeze(v);
  }
  return value;
}
