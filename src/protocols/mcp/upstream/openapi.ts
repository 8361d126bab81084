/**
 * An HTTP API described by an OpenAPI 3.x document, served as an MCP server: every operation is a tool whose input
 * schema is built from its parameters (path, query, header) and its JSON request body (as `body`); a call becomes
 * one HTTP request through an undici pool to the API, with the backend's configured headers (the gateway's own
 * credentials, never the caller's). The document is loaded on first use and again on a config reload.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { request as undiciRequest, type Dispatcher } from 'undici';
import { parse as parseYaml } from 'yaml';
import { Errors, GatewayError } from '../../../core/errors.ts';
import type { ResolvedBackend } from '../../../config/load.ts';
import type { GatewaySpec } from '../../../config/schema.ts';
import { withCredential, type UpstreamCredential } from '../../../upstream/credentials.ts';
import { createPool, readAll, upstreamError } from '../../../upstream/pools.ts';
import type { Logger } from '../../../telemetry/logger.ts';
import { errorResponse, resultResponse, type RpcNotification, type RpcRequest } from '../jsonrpc.ts';
import type { ClientHello, InflightHandle, InitializeResult, McpUpstream, ReplySink, UpstreamSession, UpstreamStatus } from './types.ts';

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'] as const;
const MAX_DOC_BYTES = 16 * 1024 * 1024;
const MAX_RESULT_BYTES = 32 * 1024 * 1024;

interface Param {
  readonly name: string;
  readonly in: 'path' | 'query' | 'header';
  readonly required: boolean;
}

/** One operation as a tool. */
export interface OperationTool {
  readonly name: string;
  readonly method: string;
  readonly path: string;
  readonly params: readonly Param[];
  readonly hasBody: boolean;
  readonly tool: Record<string, unknown>;
}

type Json = Record<string, unknown>;

/** Follows local `$ref`s (`#/components/...`), depth-limited so a cyclic document cannot hang the gateway. */
function deref(doc: Json, value: unknown, depth = 0): unknown {
  if (depth > 24 || typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return value.map((v) => deref(doc, v, depth + 1));
  const ref = (value as Json).$ref;
  if (typeof ref === 'string' && ref.startsWith('#/')) {
    let node: unknown = doc;
    for (const part of ref.slice(2).split('/')) node = (node as Json | undefined)?.[part.replace(/~1/g, '/').replace(/~0/g, '~')];
    return deref(doc, node, depth + 1);
  }
  const out: Json = {};
  for (const [k, v] of Object.entries(value)) out[k] = deref(doc, v, depth + 1);
  return out;
}

function toolName(op: Json, method: string, path: string, taken: Set<string>): string {
  const base = (typeof op.operationId === 'string' ? op.operationId : `${method}_${path}`).replace(/[^A-Za-z0-9_.-]+/g, '_').replace(/_{2,}/g, '_').replace(/^_+|_+$/g, '').slice(0, 120) || method;
  let name = base;
  for (let i = 2; taken.has(name); i++) name = `${base}_${i}`;
  taken.add(name);
  return name;
}

/** Builds the tools of an OpenAPI 3.x document. */
export function operationsOf(doc: Json): OperationTool[] {
  if (typeof doc.openapi !== 'string' || !doc.openapi.startsWith('3.')) throw new Error('not an OpenAPI 3.x document');
  const out: OperationTool[] = [];
  const taken = new Set<string>();
  for (const [path, rawItem] of Object.entries((doc.paths ?? {}) as Json)) {
    const item = deref(doc, rawItem) as Json;
    for (const method of METHODS) {
      const op = item[method] as Json | undefined;
      if (!op) continue;
      const properties: Json = {};
      const required: string[] = [];
      const params: Param[] = [];
      for (const raw of [...((item.parameters as unknown[]) ?? []), ...((op.parameters as unknown[]) ?? [])]) {
        const p = deref(doc, raw) as Json;
        if (typeof p.name !== 'string' || (p.in !== 'path' && p.in !== 'query' && p.in !== 'header')) continue;
        const req = p.in === 'path' || p.required === true;
        params.push({ name: p.name, in: p.in, required: req });
        properties[p.name] = { ...((p.schema as Json) ?? { type: 'string' }), ...(typeof p.description === 'string' && { description: p.description }) };
        if (req) required.push(p.name);
      }
      const body = deref(doc, op.requestBody) as Json | undefined;
      const json = (body?.content as Json | undefined)?.['application/json'] as Json | undefined;
      if (json) {
        properties.body = { ...((json.schema as Json) ?? { type: 'object' }), ...(typeof body!.description === 'string' && { description: body!.description }) };
        if (body!.required === true) required.push('body');
      }
      const name = toolName(op, method, path, taken);
      const description = [op.summary, op.description].filter((s) => typeof s === 'string' && s !== '').join('\n\n') || `${method.toUpperCase()} ${path}`;
      const inputSchema: Json = { type: 'object', properties, ...(required.length > 0 && { required }) };
      const annotations = method === 'get' || method === 'head' || method === 'options' ? { readOnlyHint: true } : undefined;
      out.push({
        name,
        method: method.toUpperCase(),
        path,
        params,
        hasBody: json !== undefined,
        tool: { name, description, inputSchema, ...(annotations && { annotations }) },
      });
    }
  }
  return out;
}

/**
 * The API base URL: the configured `url`, else the first of the document's servers that config pins
 * (`openapi.servers`). A document alone never chooses where requests (and the backend's credentials) go.
 */
export function apiBase(configured: string | undefined, pinned: readonly string[] | undefined, servers: unknown, docUrl: URL | undefined): URL {
  if (configured !== undefined) return new URL(configured);
  const allowed = new Set((pinned ?? []).map((u) => new URL(u).href.replace(/\/+$/, '')));
  const listed = Array.isArray(servers) ? servers.map((s) => (s as { url?: unknown } | null)?.url).filter((u): u is string => typeof u === 'string') : [];
  for (const u of listed) {
    let url: URL;
    try {
      url = new URL(u, docUrl);
    } catch {
      continue;
    }
    if (allowed.has(url.href.replace(/\/+$/, ''))) return url;
  }
  throw new Error(`no API base URL: the document's servers (${listed.join(', ') || 'none'}) include none of openapi.servers`);
}

/**
 * Puts a path parameter's value into the path: percent-encoded, and refused when it would change the path even
 * encoded (`.`/`..` segments, an empty segment) or could once a server decodes it (`/`, `\\`).
 */
export function fillPathParam(path: string, name: string, value: string): string {
  if (value === '' || value === '.' || value === '..' || /[/\\]/.test(value)) {
    throw new GatewayError(Errors.OPENAPI_PATH_PARAM, `Invalid params: path parameter "${name}" may not be empty, "." or "..", or contain "/" or "\\"`, { data: { param: name } });
  }
  const encoded = encodeURIComponent(value);
  // A function replacement: `$&`, `$\`` and the like in a value are text, never replacement patterns.
  return path.replace(`{${name}}`, () => encoded);
}

interface Loaded {
  readonly ops: ReadonlyMap<string, OperationTool>;
  readonly tools: readonly Record<string, unknown>[];
  readonly info: { name: string; version: string };
  readonly pool: Dispatcher;
  readonly basePath: string;
}

export class OpenApiUpstream implements McpUpstream {
  readonly name: string;
  readonly transport = 'openapi' as const;
  readonly fingerprint: string;
  private readonly backend: ResolvedBackend;
  private readonly gateway: GatewaySpec;
  private readonly dir: string;
  private readonly log: Logger;
  private readonly credential: UpstreamCredential | undefined;
  private loading: Promise<Loaded> | undefined;
  private lastError: string | undefined = 'document not loaded yet';

  constructor(backend: ResolvedBackend, gateway: GatewaySpec, configDir: string, log: Logger, credential?: UpstreamCredential) {
    this.credential = credential;
    this.name = backend.name;
    this.fingerprint = backend.fingerprint;
    this.backend = backend;
    this.gateway = gateway;
    this.dir = configDir;
    this.log = log;
  }

  status(): UpstreamStatus {
    return this.lastError === undefined ? { up: true } : { up: false, detail: this.lastError };
  }

  private load(): Promise<Loaded> {
    this.loading ??= this.fetchDocument().then(
      (l) => {
        this.lastError = undefined;
        return l;
      },
      (err: unknown) => {
        this.loading = undefined; // try again on the next open
        this.lastError = (err as Error).message;
        throw new GatewayError(Errors.UPSTREAM_UNAVAILABLE, `Upstream ${this.name}: cannot load its OpenAPI document`, { data: { upstream: this.name }, cause: err });
      },
    );
    return this.loading;
  }

  private async fetchDocument(): Promise<Loaded> {
    const src = this.backend.spec.openapi!;
    let text: string;
    let docUrl: URL | undefined;
    if (src.url !== undefined) {
      docUrl = new URL(src.url);
      const res = await undiciRequest(docUrl, { headers: this.backend.headers, headersTimeout: this.gateway.timeouts.initializeMs });
      if (res.statusCode !== 200) {
        await res.body.dump();
        throw new Error(`HTTP ${res.statusCode} for the document`);
      }
      text = (await readAll(res.body, MAX_DOC_BYTES)).toString('utf8');
    } else text = readFileSync(resolve(this.dir, src.file!), 'utf8');
    const doc = (text.trimStart().startsWith('{') ? JSON.parse(text) : parseYaml(text)) as Json;
    const ops = operationsOf(doc);
    const base = apiBase(this.backend.spec.url, this.backend.spec.openapi!.servers, doc.servers, docUrl);
    const t = { ...this.gateway.timeouts, ...this.backend.spec.timeouts };
    const info = doc.info as { title?: unknown; version?: unknown } | undefined;
    const pool = createPool(base.origin, { connections: this.backend.spec.pool.connections, keepAliveMs: this.backend.spec.pool.keepAliveMs, connectMs: t.connectMs, headersMs: t.headersMs, bodyIdleMs: t.bodyIdleMs });
    this.log.info({ upstream: this.name, operations: ops.length }, 'OpenAPI document loaded');
    return {
      ops: new Map(ops.map((o) => [o.name, o])),
      tools: ops.map((o) => o.tool),
      info: { name: typeof info?.title === 'string' ? info.title : this.name, version: typeof info?.version === 'string' ? info.version : '0' },
      pool: this.credential ? withCredential(pool, this.credential) : pool,
      basePath: base.pathname.replace(/\/+$/, ''),
    };
  }

  async open(hello: ClientHello): Promise<UpstreamSession> {
    const loaded = await this.load();
    return new OpenApiSession(this.name, loaded, hello, this.backend.headers);
  }

  async close(): Promise<void> {
    const l = await this.loading?.catch(() => undefined);
    await l?.pool.close();
  }
}

class OpenApiSession implements UpstreamSession {
  readonly backend: string;
  readonly init: InitializeResult;
  alive = true;
  private readonly api: Loaded;
  private readonly headers: Readonly<Record<string, string>>;

  constructor(backend: string, api: Loaded, hello: ClientHello, headers: Readonly<Record<string, string>>) {
    this.backend = backend;
    this.api = api;
    this.headers = headers;
    this.init = { protocolVersion: hello.protocolVersion, capabilities: { tools: { listChanged: false } }, serverInfo: api.info };
  }

  request(msg: RpcRequest, _raw: Buffer | undefined, sink: ReplySink): InflightHandle {
    const controller = new AbortController();
    this.answer(msg, controller.signal).then(
      (result) => sink.final(resultResponse(msg.id, result)),
      (err: unknown) => sink.final(errorResponse(msg.id, err instanceof GatewayError ? err : upstreamError(this.backend, err))),
    );
    return { downstreamId: msg.id, cancel: () => controller.abort() };
  }

  private async answer(msg: RpcRequest, signal: AbortSignal): Promise<Record<string, unknown>> {
    switch (msg.method) {
      case 'ping':
        return {};
      case 'tools/list':
        return { tools: this.api.tools };
      case 'tools/call':
        return this.callOperation(msg.params ?? {}, signal);
      default:
        throw new GatewayError(Errors.METHOD_NOT_FOUND, `Method not found: ${msg.method}`);
    }
  }

  private async callOperation(params: Record<string, unknown>, signal: AbortSignal): Promise<Record<string, unknown>> {
    const op = typeof params.name === 'string' ? this.api.ops.get(params.name) : undefined;
    if (!op) throw new GatewayError(Errors.MCP_UNKNOWN_TOOL, `Unknown tool: ${String(params.name)}`);
    const args = (params.arguments ?? {}) as Record<string, unknown>;
    let path = op.path;
    const query = new URLSearchParams();
    const headers: Record<string, string> = { ...this.headers, accept: 'application/json, */*;q=0.5' };
    for (const p of op.params) {
      const v = args[p.name];
      if (v === undefined || v === null) {
        if (p.required) return { content: [{ type: 'text', text: `Missing required argument "${p.name}"` }], isError: true };
        continue;
      }
      const s = typeof v === 'object' ? JSON.stringify(v) : String(v);
      if (p.in === 'path') path = fillPathParam(path, p.name, s);
      else if (p.in === 'query') query.append(p.name, s);
      else if (!/[\r\n]/.test(s) && !(p.name.toLowerCase() in this.headers)) headers[p.name.toLowerCase()] = s;
    }
    let body: string | undefined;
    if (op.hasBody && args.body !== undefined) {
      body = JSON.stringify(args.body);
      headers['content-type'] = 'application/json';
    }
    const qs = query.toString();
    const res = await this.api.pool.request({ method: op.method as 'GET', path: `${this.api.basePath}${path}${qs ? `?${qs}` : ''}`, headers, body: body ?? null, signal });
    const text = (await readAll(res.body, MAX_RESULT_BYTES)).toString('utf8');
    const result: Record<string, unknown> = { content: [{ type: 'text', text: text === '' ? `HTTP ${res.statusCode}` : text }] };
    if (res.statusCode >= 400) result.isError = true;
    return result;
  }

  call(method: string, params: Record<string, unknown> | undefined): Promise<Record<string, unknown>> {
    return this.answer({ jsonrpc: '2.0', id: 0, method, ...(params && { params }) }, new AbortController().signal);
  }

  notify(_msg: RpcNotification): void {}

  listen(): () => void {
    return () => {};
  }

  async close(): Promise<void> {
    this.alive = false;
  }
}
