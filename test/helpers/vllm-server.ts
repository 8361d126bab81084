/**
 * A test backend reproducing vLLM's OpenAI-compatible server on the wire (vllm/entrypoints/openai: serving_chat.py,
 * serving_completion.py, serving_embedding.py, api_server.py), with controlled timing:
 *
 * - `POST /v1/chat/completions`, `/v1/completions`: JSON, or SSE when `stream` is true: `data: {json}\n\n` events
 *   written one per chunk (pydantic `model_dump_json(exclude_unset=True)` field order), a first chat chunk with the
 *   role, one token per chunk, a final chunk with `finish_reason` and `stop_reason`, then (only with
 *   `stream_options.include_usage`) a chunk with empty `choices` and `usage`, then `data: [DONE]\n\n`.
 *   `content-type: text/event-stream; charset=utf-8`, chunked. With `n` > 1, each choice (its `index`) gets its own
 *   role chunk, then the choices' tokens interleave one chunk each, then each its final chunk; usage counts them all.
 * - vLLM's Responses API and pooling endpoints (rerank, score, pooling, classify): vllm-extras.ts.
 * - `POST /v1/embeddings` (floats, or base64 float32 with `encoding_format: "base64"`), `GET /v1/models` (with `max_model_len` and vLLM's `permission`), `GET /health` (200,
 *   empty), `POST /tokenize`, `POST /detokenize`; errors as vLLM's ErrorResponse
 *   `{"error":{"message","type","param","code"}}` (`code` the HTTP status).
 *
 * What it generates is driven by the last user message (or the prompt): `words N` (N tokens `t0 `, `t1 `, ...,
 * capped by max_tokens), `break K` (destroys the connection after K tokens), `stall K` (goes silent after K tokens),
 * `error K` (vLLM's own in-stream error after K tokens: an event `data: {"error":{...}}`, then `data: [DONE]`),
 * `hang` (never answers), `fail` (500). prompt_tokens: whitespace-separated words of every message plus 3 per
 * message (a chat template), the same count /tokenize gives.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { listenLoopback } from './net.ts';
import { createResponse, pooling, storedResponses, type ExtrasState } from './vllm-extras.ts';

export interface SeenModelRequest {
  readonly path: string;
  readonly headers: IncomingMessage['headers'];
  /** The body exactly as received. */
  readonly raw: string;
  readonly body: Record<string, unknown>;
  /** Resolves when the exchange ends: true when the connection closed before the answer was complete. */
  readonly ended: Promise<boolean>;
  /** The bytes of a completion or embeddings answer (streamed or whole), as written (for byte-for-byte comparisons). */
  readonly written: Buffer[];
}

export interface VllmServer {
  readonly url: string;
  readonly port: number;
  readonly name: string;
  readonly seen: SeenModelRequest[];
  /** Status GET /health answers. */
  health: number;
  probes: number;
  stop(): Promise<void>;
  start(): Promise<void>;
}

export interface VllmOptions {
  readonly name?: string;
  /** The served model names (served_model_name); the first is the default. */
  readonly models?: readonly string[];
  readonly maxModelLen?: number;
  /** Pause between streamed tokens. */
  readonly tokenDelayMs?: number;
  /** Pause before the first token (prefill). */
  readonly firstTokenDelayMs?: number;
  /** Keep Responses API responses by id (vLLM's VLLM_ENABLE_RESPONSES_API_STORE=1). */
  readonly storeResponses?: boolean;
}

type Message = { role?: string; content?: unknown };

function words(text: string): number {
  return text.split(/\s+/).filter(Boolean).length;
}

function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((p) => (typeof p === 'object' && p !== null && typeof (p as { text?: unknown }).text === 'string' ? (p as { text: string }).text : '')).join(' ');
  return '';
}

export function promptTokens(body: Record<string, unknown>): number {
  if (Array.isArray(body.messages)) return (body.messages as Message[]).reduce((n, m) => n + words(textOf(m.content)) + 3, 0);
  const p = body.prompt ?? body.input;
  if (typeof p === 'string') return words(p);
  if (Array.isArray(p)) return p.reduce<number>((n, x) => n + (typeof x === 'string' ? words(x) : typeof x === 'number' ? 1 : Array.isArray(x) ? x.length : 0), 0);
  return 0;
}

function directive(body: Record<string, unknown>): string {
  if (Array.isArray(body.messages)) {
    const users = (body.messages as Message[]).filter((m) => m.role === 'user');
    return textOf(users.at(-1)?.content);
  }
  return typeof body.prompt === 'string' ? body.prompt : '';
}

function number(text: string, word: string): number | undefined {
  const m = new RegExp(`\\b${word} (\\d+)`).exec(text);
  return m ? Number(m[1]) : undefined;
}

const sleep = (ms: number): Promise<void> => (ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve());

function errorResponse(res: ServerResponse, status: number, type: string, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(errorBody(status, type, message)));
}

/** vLLM's ErrorResponse (vllm/entrypoints/openai/engine/protocol.py), also what its streams send when they fail. */
export function errorBody(status: number, type: string, message: string): { error: { message: string; type: string; param: string | null; code: number } } {
  return { error: { message, type, param: null, code: status } };
}

export async function startVllm(opts: VllmOptions = {}): Promise<VllmServer> {
  const models = opts.models ?? ['meta-llama/Llama-3.1-8B-Instruct'];
  const maxModelLen = opts.maxModelLen ?? 8192;
  const seen: SeenModelRequest[] = [];
  const created = 1_767_225_600;
  let server: Server | undefined;
  let port = 0;
  let counter = 0;
  const extras: ExtrasState = { store: opts.storeResponses ?? false, responses: new Map(), created, delayMs: opts.tokenDelayMs ?? 0 };

  const handle = async (req: IncomingMessage, res: ServerResponse, raw: string, index: number, out: Buffer[]): Promise<void> => {
    const path = (req.url ?? '').split('?')[0]!;
    if (path === '/health' && req.method === 'GET') {
      vllm.probes++;
      res.writeHead(vllm.health).end();
      return;
    }
    if (path === '/v1/models' && req.method === 'GET') {
      const data = models.map((id) => ({
        id,
        object: 'model',
        created,
        owned_by: 'vllm',
        root: id,
        parent: null,
        max_model_len: maxModelLen,
        permission: [
          { id: `modelperm-${id.length}`, object: 'model_permission', created, allow_create_engine: false, allow_sampling: true, allow_logprobs: true, allow_search_indices: false, allow_view: true, allow_fine_tuning: false, organization: '*', group: null, is_blocking: false },
        ],
      }));
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ object: 'list', data }));
      return;
    }
    if (storedResponses(extras, req.method ?? 'GET', path, res)) return;
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(raw) as Record<string, unknown>;
    } catch {
      errorResponse(res, 400, 'BadRequestError', 'JSON decode error');
      return;
    }
    const model = typeof body.model === 'string' ? body.model : models[0]!;
    if (!models.includes(model)) {
      errorResponse(res, 404, 'NotFoundError', `The model \`${model}\` does not exist.`);
      return;
    }
    const prompt = promptTokens(body);
    if (path === '/tokenize') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ count: prompt, max_model_len: maxModelLen, tokens: Array.from({ length: prompt }, (_, i) => 1000 + i), token_strs: null }));
      return;
    }
    if (path === '/detokenize') {
      const tokens = Array.isArray(body.tokens) ? body.tokens : [];
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ prompt: tokens.map((t) => `w${String(t)}`).join(' ') }));
      return;
    }
    if (path === '/v1/responses') return createResponse(extras, body, model, index, res, out);
    if (pooling(extras, path, body, model, index, res, out)) return;
    if (path === '/v1/embeddings') {
      const inputs = Array.isArray(body.input) && typeof body.input[0] !== 'number' ? body.input : [body.input];
      // encoding_format "base64" (what the openai clients ask for by default): the float32 values, little-endian.
      const base64 = body.encoding_format === 'base64';
      const vector = (index: number): number[] | string => (base64 ? Buffer.from(new Float32Array([0.125, -0.5, index / 4]).buffer).toString('base64') : [0.125, -0.5, index / 4]);
      const data = inputs.map((_, index) => ({ index, object: 'embedding', embedding: vector(index) }));
      const answer = Buffer.from(JSON.stringify({ id: `embd-${index}`, object: 'list', created, model, data, usage: { prompt_tokens: prompt, total_tokens: prompt, completion_tokens: 0, prompt_tokens_details: null } }));
      out.push(answer);
      // Like vLLM's (Starlette's JSONResponse): a Content-Length, not chunked.
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': answer.length }).end(answer);
      return;
    }
    const chat = path === '/v1/chat/completions';
    if (!chat && path !== '/v1/completions') {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ detail: 'Not Found' }));
      return;
    }
    // vLLM's request validation of stream_options (StreamOptions model; validate_stream_options).
    const streamOptions = body.stream_options;
    if (streamOptions !== undefined && streamOptions !== null) {
      if (typeof streamOptions !== 'object' || Array.isArray(streamOptions)) {
        errorResponse(res, 400, 'Bad Request', '1 validation error: stream_options: Input should be a valid dictionary or object');
        return;
      }
      if (body.stream !== true) {
        errorResponse(res, 400, 'Bad Request', 'Stream options can only be defined when `stream=True`.');
        return;
      }
    }
    const said = directive(body);
    if (/\bhang\b/.test(said)) return; // never answers: the gateway's first-byte timeout must fire
    if (/\bfail\b/.test(said)) {
      errorResponse(res, 500, 'InternalServerError', 'the engine failed');
      return;
    }
    const wanted = number(said, 'words') ?? 8;
    const maxTokens = typeof body.max_tokens === 'number' ? body.max_tokens : typeof body.max_completion_tokens === 'number' ? body.max_completion_tokens : chat ? maxModelLen - prompt : 16;
    const n = Math.min(wanted, maxTokens);
    const finish = n < wanted ? 'length' : 'stop';
    const id = chat ? `chatcmpl-${index}` : `cmpl-${index}`;
    const object = chat ? 'chat.completion.chunk' : 'text_completion';
    const choices = typeof body.n === 'number' && body.n > 1 ? body.n : 1;
    const indexes = Array.from({ length: choices }, (_, c) => c);
    const usage = { prompt_tokens: prompt, total_tokens: prompt + n * choices, completion_tokens: n * choices };
    if (body.stream !== true) {
      await sleep(opts.firstTokenDelayMs ?? 0);
      const text = Array.from({ length: n }, (_, i) => `t${i} `).join('');
      const choiceOf = (index: number): unknown =>
        chat
          ? { index, message: { role: 'assistant', reasoning_content: null, content: text, tool_calls: [] }, logprobs: null, finish_reason: finish, stop_reason: null }
          : { index, text, logprobs: null, finish_reason: finish, stop_reason: null, prompt_logprobs: null };
      const answer = { id, object: chat ? 'chat.completion' : 'text_completion', created, model, choices: indexes.map(choiceOf), usage: { ...usage, prompt_tokens_details: null }, prompt_logprobs: null };
      const bytes = Buffer.from(JSON.stringify(answer));
      out.push(bytes);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': bytes.length }).end(bytes);
      return;
    }
    const send = (data: string): void => {
      const b = Buffer.from(`data: ${data}\n\n`);
      out.push(b);
      res.write(b);
    };
    const chunk = (choices: unknown[]): string => JSON.stringify({ id, object, created, model, choices });
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' });
    res.flushHeaders();
    await sleep(opts.firstTokenDelayMs ?? 0);
    if (chat) for (const c of indexes) send(chunk([{ index: c, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]));
    const breakAt = number(said, 'break');
    const stallAt = number(said, 'stall');
    const errorAt = number(said, 'error');
    const done = Buffer.from('data: [DONE]\n\n');
    for (let i = 0; i < n; i++) {
      if (res.destroyed) return;
      if (breakAt === i) {
        res.socket?.destroy();
        return;
      }
      if (stallAt === i) return;
      if (errorAt === i) {
        // What vLLM's stream generators do when generation fails after the 200 went out.
        send(JSON.stringify(errorBody(500, 'InternalServerError', 'the engine failed mid-stream')));
        out.push(done);
        res.end(done);
        return;
      }
      for (const c of indexes) send(chunk([chat ? { index: c, delta: { content: `t${i} ` }, logprobs: null, finish_reason: null } : { index: c, text: `t${i} `, logprobs: null, finish_reason: null }]));
      await sleep(opts.tokenDelayMs ?? 0);
    }
    for (const c of indexes) send(chunk([chat ? { index: c, delta: { content: '' }, logprobs: null, finish_reason: finish, stop_reason: null } : { index: c, text: '', logprobs: null, finish_reason: finish, stop_reason: null }]));
    const options = body.stream_options as { include_usage?: boolean } | undefined;
    if (options?.include_usage === true) send(JSON.stringify({ id, object, created, model, choices: [], usage }));
    out.push(done);
    res.end(done);
  };

  const vllm: VllmServer = {
    name: opts.name ?? 'vllm',
    url: '',
    port: 0,
    seen,
    health: 200,
    probes: 0,
    async stop(): Promise<void> {
      const s = server;
      if (s === undefined) return;
      server = undefined;
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    },
    async start(): Promise<void> {
      const s = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          const raw = Buffer.concat(chunks).toString('utf8');
          const path = (req.url ?? '').split('?')[0]!;
          const index = counter++;
          const out: Buffer[] = [];
          if (path !== '/health') {
            let resolveEnded!: (aborted: boolean) => void;
            const ended = new Promise<boolean>((r) => (resolveEnded = r));
            res.once('close', () => resolveEnded(!res.writableFinished));
            let body: Record<string, unknown> = {};
            try {
              body = raw === '' ? {} : (JSON.parse(raw) as Record<string, unknown>);
            } catch {
              // recorded as received; answered with a 400 below
            }
            seen.push({ path, headers: req.headers, raw, body, ended, written: out });
          }
          handle(req, res, raw, index, out).catch(() => res.destroy());
        });
      });
      port = await listenLoopback(s, port);
      server = s;
      (vllm as { port: number }).port = port;
      (vllm as { url: string }).url = `http://127.0.0.1:${port}`;
    },
  };
  await vllm.start();
  return vllm;
}
