/**
 * The KServe v2 endpoints Tollgate serves under a route's mount (conventionally /v2), and what each is as a Call:
 * its operation name (what policies match on, policies/README.md), its HTTP method, and the model it names. The
 * repository, statistics, trace, logging and shared-memory APIs are not exposed: they administer the server (load and
 * unload models, change its logging and tracing, map its memory) or report on every caller's traffic (statistics),
 * which no caller of one model should reach; `administrativeApi` names them for the refusal.
 */

export type OperationName =
  | 'server.metadata'
  | 'server.live'
  | 'server.ready'
  | 'model.metadata'
  | 'model.ready'
  | 'model.config'
  | 'infer'
  | 'generate'
  | 'generate_stream';

export interface KServePath {
  readonly operation: OperationName;
  readonly method: 'GET' | 'POST';
  /** The model named in the path (URL-decoded), for model operations. */
  readonly model?: string | undefined;
  /** The version named in the path (`/versions/<v>`), if any. */
  readonly version?: string | undefined;
}

const SERVER: Readonly<Record<string, KServePath>> = {
  '': { operation: 'server.metadata', method: 'GET' },
  '/health/live': { operation: 'server.live', method: 'GET' },
  '/health/ready': { operation: 'server.ready', method: 'GET' },
};

const MODEL_ACTIONS: Readonly<Record<string, { operation: OperationName; method: 'GET' | 'POST' }>> = {
  '': { operation: 'model.metadata', method: 'GET' },
  ready: { operation: 'model.ready', method: 'GET' },
  // Triton's model configuration extension (docs/protocol/extension_model_configuration.md): tritonclient's
  // get_model_config.
  config: { operation: 'model.config', method: 'GET' },
  infer: { operation: 'infer', method: 'POST' },
  generate: { operation: 'generate', method: 'POST' },
  generate_stream: { operation: 'generate_stream', method: 'POST' },
};

function decode(segment: string): string | undefined {
  try {
    const s = decodeURIComponent(segment);
    return s === '' || s.includes('/') ? undefined : s;
  } catch {
    return undefined;
  }
}

/** The endpoint a path under the mount names, or undefined (404). */
export function parsePath(rest: string): KServePath | undefined {
  const server = Object.hasOwn(SERVER, rest) ? SERVER[rest] : undefined;
  if (server !== undefined) return server;
  // Triton's statistics of every model, not a model named `stats` (Triton reads the path so too).
  if (!rest.startsWith('/models/') || rest === '/models/stats') return undefined;
  const parts = rest.slice('/models/'.length).split('/');
  const model = decode(parts[0]!);
  // Spelled `%73tats` it would reach Triton as /v2/models/stats all the same.
  if (model === undefined || (model === 'stats' && parts.length === 1)) return undefined;
  let i = 1;
  let version: string | undefined;
  if (parts[i] === 'versions') {
    version = parts[i + 1] === undefined ? undefined : decode(parts[i + 1]!);
    if (version === undefined) return undefined;
    i += 2;
  }
  // A trailing slash names no endpoint (Triton answers 404 there too).
  if (parts.length > i + 1 || parts[i] === '') return undefined;
  const name = parts[i] ?? '';
  // Own keys only: a path segment is the caller's (`constructor`, `__proto__` are not endpoints).
  const action = Object.hasOwn(MODEL_ACTIONS, name) ? MODEL_ACTIONS[name] : undefined;
  if (action === undefined) return undefined;
  return { ...action, model, version };
}

/** The path of a model endpoint at the backend, for the model's name there. */
export function upstreamPath(p: KServePath, model: string): string {
  let path = `/v2/models/${encodeURIComponent(model)}`;
  if (p.version !== undefined) path += `/versions/${encodeURIComponent(p.version)}`;
  const action = p.operation === 'model.metadata' ? '' : p.operation === 'model.ready' ? 'ready' : p.operation === 'model.config' ? 'config' : p.operation;
  return action === '' ? path : `${path}/${action}`;
}

/** Triton's administrative APIs by path (tritonclient's names for them), for a refusal that says which one it was. */
const ADMINISTRATIVE: ReadonlyArray<readonly [RegExp, string]> = [
  [/^\/models\/(stats|[^/]+(\/versions\/[^/]+)?\/stats)$/, 'statistics'],
  [/^\/models\/[^/]+(\/versions\/[^/]+)?\/trace(\/|$)/, 'trace'],
  [/^\/repository(\/|$)/, 'repository'],
  [/^\/trace(\/|$)/, 'trace'],
  [/^\/logging$/, 'logging'],
  [/^\/(systemsharedmemory|cudasharedmemory)(\/|$)/, 'shared memory'],
];

/** The administrative API a path under the mount belongs to (statistics, repository, ...), if it is one. */
export function administrativeApi(rest: string): string | undefined {
  for (const [re, name] of ADMINISTRATIVE) if (re.test(rest)) return name;
  return undefined;
}
