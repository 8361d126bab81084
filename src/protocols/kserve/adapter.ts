/**
 * The KServe v2 adapter (Triton Inference Server as the reference backend): server and model health and metadata,
 * Triton's model configuration, infer (JSON tensors, or the binary tensor extension streamed through unread; bodies
 * compressed with gzip or deflate read decoded and forwarded as sent, coding.ts), and the generate extension
 * (generate, generate_stream relayed event by event), under a route's mount (conventionally /v2), routed by model
 * name to a pool.
 *
 * One road per request, as for every protocol: authenticate from the headers (before any body is read or anything
 * created), read what policy needs (bounded), resolve the model (the policy sees the name before the caller learns
 * whether it exists), set the budget estimate, admit (policy, limits), forward the client's own bytes, relay the
 * answer as it arrives, settle (usage, audit, telemetry). Errors are KServe's `{"error": "..."}` with the gateway's
 * status; the backend's own errors are passed on as they are (they already have that shape).
 */
import type { IncomingMessage } from 'node:http';
import type { ConfigSnapshot } from '../../config/load.ts';
import type { CompiledRule } from '../../config/routes.ts';
import type { RouteSpec } from '../../config/schema.ts';
import type { Call } from '../../core/call.ts';
import { Errors, GatewayError, toGatewayError } from '../../core/errors.ts';
import type { AdapterContext, ErrorTarget, Exchange } from '../../gateway/adapter.ts';
import { HttpProtocolAdapter } from '../../gateway/http-adapter.ts';
import { boundedBody, type BoundedBody } from '../../server/body.ts';
import { readBody } from '../../server/io.ts';
import { forward, type ChunkFilter, type ForwardRequest } from '../../upstream/forwarder.ts';
import { HeaderPolicy } from '../../upstream/headers.ts';
import { RenamedAnswer } from '../../upstream/rename.ts';
import { ModelCatalog, ModelRoutes, type ModelCard } from '../../upstream/model-catalog.ts';
import type { ResolvedModel } from '../../upstream/models.ts';
import { writeKServeError } from '../../wire/errors.ts';
import { decodeBody, requestCoding, type RequestCoding } from './coding.ts';
import { modelsByBackend, readyProbe } from './health.ts';
import { namespaced, type NamespacedBody } from './sequence.ts';
import { administrativeApi, parsePath, upstreamPath, type KServePath } from './operations.ts';
import {
  declaredLength,
  generateArguments,
  generateMaxTokens,
  generateSequence,
  headerLength,
  gather,
  inferArguments,
  inferenceHeader,
  parseObject,
  peekHeader,
  collect,
  sequenceId,
  textInputBytes,
} from './request.ts';
import { GenerateStream, KServeAnswer, ServerMetadata } from './stream.ts';

type KServeRouteSpec = NonNullable<RouteSpec['kserve']>;

const DEFAULTS: KServeRouteSpec = Object.freeze({ maxHeaderBytes: 1024 * 1024, countStreamEvents: false, bytesPerToken: 3, policyContent: false });

/**
 * What crosses the gateway besides the body (never the caller's credentials). Content-Encoding: a compressed infer
 * body is forwarded as sent (coding.ts); Accept-Encoding reaches Triton for infer only (the one answer it compresses),
 * and only when the answer is relayed unedited: a renamed model's answer is rewritten, so it is asked for as identity.
 */
const REQUEST_HEADERS = ['content-type', 'content-encoding', 'accept', 'inference-header-content-length', 'x-request-id'];
const RESPONSE_HEADERS = ['content-type', 'content-encoding', 'inference-header-content-length', 'x-request-id'];
const HEADERS = new HeaderPolicy({ request: REQUEST_HEADERS, response: RESPONSE_HEADERS });
const COMPRESSIBLE = new HeaderPolicy({ request: [...REQUEST_HEADERS, 'accept-encoding'], response: RESPONSE_HEADERS });

/** A caller naming an unknown model refreshes a backend's repository index at most this often. */
const UNKNOWN_MODEL_REFRESH_MS = 2_000;

/** A request body as forwarded: held in memory (JSON), or streamed (binary tensors) with its declared length. */
interface Body {
  readonly data: Buffer | BoundedBody;
  readonly length?: number | undefined;
  /** Binary tensors (gathered or streamed): never labelled JSON when the client sent no content-type. */
  readonly binary?: true;
  /** Gives back the process-wide allowance of a gathered body (request.ts gather). */
  readonly release?: () => void;
  /** The Triton sequence it belongs to, as Triton sees it (sequence.ts): one endpoint of the pool serves it. */
  readonly sequence?: number | string | undefined;
  /** Headers the body's rewrite changed (its sequence id: the binary header's length; a body sent decoded). */
  readonly set?: Readonly<Record<string, string>>;
}

/** A rewritten (namespaced) uncompressed body as forwarded; `decoded`: it was sent compressed, it goes decoded. */
function sequenced(b: NamespacedBody, decoded: boolean): Body {
  const set: Record<string, string> = {};
  if (b.headerLength !== undefined) set['inference-header-content-length'] = String(b.headerLength);
  if (decoded) set['content-encoding'] = 'identity';
  return { data: b.data, sequence: b.sequence, set, ...(b.headerLength !== undefined ? { binary: true as const } : {}) };
}

export class KServeAdapter extends HttpProtocolAdapter {
  private readonly models: ModelRoutes;
  /** The models each backend serves by exact name (what its health probe asks Triton about). */
  private probed: ReadonlyMap<string, readonly string[]> = new Map();

  constructor(ctx: AdapterContext) {
    // Triton answers /v2/health/ready before any model has loaded: the probe asks each served model's /ready.
    super(ctx, {
      protocol: 'kserve',
      label: 'KServe',
      health: { probe: (backend) => readyProbe(backend.headers, backend.spec.healthCheck.timeoutMs, () => this.probed.get(backend.name) ?? []) },
      crashWriter: writeKServeError,
    });
    this.models = new ModelRoutes(new ModelCatalog((backend) => this.fetchModels(backend), { ttlMs: 30_000 }), { refreshMs: UNKNOWN_MODEL_REFRESH_MS });
    this.reconfigure(ctx.state().snapshot);
  }

  private settings(rule: CompiledRule): KServeRouteSpec {
    return rule.route.spec.kserve ?? DEFAULTS;
  }

  handle(x: Exchange): void {
    const { req, match } = x;
    const path = parsePath(match.rest);
    this.admit(x, path?.operation ?? 'refused', (pre) => {
      const method = req.method ?? 'GET';
      if (path === undefined) {
        const api = administrativeApi(match.rest);
        if (api !== undefined) throw new GatewayError(Errors.NOT_FOUND, `Triton's ${api} API is not exposed through this gateway: it administers the server, not a model (${match.rule.mount}${match.rest})`);
        throw new GatewayError(Errors.NOT_FOUND, `No KServe v2 endpoint at ${match.rule.mount}${match.rest}`);
      }
      // GET endpoints answer HEAD too (RFC 9110 9.3.2): forwarded as GET, the answer's body left out.
      const allowed = path.method === 'GET' ? ['GET', 'HEAD'] : [path.method];
      if (!allowed.includes(method)) throw new GatewayError(Errors.METHOD_NOT_ALLOWED, `Method ${method} is not allowed on ${match.rule.mount}${match.rest}`, { headers: { allow: allowed.join(', ') } });
      // Triton decodes gzip and deflate infer bodies only; the gateway reads (decoded) what it forwards.
      const coding = requestCoding(req.headers, path.operation === 'infer', path.operation);
      return path.model === undefined ? this.server(x, pre, path) : this.model(x, pre, path, path.model, coding);
    });
  }

  /**
   * /v2, /v2/health/live, /v2/health/ready. Live and ready are the gateway's own answers for the route (live: it
   * serves; ready: every backend of the rule has an endpoint passing its health checks); the server metadata is the
   * rule's first backend's (its name, version and extensions are what a client negotiates against), the extensions
   * of the administrative APIs left out (they are not served here).
   */
  private async server(x: Exchange, call: Call, path: KServePath): Promise<void> {
    const { req, res, match, state } = x;
    this.ctx.calls.begin(call);
    await this.ctx.calls.run(call, { res, req, call }, state, async () => {
      if (path.operation === 'server.live') return void res.writeHead(200, { 'content-length': 0 }).end();
      if (path.operation === 'server.ready') {
        const statuses = this.upstreamSet.statuses();
        const down = match.rule.backends.filter((b) => statuses[b.name]?.up !== true).map((b) => b.name);
        if (down.length > 0) throw new GatewayError(Errors.UPSTREAM_NOT_READY, `Backend ${down.join(', ')} has no ready endpoint`, { data: { upstreams: down } });
        return void res.writeHead(200, { 'content-length': 0 }).end();
      }
      const backend = match.rule.backends[0]!.name;
      call.upstream = backend;
      call.target = { kind: 'server', name: backend, server: backend };
      await this.relay(call, x, backend, { method: 'GET', path: '/v2', idempotent: true, filter: new ServerMetadata() });
    });
  }

  /** A model endpoint: metadata, ready, config, infer, generate, generate_stream. */
  private async model(x: Exchange, call: Call, path: KServePath, model: string, coding: RequestCoding | undefined): Promise<void> {
    const { req, res, match, state } = x;
    const rule = match.rule;
    const settings = this.settings(rule);
    let body: Body | undefined;
    let generate: Record<string, unknown> | undefined;
    try {
      if (path.operation === 'infer') body = coding === undefined ? await this.inferBody(req, rule, settings, call) : await this.compressedInferBody(req, rule, settings, call, coding);
      else if (path.method === 'POST') {
        const raw = await readBody(req, rule.maxBodyBytes);
        generate = parseObject(raw);
        call.args = generateArguments(generate, settings.policyContent);
        // Its sequence id is the caller's own, as in infer (sequence.ts), wherever Triton takes it from.
        const seq = generateSequence(generate);
        body = seq === undefined ? { data: raw } : sequenced(namespaced(raw, undefined, seq.id, call.principal?.id ?? '', seq.place), false);
      }
    } catch (err) {
      return this.reject(call, req, res, toGatewayError(err));
    }
    let resolved: ResolvedModel | undefined;
    try {
      resolved = await this.models.resolve(rule, model);
    } catch (err) {
      body?.release?.();
      throw err;
    }
    call.target = { kind: 'model', name: resolved?.name ?? model, server: resolved?.backend, local: resolved?.upstream, ...(path.version !== undefined ? { version: path.version } : {}) };
    call.upstream = resolved?.backend;
    const generates = path.operation === 'generate' || path.operation === 'generate_stream';
    call.model = { ...(generates ? { operation: 'text_completion' } : {}), ...(resolved !== undefined && resolved.requested !== resolved.name ? { requested: resolved.requested } : {}) };
    if (path.operation === 'infer' || path.operation === 'generate') call.model.metering = 'unmetered';
    // Tensors are not tokens: only generation reserves tokens (text_input bytes / N, and max_tokens when given).
    call.estimate =
      generate !== undefined
        ? { inputTokens: Math.ceil(textInputBytes(generate) / settings.bytesPerToken), maxOutputTokens: generateMaxTokens(generate) }
        : { inputTokens: 0, maxOutputTokens: 0 };
    this.ctx.calls.begin(call);
    let sent = false;
    try {
      await this.ctx.calls.run(call, { res, req, call }, state, async () => {
        // After the policy saw the name: only an admitted caller learns that a model does not exist.
        if (resolved === undefined) throw new GatewayError(Errors.MODEL_NOT_FOUND, `Model '${model}' is not served on this route`, { data: { model } });
        sent = true;
        await this.relay(call, x, resolved.backend, {
          method: path.method,
          path: upstreamPath(path, resolved.upstream),
          body,
          idempotent: path.method === 'GET',
          // A sequence stays on one endpoint, keyed by the model alone: Triton keeps it per model (ids are per model),
          // and a sequence mixing infer and generate calls, or naming the version in some, is still one sequence.
          affinity: body?.sequence === undefined ? undefined : `${resolved.upstream}\n${String(body.sequence)}`,
          filter: answerFilter(call, path, resolved, settings.countStreamEvents),
          // Triton compresses infer answers when asked; a renamed model's answer is edited, so it stays identity.
          policy: path.operation === 'infer' && resolved.name === resolved.upstream ? COMPRESSIBLE : HEADERS,
        });
      });
    } finally {
      // A streamed body that was never forwarded (refused by policy or limits): stop reading it.
      if (!sent && body !== undefined && !Buffer.isBuffer(body.data)) body.data.destroy();
      body?.release?.();
    }
  }

  /**
   * An infer body: JSON tensors read whole (bounded by the route); binary tensors streamed, their JSON header alone
   * read (bounded by `maxHeaderBytes`) and checked against the body's declared length.
   */
  private async inferBody(req: IncomingMessage, rule: CompiledRule, s: KServeRouteSpec, call: Call): Promise<Body> {
    const n = headerLength(req.headers, s.maxHeaderBytes);
    const declared = declaredLength(req.headers);
    const principal = call.principal?.id ?? '';
    if (n === undefined) {
      const raw = await readBody(req, rule.maxBodyBytes);
      const json = parseObject(raw);
      call.args = inferArguments(json, raw.length, false);
      const id = sequenceId(json);
      return id === undefined ? { data: raw } : sequenced(namespaced(raw, undefined, id, principal), false);
    }
    const stream = boundedBody(req, rule.maxBodyBytes);
    try {
      const header = inferenceHeader(await peekHeader(stream, n), n, declared);
      call.args = inferArguments(header, declared, true);
      const id = sequenceId(header);
      // A sequence's header is rewritten: its body is read whole (bounded by the route) to be sent re-framed.
      if (id !== undefined) return sequenced(namespaced(await collect(stream), n, id, principal), false);
      const whole = await gather(stream, declared);
      return whole === undefined ? { data: stream, length: declared, binary: true } : { data: whole.data, binary: true, release: whole.release };
    } catch (err) {
      stream.destroy();
      throw err;
    }
  }

  /**
   * A compressed infer body (gzip, deflate): read whole and decoded, both bounded by the route's limit, then read as
   * an uncompressed one would be (the binary header framed in decoded bytes, as Triton frames it); the compressed
   * bytes are what is forwarded. Policies see the decoded size as `body_bytes`.
   */
  private async compressedInferBody(req: IncomingMessage, rule: CompiledRule, s: KServeRouteSpec, call: Call, coding: RequestCoding): Promise<Body> {
    const packed = await readBody(req, rule.maxBodyBytes);
    const plain = await decodeBody(packed, coding, rule.maxBodyBytes);
    const n = headerLength(req.headers, s.maxHeaderBytes, plain.length);
    const json = n === undefined ? parseObject(plain) : inferenceHeader(plain.subarray(0, n), n, plain.length);
    call.args = inferArguments(json, plain.length, n !== undefined);
    const id = sequenceId(json);
    // A sequence's id is rewritten: the decoded body is sent (Triton takes identity as well).
    if (id !== undefined) return sequenced(namespaced(plain, n, id, call.principal?.id ?? ''), true);
    // The coding as Triton compares it (lower case): the client may spell it in any case (RFC 9110 8.4.1).
    return { data: packed, set: { 'content-encoding': coding }, ...(n === undefined ? {} : { binary: true as const }) };
  }

  /** Forwards to a backend and relays its answer (the backend's own errors pass as they are). */
  private async relay(
    call: Call,
    x: Exchange,
    backend: string,
    r: { method: string; path: string; body?: Body | undefined; idempotent: boolean; affinity?: string | undefined; filter?: ChunkFilter; policy?: HeaderPolicy },
  ): Promise<void> {
    const { req, res } = x;
    const upstream = this.upstreamSet.get(backend);
    if (upstream === undefined) throw new GatewayError(Errors.UPSTREAM_UNAVAILABLE, `Upstream ${backend} is unavailable`, { data: { upstream: backend } });
    const fr: ForwardRequest = {
      method: r.method,
      path: r.path,
      headers: req.headers,
      policy: r.policy ?? HEADERS,
      set: {
        ...(r.body !== undefined && r.body.binary !== true && req.headers['content-type'] === undefined ? { 'content-type': 'application/json' } : {}),
        ...r.body?.set,
        ...this.ctx.calls.propagate(call),
      },
      body: r.body?.data,
      bodyLength: r.body?.length,
      client: res,
      idempotent: r.idempotent,
      call,
      affinity: r.affinity,
    };
    const answer = await forward(upstream, fr);
    // The backend's own error (KServe-shaped already): passed on; the call records it.
    if (answer.status !== 200) call.outcome = answer.status >= 500 ? 'upstream_error' : 'error';
    if (r.filter instanceof KServeAnswer) r.filter.coding = answer.headers['content-encoding'];
    await answer.pipeTo(res, { filter: r.filter });
    if (call.model?.streamError === true && call.outcome === 'ok') call.outcome = 'upstream_error';
  }

  /** A backend's models from Triton's repository index (refused by servers that restrict that API, e.g. PyTriton). */
  private async fetchModels(backend: string): Promise<ModelCard[]> {
    const upstream = this.upstreamSet.get(backend);
    if (upstream === undefined) throw new Error(`backend ${backend} is not configured`);
    const answer = await forward(upstream, { method: 'POST', path: '/v2/repository/index', headers: {}, policy: HEADERS, set: { 'content-type': 'application/json' }, body: '{"ready":true}', idempotent: true, timeouts: { totalMs: 5_000 } });
    if (answer.status !== 200) {
      await answer.dump();
      throw new Error(`backend ${backend}: POST /v2/repository/index answered ${answer.status}`);
    }
    const index = JSON.parse((await answer.read(4 * 1024 * 1024)).toString('utf8')) as unknown;
    if (!Array.isArray(index)) throw new Error(`backend ${backend}: the repository index is not a list`);
    return index.flatMap((m: unknown) => {
      const name = (m as { name?: unknown } | null)?.name;
      return typeof name === 'string' ? [{ ...(m as object), id: name }] : [];
    });
  }

  renderError(err: GatewayError, to: ErrorTarget): void {
    writeKServeError(to.res, err);
  }

  override reconfigure(snapshot: ConfigSnapshot): void {
    // Before the pools are (re)built: their first health round reads it.
    this.probed = modelsByBackend(snapshot, 'kserve');
    super.reconfigure(snapshot);
    this.models.catalog.retain(this.backendsOf(snapshot));
  }
}

/**
 * How a model's answer is relayed: read for metering, and with the route's name for the model instead of Triton's
 * when the route renames it (upstream/rename.ts; a binary answer's Inference-Header-Content-Length follows); the
 * ready answer has no body to rename.
 */
function answerFilter(call: Call, path: KServePath, resolved: ResolvedModel, countEvents: boolean): ChunkFilter {
  const rename = resolved.name !== resolved.upstream ? resolved.name : undefined;
  if (path.operation === 'generate_stream') return new GenerateStream(call, countEvents, rename);
  const answer = new KServeAnswer(call);
  if (rename === undefined || path.operation === 'model.ready') return answer;
  // Metadata and configuration name the model in `name`; infer and generate answers in `model_name`.
  const key = path.operation === 'model.metadata' || path.operation === 'model.config' ? 'name' : 'model_name';
  return new RenamedAnswer(answer, key, rename, ['content-length', 'inference-header-content-length']);
}
