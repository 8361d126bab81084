/**
 * The OpenAI-compatible adapter (vLLM's server as the reference): chat/completions, completions, embeddings, the
 * Responses API, vLLM's extras (rerank, score, pooling, classify, tokenize, detokenize) and models under a route's
 * mount (conventionally /v1), routed by model name to a pool; stored responses (stored.ts) for their creator only.
 *
 * One road per request: authenticate from the headers (before the body is read or anything created), read and parse
 * the body (bounded by the route), resolve the model (the policy sees the name before the caller learns whether it
 * exists), set the budget estimate, admit (policy, limits), forward the client's bytes with only the needed edits
 * (model rewrite, stream_options.include_usage, max_tokens capped to the reservation), relay the answer byte for byte
 * (but for `model`, the name the client asked for when the route rewrote it) while reading its usage, settle.
 */
import type { ConfigSnapshot } from '../../config/load.ts';
import type { CompiledRule } from '../../config/routes.ts';
import type { RouteSpec } from '../../config/schema.ts';
import type { Call } from '../../core/call.ts';
import { Errors, GatewayError, toGatewayError } from '../../core/errors.ts';
import { limitNoticesOf, openAiRateLimitHeaders, type LimitNotice } from '../../core/limits.ts';
import type { AdapterContext, ErrorTarget, Exchange } from '../../gateway/adapter.ts';
import { HttpProtocolAdapter } from '../../gateway/http-adapter.ts';
import { mediaType, readBody } from '../../server/io.ts';
import { forward } from '../../upstream/forwarder.ts';
import type { HttpUpstream } from '../../upstream/http-upstream.ts';
import { ModelCatalog, ModelRoutes } from '../../upstream/model-catalog.ts';
import type { ResolvedModel } from '../../upstream/models.ts';
import { RenamedAnswer } from '../../upstream/rename.ts';
import { writeOpenAiError } from '../../wire/errors.ts';
import { HEADERS, listModels, retrieveModel, type ModelsContext } from './list.ts';
import { notFound, parseModelList } from './models.ts';
import { MODELS_LIST, MODELS_RETRIEVE, POST_OPERATIONS, RESPONSES, type Operation } from './operations.ts';
import { ResponseOwners } from './owners.ts';
import {
  cappedMaxTokens,
  clientMaxTokens,
  estimatePromptTokens,
  maxOutputTokens,
  parseBody,
  policyArguments,
  promptBytes,
  upstreamBody,
  type ParsedBody,
} from './request.ts';
import { ResponsesStream } from './responses.ts';
import { bindResponse, claimResponseState, CREATE_HEADERS, serveStored, storedAffinity, storedRoute, type StoredContext } from './stored.ts';
import { safeDecode } from '../../wire/path.ts';
import { CompletionStream, JsonAnswer, reportUsage } from './stream.ts';

type OpenAiRouteSpec = NonNullable<RouteSpec['openai']>;

const DEFAULTS: OpenAiRouteSpec = Object.freeze({
  promptTokens: Object.freeze({ estimate: 'bytes' as const, bytesPerToken: 3 }),
  maxPromptBytes: undefined,
  policyContent: false,
  modelsCacheMs: 30_000,
});

/** A whole JSON answer larger than this is relayed without reading its usage (the reservation is then charged). */
const JSON_READ_LIMIT = 16 * 1024 * 1024;
/** A caller naming an unknown model refreshes a backend's model list at most this often (routes without `models`). */
const UNKNOWN_MODEL_REFRESH_MS = 2_000;

export class OpenAiAdapter extends HttpProtocolAdapter implements ModelsContext, StoredContext {
  readonly models: ModelRoutes;
  /** Who created each Responses API response (stored.ts). */
  readonly owners: ResponseOwners;

  constructor(ctx: AdapterContext) {
    // vLLM answers GET /health with 200 once its engine is up.
    super(ctx, { protocol: 'openai', label: 'OpenAI', health: { path: '/health' }, crashWriter: writeOpenAiError });
    this.models = new ModelRoutes(new ModelCatalog((backend) => this.fetchModels(backend), { ttlMs: 30_000 }), { refreshMs: UNKNOWN_MODEL_REFRESH_MS });
    this.owners = new ResponseOwners(ctx.store);
    this.reconfigure(ctx.state().snapshot);
  }

  settings(rule: CompiledRule): OpenAiRouteSpec {
    return rule.route.spec.openai ?? DEFAULTS;
  }

  handle(x: Exchange): void {
    const { req, match } = x;
    const rest = match.rest;
    const method = req.method ?? 'GET';
    let op: Operation | undefined = POST_OPERATIONS.get(rest);
    // The listings are GET endpoints, so HEAD too (RFC 9110 9.3.2: the same answer without its body).
    let allowed: readonly string[] = ['POST'];
    if (op === undefined && (rest === '/models' || (rest.startsWith('/models/') && rest.length > '/models/'.length))) {
      op = rest === '/models' ? MODELS_LIST : MODELS_RETRIEVE;
      allowed = ['GET', 'HEAD'];
    }
    const stored = op === undefined ? storedRoute(method, rest, req.url) : undefined;
    if (stored !== undefined) {
      this.admit(x, stored.operation, (pre) => serveStored(this, x, pre, stored));
      return;
    }
    this.admit(x, op?.name ?? 'refused', (pre) => {
      if (op === undefined) throw new GatewayError(Errors.NOT_FOUND, `No OpenAI-compatible endpoint at ${match.rule.mount}${rest}`);
      if (!allowed.includes(method)) throw new GatewayError(Errors.METHOD_NOT_ALLOWED, `Method ${method} is not allowed on ${match.rule.mount}${rest}`, { headers: { allow: allowed.join(', ') } });
      // A body the gateway reads and forwards as JSON must say it is JSON (vLLM refuses any other Content-Type too).
      if (method === 'POST' && mediaType(req.headers['content-type']) !== 'application/json') {
        throw new GatewayError(Errors.UNSUPPORTED_MEDIA_TYPE, `Content-Type must be application/json, not ${req.headers['content-type'] ?? 'absent'}`);
      }
      if (op === MODELS_LIST) return listModels(this, x, pre);
      if (op === MODELS_RETRIEVE) return retrieveModel(this, x, pre, safeDecode(rest.slice('/models/'.length)));
      return this.infer(x, pre, op);
    });
  }

  /** A model-bearing POST: completions (streamed or not), embeddings, tokenize, detokenize. */
  private async infer(x: Exchange, call: Call, op: Operation): Promise<void> {
    const { req, res, match, state } = x;
    const rule = match.rule;
    let p: ParsedBody;
    try {
      p = parseBody(await readBody(req, rule.maxBodyBytes));
    } catch (err) {
      return this.reject(call, req, res, toGatewayError(err));
    }
    const settings = this.settings(rule);
    const resolved = await this.models.resolve(rule, p.model);
    call.target = { kind: 'model', name: resolved?.name ?? p.model, server: resolved?.backend, local: resolved?.upstream };
    call.upstream = resolved?.backend;
    call.args = policyArguments(p, settings.policyContent);
    call.model = { operation: op.genAi, ...(resolved !== undefined && resolved.requested !== resolved.name ? { requested: resolved.requested } : {}) };
    const upstream = resolved === undefined ? undefined : this.upstreamSet.get(resolved.backend);
    // The budget's reservation: nothing for tokenize/detokenize (no tokens are generated or billed).
    call.estimate = op.metered
      ? { inputTokens: await this.promptTokens(p, op, settings, upstream, resolved?.upstream), maxOutputTokens: maxOutputTokens(p, op) }
      : { inputTokens: 0, maxOutputTokens: 0 };
    this.ctx.calls.begin(call);
    await this.ctx.calls.run(call, { res, req, call }, state, async () => {
      // After the policy saw the name: only an admitted caller learns that a model does not exist.
      if (resolved === undefined) throw notFound(p.model);
      const max = settings.maxPromptBytes;
      if (max !== undefined && promptBytes(p) > max) {
        throw new GatewayError(Errors.PROMPT_TOO_LARGE, `The prompt is ${promptBytes(p)} bytes, over the ${max} bytes this route accepts`, { data: { param: 'messages' } });
      }
      if (op === RESPONSES) await claimResponseState(this.owners, call, p, resolved);
      if (upstream === undefined) throw new GatewayError(Errors.UPSTREAM_UNAVAILABLE, `Upstream ${resolved.backend} is unavailable`, { data: { upstream: resolved.backend } });
      await this.forwardInference(call, op, p, resolved, upstream, x);
    });
  }

  private async forwardInference(call: Call, op: Operation, p: ParsedBody, resolved: ResolvedModel, upstream: HttpUpstream, x: Exchange): Promise<void> {
    const { req, res } = x;
    const streaming = op.streams && p.json.stream === true;
    const options = p.json.stream_options;
    // The client did not ask for the usage chunk: the gateway asks for it, and drops it from what the client sees.
    // Only into options the backend would accept (none, null, an object): anything else is the backend's to refuse.
    const editable = options === undefined || options === null || (typeof options === 'object' && !Array.isArray(options));
    const addUsage = streaming && op.usageChunk && editable && (options as { include_usage?: unknown } | null | undefined)?.include_usage !== true;
    const cap = call.outputTokenCap;
    const maxTokens = op.generates && cap !== undefined && clientMaxTokens(p, op) === undefined ? { key: op.outputLimit, value: cappedMaxTokens(p, op, cap) } : undefined;
    const body = upstreamBody(p, { model: resolved.upstream !== p.model ? resolved.upstream : undefined, includeUsage: addUsage, maxTokens });
    const stored = op === RESPONSES && p.json.store !== false;
    const answer = await forward(upstream, {
      method: 'POST',
      path: op.upstreamPath,
      headers: req.headers,
      policy: op === RESPONSES ? CREATE_HEADERS : HEADERS,
      set: { 'content-type': 'application/json', ...this.ctx.calls.propagate(call) },
      body,
      client: res,
      // A completion has no side effect but its cost: sending it again before any byte reached the client is safe.
      idempotent: true,
      affinity: stored ? storedAffinity(call.principal?.id ?? '') : undefined,
      call,
    });
    const headers = openAiRateLimitHeaders(limitNoticesOf(call));
    if (answer.status !== 200) {
      // The backend's own error, passed on as it is; nothing was generated, so nothing is charged.
      call.outcome = answer.status >= 500 ? 'upstream_error' : 'error';
      await answer.pipeTo(res, { headers });
      return;
    }
    const type = answer.headers['content-type'];
    const sse = typeof type === 'string' && type.startsWith('text/event-stream');
    // The client sees the model name it asked for, not the backend's (README: the model name in answers).
    const rename = resolved.upstream !== p.model ? p.model : undefined;
    // A background response goes on generating when its stream's client leaves: charged its whole reservation until
    // the backend's final usage replaces it (its deltas are not counted).
    const background = op === RESPONSES && p.json.background === true;
    if (background) call.usage = { inputTokens: call.estimate?.inputTokens ?? 0, outputTokens: clientMaxTokens(p, op) ?? maxTokens?.value ?? call.outputTokenCap ?? 0 };
    const filter = sse
      ? op === RESPONSES
        ? new ResponsesStream(call, rename, true, !background)
        : new CompletionStream(call, addUsage, rename)
      : rename === undefined
        ? new JsonAnswer(call, JSON_READ_LIMIT, op.metered)
        : new RenamedAnswer(new JsonAnswer(call, JSON_READ_LIMIT, op.metered), 'model', rename);
    try {
      await answer.pipeTo(res, { headers, filter });
    } finally {
      // Bound even when the client left mid-stream: a stored response outlives its stream (its creator may resume it).
      if (op === RESPONSES) await bindResponse(this, call, p, resolved);
    }
    if (call.model?.streamError === true) call.outcome = 'upstream_error';
    if (!sse && call.model?.metering === 'unmetered') metadataUsage(call, answer.headers.metadata);
  }

  upstreamOf(backend: string): HttpUpstream | undefined {
    return this.upstreamSet.get(backend);
  }

  /** The reservation's prompt tokens: bytes / N (default), or the backend's /tokenize when the route says so. */
  private async promptTokens(p: ParsedBody, op: Operation, s: OpenAiRouteSpec, upstream: HttpUpstream | undefined, model: string | undefined): Promise<number> {
    const bytes = estimatePromptTokens(p, s.promptTokens.bytesPerToken);
    // vLLM's /tokenize takes a chat's messages or a completion's prompt; other requests are estimated from their bytes.
    if (s.promptTokens.estimate !== 'tokenize' || upstream === undefined || (op.name !== 'chat.completions' && op.name !== 'completions')) return bytes;
    try {
      const body = JSON.stringify(p.json.messages !== undefined ? { model, messages: p.json.messages, tools: p.json.tools } : { model, prompt: p.json.prompt });
      const answer = await forward(upstream, { method: 'POST', path: '/tokenize', headers: {}, policy: HEADERS, set: { 'content-type': 'application/json' }, body, idempotent: true, timeouts: { totalMs: 5_000 } });
      if (answer.status !== 200) {
        await answer.dump();
        return bytes;
      }
      const count = (JSON.parse((await answer.read(1024 * 1024)).toString('utf8')) as { count?: unknown }).count;
      return typeof count === 'number' && count >= 0 ? count : bytes;
    } catch {
      // The estimate is only a reservation: fall back to the byte estimate rather than refuse the call.
      return bytes;
    }
  }

  private async fetchModels(backend: string): Promise<ReturnType<typeof parseModelList>> {
    const upstream = this.upstreamSet.get(backend);
    if (upstream === undefined) throw new Error(`backend ${backend} is not configured`);
    const answer = await forward(upstream, { method: 'GET', path: '/v1/models', headers: {}, policy: HEADERS, idempotent: true, timeouts: { totalMs: 5_000 } });
    if (answer.status !== 200) {
      await answer.dump();
      throw new Error(`backend ${backend}: GET /v1/models answered ${answer.status}`);
    }
    return parseModelList(await answer.read(4 * 1024 * 1024), backend);
  }

  renderError(err: GatewayError, to: ErrorTarget): void {
    const notices = (err.data as { limits?: readonly LimitNotice[] } | undefined)?.limits;
    writeOpenAiError(to.res, err, notices === undefined ? undefined : openAiRateLimitHeaders(notices));
  }

  override reconfigure(snapshot: ConfigSnapshot): void {
    super.reconfigure(snapshot);
    this.models.catalog.retain(this.backendsOf(snapshot));
    for (const b of snapshot.backends.values()) {
      if (b.spec.protocol !== 'openai') continue;
      // The adapter adds /v1 itself (and reaches /tokenize, /health at the root): an OpenAI-style base URL doubles it.
      const urls = b.spec.endpoints?.map((e) => e.url) ?? [b.spec.url ?? ''];
      if (urls.some((u) => /\/v1\/?$/.test(u))) this.ctx.log.warn({ backend: b.name }, 'an openai backend URL ends with /v1: give the server root (http://host:8000), the gateway adds /v1');
    }
  }
}

/**
 * The usage of a binary answer (vLLM's pooling and embeddings with `encoding_format: "bytes"`): in the JSON of its
 * `metadata` response header (PoolingBytesResponse), since the body is raw numbers.
 */
function metadataUsage(call: Call, header: string | string[] | undefined): void {
  if (typeof header !== 'string' || header.length > JSON_READ_LIMIT) return;
  try {
    const usage = (JSON.parse(header) as { usage?: unknown } | null)?.usage;
    if (typeof usage === 'object' && usage !== null) reportUsage(call, usage);
  } catch {
    // Not JSON: the answer stays unmetered.
  }
}
