/**
 * vLLM's other endpoints for the test backend (vllm-server.ts), on the wire as vLLM writes them:
 *
 * - the Responses API (vllm/entrypoints/openai/responses: api_router.py, protocol.py, serving.py): POST /v1/responses,
 *   JSON (`ResponsesResponse.model_dump()` through Starlette's JSONResponse: compact, pydantic field order) or, with
 *   `stream: true`, typed events `event: <type>\ndata: <model_dump_json>\n\n` (response.created, response.in_progress,
 *   output_item.added, content_part.added, one output_text.delta per token, output_text.done, content_part.done,
 *   output_item.done, response.completed with `usage`), no `[DONE]`; `max_output_tokens` caps the output (status
 *   `incomplete`, `incomplete_details.reason: "max_output_tokens"`). With `store` (VLLM_ENABLE_RESPONSES_API_STORE)
 *   responses are kept by id (vLLM's `request_id` extra becomes the id): GET /v1/responses/{id}, POST
 *   /v1/responses/{id}/cancel, `previous_response_id` (unknown: 404); without it `store` is silently ignored.
 * - the pooling models' endpoints (vllm/entrypoints/pooling/*): POST /rerank, /v1/rerank, /v2/rerank
 *   (RerankResponse: id, model, usage {prompt_tokens, total_tokens}, results sorted by relevance), /score, /v1/score
 *   (ScoreResponse: data of `{index, object: "score", score}`, UsageInfo), /pooling (PoolingResponse; with
 *   `encoding_format: "bytes"` the raw float32 values and a `metadata` header), /classify (ClassificationResponse).
 *
 * Token counts: whitespace-separated words; a rerank or score pair costs its query's words plus its document's.
 */
import type { ServerResponse } from 'node:http';

type Json = Record<string, unknown>;

export interface ExtrasState {
  readonly store: boolean;
  readonly responses: Map<string, Json>;
  readonly created: number;
  /** Pause between streamed events. */
  readonly delayMs: number;
}

const words = (t: unknown): number => (typeof t === 'string' ? t.split(/\s+/).filter(Boolean).length : 0);
const texts = (v: unknown): unknown[] => (Array.isArray(v) ? v : [v]);
const sleep = (ms: number): Promise<void> => (ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve());

function json(res: ServerResponse, status: number, body: unknown, out?: Buffer[]): void {
  const bytes = Buffer.from(JSON.stringify(body));
  out?.push(bytes);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': bytes.length }).end(bytes);
}

function error(res: ServerResponse, status: number, type: string, message: string, param: string | null = null): void {
  json(res, status, { error: { message, type, param, code: status } });
}

function notFound(res: ServerResponse, id: string): void {
  error(res, 404, 'invalid_request_error', `Response with id '${id}' not found.`, 'response_id');
}

/** GET /v1/responses/{id}, POST /v1/responses/{id}/cancel: true when the path is one of them (answered). */
export function storedResponses(s: ExtrasState, method: string, path: string, res: ServerResponse): boolean {
  const m = /^\/v1\/responses\/([^/]+)(\/cancel)?$/.exec(path);
  if (m === null) return false;
  const id = decodeURIComponent(m[1]!);
  const stored = s.responses.get(id);
  if (m[2] !== undefined && method === 'POST') {
    if (stored === undefined) notFound(res, id);
    else error(res, 400, 'invalid_request_error', 'Cannot cancel a synchronous response.');
    return true;
  }
  if (method !== 'GET') {
    json(res, 405, { detail: 'Method Not Allowed' });
    return true;
  }
  if (stored === undefined) notFound(res, id);
  else json(res, 200, stored);
  return true;
}

function usageOf(input: number, output: number): Json {
  return {
    input_tokens: input,
    input_tokens_details: { cached_tokens: 0, input_tokens_per_turn: [], cached_tokens_per_turn: [] },
    output_tokens: output,
    output_tokens_details: { reasoning_tokens: 0, tool_output_tokens: 0, output_tokens_per_turn: [], tool_output_tokens_per_turn: [] },
    total_tokens: input + output,
  };
}

function inputWords(body: Json): number {
  const input = body.input;
  let n = words(body.instructions);
  if (typeof input === 'string') return n + words(input);
  for (const item of texts(input)) {
    const content = (item as { content?: unknown } | null)?.content;
    if (typeof content === 'string') n += words(content) + 3;
    else if (Array.isArray(content)) for (const part of content) n += words((part as { text?: unknown } | null)?.text);
  }
  return n;
}

function lastUserText(body: Json): string {
  if (typeof body.input === 'string') return body.input;
  const items = texts(body.input) as Array<{ role?: unknown; content?: unknown } | null>;
  const user = items.filter((i) => i?.role === 'user').at(-1)?.content;
  return typeof user === 'string' ? user : Array.isArray(user) ? user.map((p) => (p as { text?: string }).text ?? '').join(' ') : '';
}

/** POST /v1/responses (the model was checked). */
export async function createResponse(s: ExtrasState, body: Json, model: string, index: number, res: ServerResponse, out: Buffer[]): Promise<void> {
  const previous = body.previous_response_id;
  if (typeof previous === 'string' && !s.responses.has(previous)) return notFound(res, previous);
  const said = lastUserText(body);
  const wanted = Number(/\bwords (\d+)/.exec(said)?.[1] ?? 8);
  const cap = typeof body.max_output_tokens === 'number' ? body.max_output_tokens : 8192;
  const n = Math.min(wanted, cap);
  const input = inputWords(body) + (typeof previous === 'string' ? 5 : 0);
  const id = typeof body.request_id === 'string' ? body.request_id : `resp_${index.toString(16).padStart(32, '0')}`;
  const msgId = `msg_${index.toString(16).padStart(32, '0')}`;
  const text = Array.from({ length: n }, (_, i) => `t${i} `).join('');
  const incomplete = n < wanted;
  const response = (status: string, output: unknown[], usage: Json | null): Json => ({
    id,
    created_at: s.created,
    incomplete_details: incomplete && status !== 'in_progress' ? { reason: 'max_output_tokens' } : null,
    instructions: body.instructions ?? null,
    metadata: body.metadata ?? null,
    model,
    object: 'response',
    output,
    parallel_tool_calls: true,
    temperature: body.temperature ?? 1.0,
    tool_choice: 'auto',
    tools: [],
    top_p: 1.0,
    background: false,
    max_output_tokens: cap,
    max_tool_calls: null,
    previous_response_id: previous ?? null,
    prompt: null,
    reasoning: null,
    service_tier: 'auto',
    status,
    text: null,
    top_logprobs: null,
    truncation: 'disabled',
    usage,
    user: null,
    input_messages: null,
    output_messages: null,
  });
  const part = (t: string): Json => ({ annotations: [], text: t, type: 'output_text', logprobs: null });
  const message = (status: string, content: unknown[]): Json => ({ id: msgId, content, role: 'assistant', status, type: 'message' });
  const final = response(incomplete ? 'incomplete' : 'completed', [message('completed', [part(text)])], usageOf(input, n));
  const keep = s.store && body.store !== false;
  if (body.background === true) {
    // vLLM refuses background mode without its store; with it, answers at once (queued, no usage yet) and generates
    // in the background: here the finished response is stored at once, GET /v1/responses/{id} returns it.
    if (!keep) return error(res, 400, 'invalid_request_error', 'This vLLM engine does not support `store=True` and therefore does not support the background mode.', 'background');
    s.responses.set(id, final);
    return json(res, 200, { ...response('queued', [], null), background: true }, out);
  }
  if (body.stream !== true) {
    if (keep) s.responses.set(id, final);
    return json(res, 200, final, out);
  }
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' });
  res.flushHeaders();
  let seq = 0;
  const send = (type: string, event: Json): void => {
    const b = Buffer.from(`event: ${type}\ndata: ${JSON.stringify({ ...event, sequence_number: seq++, type })}\n\n`);
    out.push(b);
    res.write(b);
  };
  const open = response('in_progress', [], null);
  send('response.created', { response: open });
  send('response.in_progress', { response: open });
  send('response.output_item.added', { item: message('in_progress', []), output_index: 0 });
  send('response.content_part.added', { content_index: 0, item_id: msgId, output_index: 0, part: part('') });
  const breakAt = Number(/\bbreak (\d+)/.exec(said)?.[1] ?? -1);
  for (let i = 0; i < n; i++) {
    if (i === breakAt) {
      res.socket?.destroy();
      return;
    }
    send('response.output_text.delta', { content_index: 0, delta: `t${i} `, item_id: msgId, logprobs: [], output_index: 0 });
    await sleep(s.delayMs);
  }
  send('response.output_text.done', { content_index: 0, item_id: msgId, logprobs: [], output_index: 0, text });
  send('response.content_part.done', { content_index: 0, item_id: msgId, output_index: 0, part: part(text) });
  send('response.output_item.done', { item: message('completed', [part(text)]), output_index: 0 });
  if (keep) s.responses.set(id, final);
  send(incomplete ? 'response.incomplete' : 'response.completed', { response: final });
  res.end();
}

/** The pairs a rerank or score request compares: [first, second] texts, one first for all or pair by pair. */
function pairs(body: Json): Array<[unknown, unknown]> | undefined {
  const spellings: Array<[string, string]> = [['query', 'documents'], ['queries', 'documents'], ['queries', 'items'], ['text_1', 'text_2'], ['data_1', 'data_2']];
  for (const [a, b] of spellings) {
    if (body[a] === undefined || body[b] === undefined) continue;
    const firsts = texts(body[a]);
    const seconds = texts(body[b]);
    return seconds.map((d, i) => [firsts.length === seconds.length ? firsts[i] : firsts[0], d]);
  }
  return undefined;
}

/** A relevance in [0, 1) a test can predict: shared words over the document's words. */
function relevance(q: unknown, d: unknown): number {
  const qs = new Set(String(q).split(/\s+/));
  const ds = String(d).split(/\s+/).filter(Boolean);
  return ds.length === 0 ? 0 : ds.filter((w) => qs.has(w)).length / (ds.length + 1);
}

/** POST /rerank, /v1/rerank, /v2/rerank, /score, /v1/score, /pooling, /classify: true when answered. */
export function pooling(s: ExtrasState, path: string, body: Json, model: string, index: number, res: ServerResponse, out: Buffer[]): boolean {
  const usage = (p: number): Json => ({ prompt_tokens: p, total_tokens: p, completion_tokens: 0, prompt_tokens_details: null });
  if (path === '/rerank' || path === '/v1/rerank' || path === '/v2/rerank' || path === '/score' || path === '/v1/score') {
    const pp = pairs(body);
    if (pp === undefined) {
      error(res, 400, 'BadRequestError', '1 validation error: documents: Field required');
      return true;
    }
    const tokens = pp.reduce((n, [q, d]) => n + words(q) + words(d), 0);
    if (path.endsWith('/score')) {
      json(res, 200, { id: `score-${index}`, object: 'list', created: s.created, model, data: pp.map(([q, d], i) => ({ index: i, object: 'score', score: relevance(q, d) })), usage: usage(tokens) }, out);
      return true;
    }
    const topN = typeof body.top_n === 'number' && body.top_n > 0 ? body.top_n : pp.length;
    const results = pp
      .map(([q, d], i) => ({ index: i, document: { text: d, multi_modal: null }, relevance_score: relevance(q, d) }))
      .sort((a, b) => b.relevance_score - a.relevance_score)
      .slice(0, topN);
    json(res, 200, { id: `rerank-${index}`, model, usage: { prompt_tokens: tokens, total_tokens: tokens }, results }, out);
    return true;
  }
  if (path === '/pooling' && body.task === 'plugin') {
    // An IOProcessor plugin's answer (IOProcessorResponse): whatever the plugin made, no usage.
    json(res, 200, { request_id: `pool-${index}`, created_at: s.created, data: { plugin: true } }, out);
    return true;
  }
  if (path === '/pooling' || path === '/classify') {
    const inputs = texts(body.input);
    const tokens = inputs.reduce<number>((n, t) => n + words(t), 0);
    if (path === '/pooling' && body.encoding_format === 'bytes') {
      // PoolingBytesResponse: the float32 values as the body, what describes them in a `metadata` header.
      const bytes = Buffer.from(new Float32Array(inputs.flatMap((_, i) => [0.25, -0.5, i / 4])).buffer);
      const items = inputs.map((_, i) => ({ index: i, object: 'pooling', shape: [3], start: i * 12, end: (i + 1) * 12 }));
      const metadata = JSON.stringify({ id: `pool-${index}`, created: s.created, model, data: items, usage: usage(tokens) });
      out.push(bytes);
      res.writeHead(200, { 'content-type': 'application/octet-stream', metadata }).end(bytes);
      return true;
    }
    const data =
      path === '/pooling'
        ? inputs.map((_, i) => ({ index: i, object: 'pooling', data: [0.25, -0.5, i / 4] }))
        : inputs.map((t, i) => ({ index: i, label: words(t) % 2 === 0 ? 'even' : 'odd', probs: words(t) % 2 === 0 ? [0.75, 0.25] : [0.25, 0.75], num_classes: 2 }));
    json(res, 200, { id: `${path === '/pooling' ? 'pool' : 'classify'}-${index}`, object: 'list', created: s.created, model, data, usage: usage(tokens) }, out);
    return true;
  }
  return false;
}
