/**
 * The policy input document, built as JSON text straight from the Call (documented in policies/README.md).
 *
 * Small on purpose: the JSON copy into WASM memory dominates evaluation cost, so only what policies need goes in
 * (no raw body, no headers unless the config lists them, bulky model content dropped). The principal's JSON is
 * cached per Principal object (the identity guard reuses it across calls of one token).
 */
import type { Call, Principal, Target } from '../../core/call.ts';
import type { PolicySpec } from './config.ts';

export type InputShape = 'tollgate' | 'envoy';

export interface InputOptions {
  readonly shape: InputShape;
  /** Lower-case header names copied into the input. */
  readonly headers: readonly string[];
  readonly claims: 'all' | readonly string[];
  /** Request fields left out of model/skill arguments. */
  readonly dropArguments: readonly string[];
}

export function inputOptions(spec: PolicySpec): InputOptions {
  return { shape: spec.input.shape, headers: spec.input.headers, claims: spec.input.claims, dropArguments: spec.input.dropArguments };
}

const str = JSON.stringify;

function opt(v: string | undefined): string {
  return v === undefined ? 'null' : str(v);
}

const NEEDS_ESCAPE = /["\\\u0000-\u001f]/;

/** JSON string literal; names rarely need escaping, so skip JSON.stringify when they do not (lists of 500). */
function quote(s: string): string {
  return NEEDS_ESCAPE.test(s) ? str(s) : `"${s}"`;
}

/** `{"<server>": {"<local>": "<name>", ...}, ...}` as JSON text (a list arrives grouped by server already). */
function groupedTargets(targets: readonly Target[]): string {
  const groups = new Map<string, string>();
  for (const t of targets) {
    const server = t.server ?? '';
    const entry = `${quote(t.local ?? t.name)}:${quote(t.name)}`;
    const prior = groups.get(server);
    groups.set(server, prior === undefined ? entry : `${prior},${entry}`);
  }
  let out = '';
  for (const [server, entries] of groups) out += `${out === '' ? '' : ','}${quote(server)}:{${entries}}`;
  return `{${out}}`;
}

interface TargetsJson {
  readonly id: number;
  readonly json: string;
}

/** Distinct target lists remembered by content (each holds its grouped JSON: ~30 bytes a target). */
const MAX_TARGET_SETS = 256;
/** Process-wide, so that two builders (a config reload) never give one number to two contents. */
let nextTargetsId = 1;

/** Builds input documents for one configuration (immutable; a config change builds a new one). */
export class InputBuilder {
  readonly shape: InputShape;
  private readonly headers: readonly string[];
  private readonly claims: 'all' | readonly string[];
  private readonly drop: ReadonlySet<string>;
  private principals = new WeakMap<Principal, string>();
  private readonly targetSets = new WeakMap<readonly Target[], TargetsJson>();
  private readonly contentIds = new Map<string, number>();

  constructor(opts: InputOptions) {
    this.shape = opts.shape;
    this.headers = opts.headers;
    this.claims = opts.claims;
    this.drop = new Set(opts.dropArguments);
  }

  /** Input for one call (the decision entrypoint). */
  forCall(call: Call): string {
    if (this.shape === 'envoy') return this.envoy(call);
    return (
      `{"principal":${this.principal(call.principal)},"protocol":"${call.protocol}","operation":${str(call.operation)},` +
      `"route":${str(call.route.name)},"upstream":${opt(call.upstream)},"target":${this.target(call)},"request":${this.request(call)}}`
    );
  }

  /**
   * Input for a list (the visible entrypoint): the same document with `kind` and `targets` instead of `target`.
   * Targets are grouped by server, `{"<server>": {"<local name>": "<caller-visible name>"}}`: a third of the bytes
   * of one object per item, and the JSON copy into WASM memory is most of a list's cost.
   */
  forList(call: Call, targets: readonly Target[]): string {
    return this.listParts(call, targets).input();
  }

  /**
   * A list input in two parts, for the visible memo. `key` is everything in the input but the request's time (what
   * the memo is keyed by), with the targets named by a number that stands for their content (see `targetsOf`), so a
   * list asked again costs a short key, not the grouped names of every target; `input()` builds the whole document
   * (only for an evaluation, or for a decision-log listener that reads it).
   */
  listParts(call: Call, targets: readonly Target[]): { key: string; input: () => string } {
    const t = this.targetsOf(targets);
    const head =
      `{"principal":${this.principal(call.principal)},"protocol":"${call.protocol}","operation":${str(call.operation)},` +
      `"route":${str(call.route.name)},"upstream":${opt(call.upstream)},"kind":"${targets[0]?.kind ?? 'tool'}",`;
    return {
      key: `${head}${t.id}\u0000${str(call.request.remoteAddress)}${this.headerJson(call)}`,
      input: () => `${head}"targets":${t.json},"request":${this.request(call)}}`,
    };
  }

  /**
   * The grouped targets of a list as JSON, and a number naming that content: the same array (a session's cached list
   * page) is looked up by identity, another array with the same content gets the same number through a bounded
   * table of recent contents. A number is never reused for other content (when the table is emptied, contents seen
   * again get new numbers: a memo miss, never a wrong hit).
   */
  private targetsOf(targets: readonly Target[]): TargetsJson {
    let t = this.targetSets.get(targets);
    if (t !== undefined) return t;
    const json = groupedTargets(targets);
    let id = this.contentIds.get(json);
    if (id === undefined) {
      if (this.contentIds.size >= MAX_TARGET_SETS) this.contentIds.clear();
      id = nextTargetsId++;
      this.contentIds.set(json, id);
    }
    t = { id, json };
    this.targetSets.set(targets, t);
    return t;
  }

  private principal(p: Principal | undefined): string {
    if (p === undefined) return 'null';
    let json = this.principals.get(p);
    if (json === undefined) {
      json = str({
        id: p.id,
        issuer: p.issuer,
        trust_domain: p.trustDomain,
        path: p.path,
        segments: p.segments,
        claims: this.claimsOf(p.claims),
      });
      this.principals.set(p, json);
    }
    return json;
  }

  private claimsOf(claims: Readonly<Record<string, unknown>>): Readonly<Record<string, unknown>> {
    if (this.claims === 'all') return claims;
    const out: Record<string, unknown> = {};
    for (const k of this.claims) if (claims[k] !== undefined) out[k] = claims[k];
    return out;
  }

  private target(call: Call): string {
    const t = call.target;
    if (t === undefined) return 'null';
    const args = this.argumentsOf(t, call.args);
    const uri = t.kind === 'resource' ? `,"uri":${str(t.name)}` : '';
    const version = t.version === undefined ? '' : `,"version":${str(t.version)}`;
    return `{"kind":"${t.kind}","name":${str(t.name)},"server":${opt(t.server)},"local":${opt(t.local)}${uri}${version},"arguments":${args === undefined ? '{}' : str(args)}}`;
  }

  private argumentsOf(t: Target, args: unknown): unknown {
    if ((t.kind !== 'model' && t.kind !== 'skill') || typeof args !== 'object' || args === null || Array.isArray(args)) return args;
    const rec = args as Record<string, unknown>;
    let kept: Record<string, unknown> | undefined;
    for (const k of this.drop) {
      if (k in rec) {
        kept ??= { ...rec };
        delete kept[k];
      }
    }
    return kept ?? rec;
  }

  private request(call: Call): string {
    return `{"time_ns":${call.startedAt}000000,"source":${str(call.request.remoteAddress)},"headers":${this.headerJson(call)}}`;
  }

  private headerJson(call: Call): string {
    if (this.headers.length === 0) return '{}';
    const out: Record<string, string> = {};
    const h = call.request.headers;
    for (const name of this.headers) {
      const v = h[name];
      if (v !== undefined) out[name] = Array.isArray(v) ? v.join(', ') : v;
    }
    return str(out);
  }

  /** The OPA-Envoy ext_authz input (attributes.request.http, parsed_path, parsed_body), for Envoy-era policies. */
  private envoy(call: Call): string {
    const req = call.request;
    const [path = '', query = ''] = req.path.split('?', 2);
    const t = call.target;
    let params: Record<string, unknown> | undefined;
    if (t?.kind === 'resource') params = { uri: t.name };
    else if (t !== undefined) params = { name: t.name, arguments: call.args ?? {} };
    const headers: Record<string, string> = {};
    for (const name of this.headers) {
      const v = req.headers[name];
      if (v !== undefined) headers[name] = Array.isArray(v) ? v.join(', ') : v;
    }
    return str({
      attributes: {
        source: { address: { socketAddress: { address: req.remoteAddress } }, principal: call.principal?.id ?? '' },
        request: {
          time: new Date(call.startedAt).toISOString(),
          http: { id: call.id, method: req.method, path: req.path, host: req.headers.host ?? '', headers },
        },
      },
      parsed_path: path.split('/').filter((s) => s !== ''),
      parsed_query: Object.fromEntries(new URLSearchParams(query)),
      parsed_body: { jsonrpc: '2.0', id: call.rpcId ?? null, method: call.operation, ...(params ? { params } : {}) },
      truncated_body: false,
      version: { encoding: 'protojson', ext_authz: 'v3' },
      tollgate: { protocol: call.protocol, route: call.route.name, upstream: call.upstream ?? null },
    });
  }
}
