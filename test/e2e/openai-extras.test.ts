/**
 * vLLM's other OpenAI-compatible endpoints through the gateway, against backends reproducing vLLM's wire format
 * (test/helpers/vllm-extras.ts), with the default policy, the test Redis (budgets, response ownership) and two
 * gateway replicas sharing it:
 * - the Responses API with the official `openai` client (client.responses.create, streamed and not; retrieve,
 *   cancel, delete): relayed byte for byte (but the model's name, as the client asked), nothing added to the
 *   request, usage read from the answer or the stream's last event, a broken stream charged what was streamed;
 * - rerank, score, pooling, classify (raw fetch, as their clients do): relayed byte for byte, usage read;
 * - usage counted into a token budget exactly; a request without max_output_tokens capped to its reservation;
 * - policy (a model not granted, max_output_tokens over the model's cap), unknown models, bad JSON: OpenAI errors;
 * - stored responses: only the identity that created a response reaches it (GET, cancel, DELETE,
 *   previous_response_id, vLLM's request_id), through either replica; anyone else gets 404 TG_RESPONSE_NOT_FOUND
 *   and the backend never sees the request.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Call } from '../../src/core/call.ts';
import { encodeValue } from '../../src/guards/limits/keys.ts';
import { eventually, recordCalls, type TestGateway } from '../helpers/gateway.ts';
import { AGENT, LLAMA, LLAMA_UPSTREAM, SUPPORT, modelsRoute, openaiBackend, openaiClient, recordingFetch, startModelsGateway, testPolicyGateway } from '../helpers/openai-gateway.ts';
import { startVllm, type VllmServer } from '../helpers/vllm-server.ts';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6390';
const PREFIX = `tgx${process.pid % 10000}${Date.now().toString(36)}:`;
/** A pooling model (reranker, classifier): routed by the `Qwen/*` pattern, no rewrite. */
const RERANKER = 'Qwen/Qwen2.5-7B-Instruct';
const TOKENS = `${AGENT}/tokens`;
const OTHER = `${AGENT}/other`;

const LIMITS = `---
apiVersion: tollgate.dev/v1alpha1
kind: Budget
metadata: { name: tokens }
spec: { match: { protocols: [openai], principals: ["${TOKENS}*"] }, key: [principal], window: day, tokens: 100000 }
`;

let llama: VllmServer;
let pool: VllmServer;
let gw: TestGateway;
let gw2: TestGateway;
let redis: Redis;
let finished: Call[] = [];

beforeAll(async () => {
  llama = await startVllm({ name: 'llama', models: [LLAMA_UPSTREAM], tokenDelayMs: 1, storeResponses: true });
  pool = await startVllm({ name: 'pool', models: [RERANKER] });
  redis = new Redis(REDIS_URL);
  const files = {
    'models.yaml':
      openaiBackend('vllm-llama', { url: llama.url }) +
      openaiBackend('vllm-pool', { url: pool.url }) +
      modelsRoute('models', ['vllm-llama', 'vllm-pool'], {
        models: [
          { name: LLAMA, aliases: ['llama'], backend: 'vllm-llama', model: LLAMA_UPSTREAM },
          { pattern: 'Qwen/*', backend: 'vllm-pool' },
        ],
      }),
    'limits.yaml': LIMITS,
  };
  const yaml = (): string =>
    testPolicyGateway(`  redis: { url: ${JSON.stringify(REDIS_URL)}, keyPrefix: ${JSON.stringify(PREFIX)}, commandTimeoutMs: 5000 }
  limits:
    reservation: { defaultOutputTokens: 40, maxTokens: 100000 }
`);
  gw = await startModelsGateway(files, yaml());
  gw2 = await startModelsGateway(files, yaml());
  await gw.services.store!.waitReady(5_000);
  await gw2.services.store!.waitReady(5_000);
  finished = recordCalls(gw);
});

afterAll(async () => {
  await gw?.stop();
  await gw2?.stop();
  await llama?.stop();
  await pool?.stop();
  const keys = await redis.keys(`${PREFIX}*`);
  if (keys.length > 0) await redis.del(...keys);
  await redis?.quit();
});

async function callAfter(since: number): Promise<Call> {
  await eventually(() => finished.length > since, 5_000, 'the gateway to finish the call');
  return finished[since]!;
}

function seenWith(server: VllmServer, marker: string) {
  const found = server.seen.find((s) => s.raw.includes(marker));
  if (found === undefined) throw new Error(`the backend saw no request with ${marker}`);
  return found;
}

/** The backend's bytes with its model's name replaced by the one the client asked for (`times` occurrences). */
function asAsked(text: string, asked: string, times: number): string {
  const was = `"model":${JSON.stringify(LLAMA_UPSTREAM)}`;
  expect(text.split(was).length - 1).toBe(times);
  return text.replaceAll(was, `"model":${JSON.stringify(asked)}`);
}

async function charged(principal: string): Promise<number> {
  const keys = await redis.keys(`${PREFIX}b:*:tokens:principal=${encodeValue(principal)}:*:t`);
  let n = 0;
  for (const k of keys) n += Number((await redis.get(k)) ?? 0);
  return n;
}

function post(g: TestGateway, path: string, body: string, principal = AGENT): Promise<Response> {
  return fetch(`${g.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${g.devToken(principal)}`, 'content-type': 'application/json' }, body });
}

describe('the Responses API', () => {
  it('answers as the backend did (the model as asked), nothing added to the request, usage read', async () => {
    const rec = recordingFetch();
    const marker = randomUUID();
    const since = finished.length;
    const r = await openaiClient(gw, { fetch: rec.fetch }).responses.create({ model: 'llama', input: `words 5 ${marker}`, instructions: 'Be terse.', max_output_tokens: 100 });
    expect(r.output_text).toBe('t0 t1 t2 t3 t4 ');
    expect(r.model).toBe('llama');
    expect(r.usage).toMatchObject({ input_tokens: 2 + 3, output_tokens: 5 });
    const seen = seenWith(llama, marker);
    expect(seen.path).toBe('/v1/responses');
    expect(seen.raw).toBe(JSON.stringify({ model: LLAMA_UPSTREAM, input: `words 5 ${marker}`, instructions: 'Be terse.', max_output_tokens: 100 }));
    expect((await rec.responses[0]!.done).toString()).toBe(asAsked(Buffer.concat(seen.written).toString(), 'llama', 1));
    const call = await callAfter(since);
    expect(call.operation).toBe('responses');
    expect(call.usage).toMatchObject({ inputTokens: 5, outputTokens: 5, reported: true });
    expect(call.model).toMatchObject({ operation: 'chat', requested: 'llama', response: LLAMA_UPSTREAM, finishReasons: ['completed'], metering: 'reported', responseId: r.id });
    expect(call.target).toEqual({ kind: 'model', name: LLAMA, server: 'vllm-llama', local: LLAMA_UPSTREAM });
  });

  it('relays a stream event by event, byte for byte, and reads usage from response.completed (no stream_options added)', async () => {
    const rec = recordingFetch();
    const marker = randomUUID();
    const since = finished.length;
    const stream = await openaiClient(gw, { fetch: rec.fetch }).responses.create({ model: LLAMA, input: [{ role: 'user', content: `words 4 ${marker}` }], stream: true });
    const types: string[] = [];
    let text = '';
    let completed: OpenAI.Responses.Response | undefined;
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === 'response.output_text.delta') text += event.delta;
      if (event.type === 'response.completed') completed = event.response;
    }
    expect(text).toBe('t0 t1 t2 t3 ');
    expect(types[0]).toBe('response.created');
    expect(types.at(-1)).toBe('response.completed');
    expect(completed?.model).toBe(LLAMA);
    const seen = seenWith(llama, marker);
    expect(seen.body.stream_options).toBeUndefined();
    expect(seen.raw).toBe(JSON.stringify({ model: LLAMA_UPSTREAM, input: [{ role: 'user', content: `words 4 ${marker}` }], stream: true }));
    // Three events carry the whole response (created, in_progress, completed): each names the model as asked.
    expect((await rec.responses[0]!.done).toString()).toBe(asAsked(Buffer.concat(seen.written).toString(), LLAMA, 3));
    const call = await callAfter(since);
    expect(call.usage).toMatchObject({ inputTokens: 3 + 3, outputTokens: 4, reported: true });
    expect(call.model).toMatchObject({ operation: 'chat', response: LLAMA_UPSTREAM, finishReasons: ['completed'], metering: 'reported' });
  });

  it('a stream that breaks: the client gets an error event, the call is charged what streamed', async () => {
    const rec = recordingFetch();
    const principal = `${TOKENS}/broken`;
    const since = finished.length;
    const stream = await openaiClient(gw, { fetch: rec.fetch, spiffeId: principal }).responses.create({ model: LLAMA, input: `words 10 break 3 ${randomUUID()}`, stream: true, max_output_tokens: 10 });
    const types: string[] = [];
    // The official client raises OpenAI's `error` event as an APIError, with the event's message.
    const thrown = await (async () => {
      for await (const event of stream) types.push(event.type);
    })().catch((e: unknown) => e);
    expect(thrown).toBeInstanceOf(OpenAI.APIError);
    expect((thrown as Error).message).toBe('Upstream vllm-llama is unavailable');
    expect(types.filter((t) => t === 'response.output_text.delta')).toHaveLength(3);
    const body = (await rec.responses[0]!.done).toString();
    expect(body.endsWith('\n\n')).toBe(true);
    expect(body.split('\n\n').at(-2)).toMatch(/^event: error\ndata: \{"type":"error","code":"TG_UPSTREAM_UNAVAILABLE","message":".*","param":null,"sequence_number":7\}$/);
    const call = await callAfter(since);
    expect(call.usage).toMatchObject({ outputTokens: 3 });
    expect(call.model).toMatchObject({ metering: 'counted' });
    // The prompt's estimate (bytes / 3 of input) plus the 3 tokens streamed.
    await eventually(async () => (await charged(principal)) > 0, 5_000, 'the settle');
    expect(await charged(principal)).toBe(call.usage!.outputTokens! + call.estimate!.inputTokens);
  });

  it('counts usage into a budget exactly, and caps a request without max_output_tokens to its reservation', async () => {
    const principal = `${TOKENS}/responses`;
    const client = openaiClient(gw, { spiffeId: principal });
    const marker = randomUUID();
    const a = await client.responses.create({ model: LLAMA, input: `words 60 ${marker}` });
    // defaultOutputTokens (40) was reserved: the backend was told so, and stopped there.
    expect(seenWith(llama, marker).body.max_output_tokens).toBe(40);
    expect(a.status).toBe('incomplete');
    expect(a.incomplete_details?.reason).toBe('max_output_tokens');
    const b = await client.responses.create({ model: LLAMA, input: `words 7 ${randomUUID()}`, stream: true });
    for await (const _ of b) {
      // to the end
    }
    await eventually(async () => (await charged(principal)) === 3 + 40 + (3 + 7), 5_000, 'the budget to settle to the reported usage');
  });
});

describe('rerank, score, pooling, classify', () => {
  const cases: Array<{ path: string; upstream: string; operation: string; body: Record<string, unknown>; tokens: number }> = [
    { path: '/v1/rerank', upstream: '/rerank', operation: 'rerank', body: { query: 'red fox', documents: ['a red fox', 'blue sky', 'the fox'], top_n: 2 }, tokens: 2 * 3 + 3 + 2 + 2 },
    { path: '/v1/score', upstream: '/score', operation: 'score', body: { text_1: 'red fox', text_2: ['a red fox', 'blue sky'] }, tokens: 2 * 2 + 3 + 2 },
    { path: '/v1/pooling', upstream: '/pooling', operation: 'pooling', body: { input: ['one two', 'three'] }, tokens: 3 },
    { path: '/v1/classify', upstream: '/classify', operation: 'classify', body: { input: ['one two', 'three'] }, tokens: 3 },
  ];
  for (const c of cases) {
    it(`${c.path}: to vLLM's ${c.upstream}, byte for byte both ways, usage counted into the budget`, async () => {
      const principal = `${TOKENS}/${c.operation}`;
      const marker = randomUUID();
      const sent = JSON.stringify({ model: RERANKER, ...c.body, user: marker });
      const since = finished.length;
      const res = await post(gw, c.path, sent, principal);
      expect(res.status).toBe(200);
      const text = await res.text();
      const seen = seenWith(pool, marker);
      expect(seen.path).toBe(c.upstream);
      expect(seen.raw).toBe(sent);
      expect(text).toBe(Buffer.concat(seen.written).toString());
      const call = await callAfter(since);
      expect(call.operation).toBe(c.operation);
      expect(call.usage).toMatchObject({ inputTokens: c.tokens, outputTokens: 0, reported: true });
      expect(call.model).toMatchObject({ operation: c.operation, response: RERANKER, metering: 'reported' });
      // Charged the reported tokens times the model's cost_multiplier (2 for this model in the test policy).
      await eventually(async () => (await charged(principal)) === c.tokens * 2, 5_000, 'the budget to settle to the reported usage');
    });
  }

  it('a pooling answer in bytes: relayed with its metadata header, whose usage is counted', async () => {
    const principal = `${TOKENS}/pooling-bytes`;
    const marker = randomUUID();
    const since = finished.length;
    const res = await post(gw, '/v1/pooling', JSON.stringify({ model: RERANKER, input: ['one two', 'three'], encoding_format: 'bytes', user: marker }), principal);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    const metadata = JSON.parse(res.headers.get('metadata') ?? '{}') as { usage?: { prompt_tokens: number } };
    expect(metadata.usage?.prompt_tokens).toBe(3);
    expect(Buffer.from(await res.arrayBuffer()).equals(Buffer.concat(seenWith(pool, marker).written))).toBe(true);
    const call = await callAfter(since);
    expect(call.usage).toMatchObject({ inputTokens: 3, outputTokens: 0, reported: true });
    expect(call.model).toMatchObject({ operation: 'pooling', metering: 'reported' });
    await eventually(async () => (await charged(principal)) === 3 * 2, 5_000, 'the budget to settle to the reported usage');
  });

  it('an answer without usage (a pooling plugin\'s) is charged its whole reservation and recorded unmetered', async () => {
    const principal = `${TOKENS}/plugin`;
    const since = finished.length;
    const res = await post(gw, '/v1/pooling', JSON.stringify({ model: RERANKER, data: { anything: 1 }, task: 'plugin' }), principal);
    expect(res.status).toBe(200);
    const call = await callAfter(since);
    expect(call.usage?.reported).toBeUndefined();
    expect(call.model).toMatchObject({ operation: 'pooling', metering: 'unmetered' });
    await eventually(async () => (await charged(principal)) === call.estimate!.inputTokens * 2, 5_000, 'the reservation to be charged');
  });

  it('a rerank answer is in vLLM\'s shape: results by relevance, top_n of them', async () => {
    const res = await post(gw, '/v1/rerank', JSON.stringify({ model: RERANKER, query: 'red fox', documents: ['blue sky', 'a red fox'], top_n: 1 }));
    const body = (await res.json()) as { results: Array<{ index: number; document: { text: string } }>; usage: { prompt_tokens: number } };
    expect(body.results).toEqual([{ index: 1, document: { text: 'a red fox', multi_modal: null }, relevance_score: 0.5 }]);
    expect(body.usage.prompt_tokens).toBe(2 * 2 + 2 + 3);
  });
});

describe('refusals in OpenAI\'s error shape', () => {
  it('a model the caller has no grant for is refused on these endpoints before the backend sees it', async () => {
    const marker = randomUUID();
    for (const path of ['/v1/rerank', '/v1/score', '/v1/pooling', '/v1/classify', '/v1/responses']) {
      const body = path === '/v1/responses' ? { model: RERANKER, input: 'hi', user: marker } : { model: RERANKER, query: 'q', documents: ['d'], text_1: 'a', text_2: 'b', input: 'x', user: marker };
      const res = await post(gw, path, JSON.stringify(body), SUPPORT);
      expect(res.status, path).toBe(403);
      expect(((await res.json()) as { error: { code: string; type: string } }).error).toMatchObject({ code: 'TG_POLICY_DENIED', type: 'permission_error' });
    }
    expect(pool.seen.some((s) => s.raw.includes(marker))).toBe(false);
    // The official client raises PermissionDeniedError; max_output_tokens over the model's cap is refused as max_tokens is.
    const client = openaiClient(gw, { spiffeId: SUPPORT });
    await expect(client.responses.create({ model: RERANKER, input: 'hi' })).rejects.toBeInstanceOf(OpenAI.PermissionDeniedError);
    const over = await client.responses.create({ model: LLAMA, input: 'hi', max_output_tokens: 5000 }).catch((e: unknown) => e);
    expect(over).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect((over as Error).message).toContain('max_output_tokens 5000 exceeds the cap of 4096');
  });

  it('an unknown model is 404 TG_MODEL_NOT_FOUND; bad JSON 400; a missing model 400', async () => {
    await expect(openaiClient(gw).responses.create({ model: 'mistral-7b-instruct', input: 'hi' })).rejects.toMatchObject({ status: 404, code: 'TG_MODEL_NOT_FOUND' });
    const unknown = await post(gw, '/v1/rerank', JSON.stringify({ model: 'Qwen/absent', query: 'q', documents: ['d'] }));
    // Routed by the pattern to the pool, which does not serve it: vLLM's own 404, passed on.
    expect(unknown.status).toBe(404);
    const nowhere = await post(gw, '/v1/score', JSON.stringify({ model: 'mistral-7b-instruct', text_1: 'a', text_2: 'b' }));
    expect(nowhere.status).toBe(404);
    expect(((await nowhere.json()) as { error: { code: string } }).error.code).toBe('TG_MODEL_NOT_FOUND');
    const bad = await post(gw, '/v1/classify', '{"model":');
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string; type: string } }).error).toMatchObject({ code: 'TG_PARSE_ERROR', type: 'invalid_request_error' });
    const none = await post(gw, '/v1/responses', '{"input":"hi"}');
    expect(none.status).toBe(400);
    expect(((await none.json()) as { error: { param: string } }).error.param).toBe('model');
  });
});

describe('stored responses belong to the identity that created them', () => {
  it('the creator retrieves (either replica); another identity gets 404 for GET, cancel, DELETE, previous_response_id, request_id', async () => {
    const owner = openaiClient(gw);
    const created = await owner.responses.create({ model: 'llama', input: `words 3 ${randomUUID()}`, store: true });
    expect(created.id).toMatch(/^resp_/);
    // The creator, through this replica and the other one (the binding is in Redis).
    expect((await owner.responses.retrieve(created.id)).output_text).toBe('t0 t1 t2 ');
    const ownerElsewhere = openaiClient(gw2);
    const again = await ownerElsewhere.responses.retrieve(created.id);
    expect(again.id).toBe(created.id);
    expect(again.model).toBe(LLAMA); // the route's name, not the backend's
    // The creator continues it.
    const next = await owner.responses.create({ model: LLAMA, input: 'words 1', previous_response_id: created.id });
    expect(next.previous_response_id).toBe(created.id);

    const seenBefore = llama.seen.length;
    for (const g of [gw, gw2]) {
      const thief = openaiClient(g, { spiffeId: OTHER });
      await expect(thief.responses.retrieve(created.id)).rejects.toMatchObject({ status: 404, code: 'TG_RESPONSE_NOT_FOUND' });
      await expect(thief.responses.cancel(created.id)).rejects.toMatchObject({ status: 404, code: 'TG_RESPONSE_NOT_FOUND' });
      await expect(thief.responses.delete(created.id)).rejects.toMatchObject({ status: 404, code: 'TG_RESPONSE_NOT_FOUND' });
      await expect(thief.responses.create({ model: LLAMA, input: 'words 1', previous_response_id: created.id })).rejects.toMatchObject({ status: 404, code: 'TG_RESPONSE_NOT_FOUND', param: 'previous_response_id' });
      // vLLM's request_id extra names the response: naming another caller's is refused (it would overwrite it).
      const taken = await post(g, '/v1/responses', JSON.stringify({ model: LLAMA, input: 'words 1', store: true, request_id: created.id }), OTHER);
      expect(taken.status).toBe(400);
      expect(((await taken.json()) as { error: { param: string } }).error.param).toBe('request_id');
      const raw = await fetch(`${g.url}/v1/responses/${created.id}?stream=true`, { headers: { authorization: `Bearer ${g.devToken(OTHER)}` } });
      expect(raw.status).toBe(404);
    }
    // None of that reached the backend.
    expect(llama.seen.length).toBe(seenBefore);
    // An id that would move the backend's path names no response.
    const dots = await fetch(`${gw.url}/v1/responses/%2E%2E`, { headers: { authorization: `Bearer ${gw.devToken(AGENT)}` } });
    expect(dots.status).toBe(404);
    expect(llama.seen.length).toBe(seenBefore);
    // An id nobody created: the same 404, for the would-be owner too.
    await expect(owner.responses.retrieve('resp_0000')).rejects.toMatchObject({ status: 404, code: 'TG_RESPONSE_NOT_FOUND' });
    // The creator's cancel reaches the backend (vLLM refuses to cancel a finished response: its 400, passed on).
    await expect(owner.responses.cancel(created.id)).rejects.toMatchObject({ status: 400 });
    expect(llama.seen.at(-1)?.path).toBe(`/v1/responses/${created.id}/cancel`);
  });

  it('a background response: bound to its creator, answered before any usage exists, so charged its reservation', async () => {
    const principal = `${TOKENS}/background`;
    const owner = openaiClient(gw, { spiffeId: principal });
    const since = finished.length;
    const queued = await owner.responses.create({ model: LLAMA, input: 'words 4', background: true, store: true, max_output_tokens: 30 });
    expect(queued.status).toBe('queued');
    const call = await callAfter(since);
    expect(call.model).toMatchObject({ metering: 'unmetered', finishReasons: ['queued'] });
    await eventually(async () => (await charged(principal)) === call.estimate!.inputTokens + 30, 5_000, 'the reservation to be charged');
    expect((await owner.responses.retrieve(queued.id)).output_text).toBe('t0 t1 t2 t3 ');
    await expect(openaiClient(gw2).responses.retrieve(queued.id)).rejects.toMatchObject({ status: 404 });
    // The retrieval generated nothing: not charged.
    expect(await charged(principal)).toBe(call.estimate!.inputTokens + 30);
  });

  it('a streamed response is bound too, and a caller-chosen request_id is claimed before the backend sees it', async () => {
    const owner = openaiClient(gw);
    const stream = await owner.responses.create({ model: LLAMA, input: `words 2 ${randomUUID()}`, stream: true, store: true });
    let id = '';
    for await (const event of stream) if (event.type === 'response.created') id = event.response.id;
    expect((await owner.responses.retrieve(id)).output_text).toBe('t0 t1 ');
    await expect(openaiClient(gw, { spiffeId: OTHER }).responses.retrieve(id)).rejects.toMatchObject({ status: 404 });
    const chosen = `resp_${randomUUID()}`;
    const res = await post(gw, '/v1/responses', JSON.stringify({ model: LLAMA, input: 'words 1', store: true, request_id: chosen }));
    expect(((await res.json()) as { id: string }).id).toBe(chosen);
    expect((await owner.responses.retrieve(chosen)).id).toBe(chosen);
    await expect(openaiClient(gw2, { spiffeId: OTHER }).responses.retrieve(chosen)).rejects.toMatchObject({ status: 404 });
  });
});
