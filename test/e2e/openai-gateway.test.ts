/**
 * The OpenAI-compatible adapter through a real gateway, driven by the official `openai` npm client, against backends
 * that reproduce vLLM's wire format (test/helpers/vllm-server.ts), under the default policy (policies/):
 * - streamed chat relayed byte for byte; include_usage added for the gateway's accounting and its chunk dropped when
 *   the client did not ask; every byte (usage chunk included) when it did; usage on the call either way;
 * - non-streamed chat, completions and embeddings as the backend sent them, usage read; tokenize and detokenize;
 * - routing by exact name, alias and pattern, the route's rewrite of the model name, everything else of the body
 *   (vLLM's extra sampling parameters, guided_* fields, big integers, escapes) byte for byte;
 * - the answers of a rewritten model (JSON `model`, every streamed chunk's `model`) name it as the client asked;
 *   telemetry and audit keep the backend's name as the response model;
 * - /v1/models merged from the pools and filtered by policy, /v1/models/{id};
 * - every bad input answered with an OpenAI error object and the right status.
 */
import { randomUUID } from 'node:crypto';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Call } from '../../src/core/call.ts';
import { eventually, recordCalls, type TestGateway } from '../helpers/gateway.ts';
import { AGENT, LLAMA, LLAMA_UPSTREAM, SUPPORT, modelsRoute, openaiBackend, openaiClient, recordingFetch, startModelsGateway } from '../helpers/openai-gateway.ts';
import { startVllm, type VllmServer } from '../helpers/vllm-server.ts';

const QWEN = 'qwen2.5-32b-instruct';

let llama: VllmServer;
let qwen: VllmServer;
let gw: TestGateway;
let finished: Call[] = [];

beforeAll(async () => {
  llama = await startVllm({ name: 'llama', models: [LLAMA_UPSTREAM], tokenDelayMs: 2 });
  qwen = await startVllm({ name: 'qwen', models: [QWEN, 'Qwen/Qwen2.5-7B-Instruct'] });
  gw = await startModelsGateway(
    {
      'models.yaml':
        openaiBackend('vllm-llama', { url: llama.url, timeouts: { headersMs: 1500, bodyIdleMs: 1500 } }) +
        openaiBackend('vllm-qwen', { url: qwen.url }) +
        modelsRoute('models', ['vllm-llama', 'vllm-qwen'], {
          models: [
            { name: LLAMA, aliases: ['llama'], backend: 'vllm-llama', model: LLAMA_UPSTREAM },
            { name: QWEN, backend: 'vllm-qwen' },
            { pattern: 'Qwen/*', backend: 'vllm-qwen' },
          ],
          openai: { maxPromptBytes: 4096 },
        }),
    },
  );
  finished = recordCalls(gw);
});

afterAll(async () => {
  await gw?.stop();
  await llama?.stop();
  await qwen?.stop();
});

/** The first call the gateway finished after `since` calls (tests here make one request at a time). */
async function callAfter(since: number): Promise<Call> {
  await eventually(() => finished.length > since, 5_000, 'the gateway to finish the call');
  return finished[since]!;
}

function ask(text: string): OpenAI.Chat.ChatCompletionMessageParam[] {
  return [
    { role: 'system', content: 'You are terse.' },
    { role: 'user', content: text },
  ];
}

describe('streamed chat completions', () => {
  it('relays the stream byte for byte, asks for usage itself and drops the usage chunk the client did not ask for', async () => {
    const rec = recordingFetch();
    const client = openaiClient(gw, { fetch: rec.fetch });
    const marker = randomUUID();
    const since = finished.length;
    const stream = await client.chat.completions.create({ model: LLAMA, messages: ask(`words 6 ${marker}`), stream: true });
    const deltas: string[] = [];
    const models = new Set<string>();
    for await (const chunk of stream) {
      deltas.push(chunk.choices[0]?.delta.content ?? '');
      models.add(chunk.model);
    }
    expect(deltas.join('')).toBe('t0 t1 t2 t3 t4 t5 ');
    // The route sends LLAMA_UPSTREAM to the backend; every chunk the client reads names the model it asked for.
    expect([...models]).toEqual([LLAMA]);
    expect(seenWith(llama, marker).body.stream_options).toEqual({ include_usage: true });
    const backendBytes = Buffer.concat(streamOf(llama, marker));
    const usageChunk = backendBytes.toString().split('\n\n').find((e) => e.includes('"choices":[]'))!;
    expect(usageChunk).toContain('"usage":{"prompt_tokens":');
    const received = await rec.responses[0]!.done;
    // Exactly the backend's bytes, minus that one event, with the model named as the client asked.
    expect(received.toString()).toBe(asAsked(backendBytes.toString().replace(`${usageChunk}\n\n`, ''), LLAMA, 8));
    const call = await callAfter(since);
    expect(call.usage).toMatchObject({ inputTokens: 3 + 3 + 3 + 3, outputTokens: 6, reported: true });
    expect(call.model).toMatchObject({ operation: 'chat', response: LLAMA_UPSTREAM, finishReasons: ['stop'], metering: 'reported' });
    expect(call.target).toEqual({ kind: 'model', name: LLAMA, server: 'vllm-llama', local: LLAMA_UPSTREAM });
  });

  it('gives every byte, the usage chunk included, to a client that asked for usage', async () => {
    const rec = recordingFetch();
    const client = openaiClient(gw, { fetch: rec.fetch });
    const marker = randomUUID();
    const since = finished.length;
    const stream = await client.chat.completions.create({ model: 'llama', messages: ask(`words 4 ${marker}`), stream: true, stream_options: { include_usage: true } });
    let usage: OpenAI.CompletionUsage | null | undefined;
    const models = new Set<string>();
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      models.add(chunk.model);
    }
    expect(usage).toEqual({ prompt_tokens: 12, total_tokens: 16, completion_tokens: 4 });
    // An alias: the client asked for `llama` and reads `llama` back, in every chunk (the usage chunk too).
    expect([...models]).toEqual(['llama']);
    expect((await rec.responses[0]!.done).toString()).toBe(asAsked(Buffer.concat(streamOf(llama, marker)).toString(), 'llama', 7));
    // The alias resolved to the model's name: policies, budgets and telemetry see one name.
    const call = await callAfter(since);
    expect(call.target?.name).toBe(LLAMA);
    expect(call.model).toMatchObject({ requested: 'llama', response: LLAMA_UPSTREAM });
  });

  it('n > 1: every choice reaches the client, the usage chunk it did not ask for is dropped, output counted over all choices', async () => {
    const rec = recordingFetch();
    const client = openaiClient(gw, { fetch: rec.fetch });
    const marker = randomUUID();
    const since = finished.length;
    const stream = await client.chat.completions.create({ model: LLAMA, messages: ask(`words 3 ${marker}`), n: 2, max_tokens: 10, stream: true });
    const texts = ['', ''];
    for await (const chunk of stream) for (const c of chunk.choices) texts[c.index] += c.delta.content ?? '';
    expect(texts).toEqual(['t0 t1 t2 ', 't0 t1 t2 ']);
    const backendBytes = Buffer.concat(streamOf(llama, marker)).toString();
    const usageChunk = backendBytes.split('\n\n').find((e) => e.includes('"choices":[]'))!;
    expect(usageChunk).toContain('"completion_tokens":6');
    // Two role chunks, three tokens for each choice, two final chunks: ten events naming the model.
    expect((await rec.responses[0]!.done).toString()).toBe(asAsked(backendBytes.replace(`${usageChunk}\n\n`, ''), LLAMA, 10));
    const call = await callAfter(since);
    // Reserved for both sequences; charged what the backend reported for both.
    expect(call.estimate?.maxOutputTokens).toBe(20);
    expect(call.usage).toMatchObject({ outputTokens: 6, reported: true });
    expect(call.model?.finishReasons).toEqual(['stop', 'stop']);
  });

  it('vLLM\'s own error event mid-stream reaches the client as vLLM wrote it, then [DONE]; an upstream error, charged what streamed', async () => {
    const rec = recordingFetch();
    const client = openaiClient(gw, { fetch: rec.fetch });
    const marker = randomUUID();
    const since = finished.length;
    const stream = await client.chat.completions.create({ model: LLAMA, messages: ask(`words 10 error 3 ${marker}`), stream: true });
    const got: string[] = [];
    const err = await (async () => {
      for await (const chunk of stream) got.push(chunk.choices[0]?.delta.content ?? '');
    })().catch((e: unknown) => e);
    expect(got.join('')).toBe('t0 t1 t2 ');
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect((err as Error).message).toContain('the engine failed mid-stream');
    const backendBytes = Buffer.concat(streamOf(llama, marker)).toString();
    expect(backendBytes.endsWith('"code":500}}\n\ndata: [DONE]\n\n')).toBe(true);
    // The role chunk and three tokens name the model; the error event is vLLM's bytes as they are.
    expect((await rec.responses[0]!.done).toString()).toBe(asAsked(backendBytes, LLAMA, 4));
    const call = await callAfter(since);
    expect(call.outcome).toBe('upstream_error');
    expect(call.usage).toEqual({ outputTokens: 3 });
  });

  it('streams text completions the same way', async () => {
    const client = openaiClient(gw);
    const marker = randomUUID();
    const since = finished.length;
    const stream = await client.completions.create({ model: LLAMA, prompt: `words 3 ${marker}`, max_tokens: 10, stream: true });
    const texts: string[] = [];
    for await (const chunk of stream) texts.push(chunk.choices[0]?.text ?? '');
    expect(texts.join('')).toBe('t0 t1 t2 ');
    expect((await callAfter(since)).usage).toMatchObject({ outputTokens: 3, reported: true });
  });
});

describe('whole answers', () => {
  it('chat, completions and embeddings come back as the backend sent them, with usage read', async () => {
    const rec = recordingFetch();
    const client = openaiClient(gw, { fetch: rec.fetch });
    let since = finished.length;
    const chat = await client.chat.completions.create({ model: LLAMA, messages: ask('words 5'), max_tokens: 50 });
    expect(chat.choices[0]!.message.content).toBe('t0 t1 t2 t3 t4 ');
    expect(chat.usage).toMatchObject({ prompt_tokens: 11, completion_tokens: 5 });
    expect(chat.model).toBe(LLAMA);
    expect(JSON.parse((await rec.responses[0]!.done).toString())).toEqual(chat);
    const chatCall = await callAfter(since);
    expect(chatCall.usage).toEqual({ inputTokens: 11, outputTokens: 5, reported: true });
    expect(chatCall.model?.response).toBe(LLAMA_UPSTREAM);
    since = finished.length;
    const text = await client.completions.create({ model: 'Qwen/Qwen2.5-7B-Instruct', prompt: 'words 2' });
    expect(text.choices[0]!.text).toBe('t0 t1 ');
    expect((await callAfter(since)).target).toEqual({ kind: 'model', name: 'Qwen/Qwen2.5-7B-Instruct', server: 'vllm-qwen', local: 'Qwen/Qwen2.5-7B-Instruct' });
    since = finished.length;
    const emb = await client.embeddings.create({ model: QWEN, input: ['one two', 'three'] });
    expect(emb.data.map((d) => d.embedding)).toEqual([
      [0.125, -0.5, 0],
      [0.125, -0.5, 0.25],
    ]);
    expect((await callAfter(since)).usage).toEqual({ inputTokens: 3, outputTokens: 0, reported: true });
    expect(emb.model).toBe(QWEN);
    // The client asked for base64 (the openai client's default): vLLM's base64 float32 vectors, usage read the same.
    expect(qwen.seen.at(-1)!.body.encoding_format).toBe('base64');
    expect(typeof (JSON.parse(Buffer.concat(qwen.seen.at(-1)!.written).toString()) as { data: { embedding: unknown }[] }).data[0]!.embedding).toBe('string');
    since = finished.length;
    const floats = await client.embeddings.create({ model: QWEN, input: 'one two', encoding_format: 'float' });
    expect(floats.data[0]!.embedding).toEqual([0.125, -0.5, 0]);
    expect((await callAfter(since)).usage).toEqual({ inputTokens: 2, outputTokens: 0, reported: true });
  });

  it('a rewritten model\'s whole answer names it as the client asked: only that member changes, Content-Length follows', async () => {
    const headers = { authorization: `Bearer ${gw.devToken(AGENT)}`, 'content-type': 'application/json' };
    const marker = randomUUID();
    for (const [path, body] of [
      ['/v1/chat/completions', { model: 'llama', messages: ask(`words 3 ${marker}-chat`) }],
      ['/v1/completions', { model: LLAMA, prompt: `words 2 ${marker}-text` }],
      ['/v1/embeddings', { model: 'llama', input: [`one two ${marker}-emb`] }],
    ] as const) {
      const res = await fetch(`${gw.url}${path}`, { method: 'POST', headers, body: JSON.stringify(body) });
      expect(res.status, path).toBe(200);
      const text = await res.text();
      // The backend sent a Content-Length (vLLM does): it follows the name's change of length.
      expect(res.headers.get('content-length'), path).toBe(String(Buffer.byteLength(text)));
      const backend = Buffer.concat(seenWith(llama, `${marker}-${path === '/v1/chat/completions' ? 'chat' : path === '/v1/completions' ? 'text' : 'emb'}`).written).toString();
      expect(text, path).toBe(asAsked(backend, body.model, 1));
    }
    // Through the official client (usage read from the backend's answer, the name the client asked for).
    const since = finished.length;
    const emb = await openaiClient(gw).embeddings.create({ model: 'llama', input: ['one two', 'three'] });
    expect(emb.model).toBe('llama');
    expect((await callAfter(since)).model).toMatchObject({ requested: 'llama', response: LLAMA_UPSTREAM, metering: 'reported' });
  });

  it('rewrites only the model name: vLLM extras, guided_* fields, big integers and escapes reach the backend byte for byte', async () => {
    const marker = randomUUID();
    const sent = `{"model":"llama","messages":[{"role":"user","content":"caf\u00e9 \\u00e9 ${marker} words 1"}],"top_k":40,"repetition_penalty":1.10,"seed":12345678901234567890,"guided_json":{"type":"object","properties":{"a":{"type":"integer"}}},"guided_decoding_backend":"xgrammar","skip_special_tokens":false}`;
    const res = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${gw.devToken(AGENT)}`, 'content-type': 'application/json' }, body: sent });
    expect(res.status).toBe(200);
    await res.text();
    expect(seenWith(llama, marker).raw).toBe(sent.replace('"model":"llama"', `"model":${JSON.stringify(LLAMA_UPSTREAM)}`));
  });

  it('stream_options the backend refuses reach it as sent (the gateway adds include_usage only to an object or nothing)', async () => {
    const headers = { authorization: `Bearer ${gw.devToken(AGENT)}`, 'content-type': 'application/json' };
    for (const options of ['"yes"', '[]', 'true']) {
      const marker = randomUUID();
      const sent = `{"model":"${LLAMA}","messages":[{"role":"user","content":"words 1 ${marker}"}],"stream":true,"stream_options":${options}}`;
      const res = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers, body: sent });
      expect(res.status, options).toBe(400);
      expect(((await res.json()) as { error: { message: string } }).error.message, options).toContain('stream_options');
      expect(seenWith(llama, marker).raw, options).toBe(sent.replace(`"model":"${LLAMA}"`, `"model":${JSON.stringify(LLAMA_UPSTREAM)}`));
    }
    // Without stream, stream_options is the backend's to refuse as well: nothing is added.
    const marker = randomUUID();
    const res = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers, body: JSON.stringify({ model: LLAMA, messages: ask(`words 1 ${marker}`), stream_options: { include_usage: true } }) });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { message: string } }).error.message).toBe('Stream options can only be defined when `stream=True`.');
  });

  it('tokenize and detokenize reach the backend root, granted like the model', async () => {
    const headers = { authorization: `Bearer ${gw.devToken(AGENT)}`, 'content-type': 'application/json' };
    const tok = await fetch(`${gw.url}/v1/tokenize`, { method: 'POST', headers, body: JSON.stringify({ model: LLAMA, prompt: 'one two three' }) });
    expect(await tok.json()).toEqual({ count: 3, max_model_len: 8192, tokens: [1000, 1001, 1002], token_strs: null });
    const detok = await fetch(`${gw.url}/v1/detokenize`, { method: 'POST', headers, body: JSON.stringify({ model: LLAMA, tokens: [7, 8] }) });
    expect(await detok.json()).toEqual({ prompt: 'w7 w8' });
    expect(llama.seen.filter((r) => r.path === '/tokenize' || r.path === '/detokenize').map((r) => r.body.model)).toEqual([LLAMA_UPSTREAM, LLAMA_UPSTREAM]);
    const denied = await fetch(`${gw.url}/v1/tokenize`, { method: 'POST', headers: { ...headers, authorization: `Bearer ${gw.devToken(SUPPORT)}` }, body: JSON.stringify({ model: QWEN, prompt: 'x' }) });
    expect(denied.status).toBe(403);
  });
});

describe('/v1/models', () => {
  it('merges the pools under the names callers use, with each backend\'s fields, filtered by policy', async () => {
    const dev = await openaiClient(gw).models.list();
    const ids = dev.data.map((m) => m.id);
    // Aliases are not listed; the 7B model is on the test allow-list, reached through the Qwen/* pattern.
    expect(ids).toEqual([LLAMA, QWEN, 'Qwen/Qwen2.5-7B-Instruct']);
    expect(dev.data[0]).toMatchObject({ id: LLAMA, object: 'model', owned_by: 'vllm', root: LLAMA_UPSTREAM, max_model_len: 8192 });
    const support = await openaiClient(gw, { spiffeId: SUPPORT }).models.list();
    expect(support.data.map((m) => m.id)).toEqual([LLAMA]);
    expect(await openaiClient(gw).models.retrieve(QWEN)).toMatchObject({ id: QWEN, max_model_len: 8192 });
    await expect(openaiClient(gw, { spiffeId: SUPPORT }).models.retrieve(QWEN)).rejects.toBeInstanceOf(OpenAI.PermissionDeniedError);
  });
});

describe('routes without a model list, and the tokenize estimate', () => {
  it('serve the models the backends advertise (from their /v1/models), unknown names 404', async () => {
    gw.write('advertised.yaml', modelsRoute('advertised', ['vllm-qwen'], {}, '/adv/v1'));
    await eventually(() => gw.gateway.state().snapshot.routeSpecs.has('advertised'), 5_000, 'the route');
    const client = openaiClient(gw, { path: '/adv/v1' });
    // Both of the backend's models are on the test allow-list.
    expect((await client.models.list()).data.map((m) => m.id)).toEqual([QWEN, 'Qwen/Qwen2.5-7B-Instruct']);
    const answer = await client.chat.completions.create({ model: 'Qwen/Qwen2.5-7B-Instruct', messages: ask('words 2') });
    expect(answer.choices[0]!.message.content).toBe('t0 t1 ');
    const missing = await client.chat.completions.create({ model: 'mistral-7b-instruct', messages: ask('words 1') }).catch((e: unknown) => e);
    expect((missing as InstanceType<typeof OpenAI.APIError>).code).toBe('TG_MODEL_NOT_FOUND');
  });

  it('estimate: tokenize reserves what the backend\'s /tokenize counts', async () => {
    gw.write('tokenize.yaml', modelsRoute('tokenized', ['vllm-llama'], { models: [{ name: LLAMA, backend: 'vllm-llama', model: LLAMA_UPSTREAM }], openai: { promptTokens: { estimate: 'tokenize' } } }, '/tok/v1'));
    await eventually(() => gw.gateway.state().snapshot.routeSpecs.has('tokenized'), 5_000, 'the route');
    const since = finished.length;
    const tokenizeCalls = llama.seen.filter((r) => r.path === '/tokenize').length;
    await openaiClient(gw, { path: '/tok/v1' }).chat.completions.create({ model: LLAMA, messages: ask('words 2 and some more words') });
    const call = await callAfter(since);
    // system 3 words + 3, user 6 words + 3: exactly the count /tokenize gave (the bytes estimate is larger).
    expect(call.estimate?.inputTokens).toBe(15);
    expect(call.usage?.inputTokens).toBe(15);
    expect(llama.seen.filter((r) => r.path === '/tokenize').length).toBe(tokenizeCalls + 1);
  });
});

describe('bad input and failing backends get OpenAI error objects', () => {
  const post = (path: string, body: string, token = gw.devToken(AGENT)): Promise<Response> =>
    fetch(`${gw.url}/v1${path}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body });

  it('malformed JSON, no model, an unknown path or method: 400 / 404 / 405 in OpenAI\'s shape', async () => {
    const bad = await post('/chat/completions', '{"model": "llama",');
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: { type: 'invalid_request_error', code: 'TG_PARSE_ERROR', param: null } });
    const none = await post('/chat/completions', '{"messages":[]}');
    expect(await none.json()).toEqual({ error: { message: 'you must provide a model parameter', type: 'invalid_request_error', param: 'model', code: 'TG_INVALID_REQUEST' } });
    const nowhere = await post('/fine_tuning/jobs', '{}');
    expect(nowhere.status).toBe(404);
    expect(await nowhere.json()).toMatchObject({ error: { type: 'not_found_error', code: 'TG_NOT_FOUND' } });
    // A trailing slash names no endpoint: not the list, nor a model named '' for the policy to judge.
    for (const path of ['/v1/models/', '/v1/chat/completions/']) {
      const slash = await fetch(`${gw.url}${path}`, { headers: { authorization: `Bearer ${gw.devToken(AGENT)}` } });
      expect(slash.status, path).toBe(404);
      expect(await slash.json(), path).toMatchObject({ error: { type: 'not_found_error', code: 'TG_NOT_FOUND' } });
    }
    const get = await fetch(`${gw.url}/v1/chat/completions`, { headers: { authorization: `Bearer ${gw.devToken(AGENT)}` } });
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
  });

  it('a body not labelled JSON: 415 in OpenAI\'s shape, never forwarded (vLLM refuses it as well); JSON with parameters passes', async () => {
    const body = JSON.stringify({ model: LLAMA, messages: ask('words 1') });
    const before = llama.seen.length;
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', undefined]) {
      const headers: Record<string, string> = { authorization: `Bearer ${gw.devToken(AGENT)}` };
      if (type !== undefined) headers['content-type'] = type;
      // fetch labels a string body text/plain itself: a Blob without a type sends no Content-Type at all.
      const res = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers, body: type === undefined ? new Blob([body]) : body });
      expect(res.status, String(type)).toBe(415);
      expect(await res.json(), String(type)).toMatchObject({ error: { type: 'invalid_request_error', param: null, code: 'TG_UNSUPPORTED_MEDIA_TYPE' } });
    }
    expect(llama.seen.length).toBe(before);
    for (const type of ['application/json; charset=utf-8', 'Application/JSON']) {
      const res = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${gw.devToken(AGENT)}`, 'content-type': type }, body });
      expect(res.status, type).toBe(200);
      await res.text();
    }
    // Authentication still comes first: an anonymous caller learns nothing about the body it sent.
    const anon = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body });
    expect(anon.status).toBe(401);
  });

  it('HEAD on the model listings answers as GET would, without a body; 405s name GET and HEAD', async () => {
    const headers = { authorization: `Bearer ${gw.devToken(AGENT)}` };
    for (const path of ['/v1/models', `/v1/models/${LLAMA}`]) {
      const get = await fetch(`${gw.url}${path}`, { headers });
      const text = await get.text();
      const head = await fetch(`${gw.url}${path}`, { method: 'HEAD', headers });
      expect(head.status, path).toBe(200);
      expect(head.headers.get('content-type'), path).toBe('application/json');
      expect(head.headers.get('content-length'), path).toBe(String(Buffer.byteLength(text)));
      expect(await head.text(), path).toBe('');
    }
    const post = await fetch(`${gw.url}/v1/models`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: '{}' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    // A completion has no HEAD: it is a POST alone.
    const head = await fetch(`${gw.url}/v1/chat/completions`, { method: 'HEAD', headers });
    expect(head.status).toBe(405);
    expect(head.headers.get('allow')).toBe('POST');
  });

  it('unauthenticated and denied callers get 401 and 403 before the backend sees anything', async () => {
    const before = llama.seen.length + qwen.seen.length;
    const anon = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'not-a-token', maxRetries: 0 });
    await expect(anon.chat.completions.create({ model: LLAMA, messages: ask('words 1') })).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    const support = openaiClient(gw, { spiffeId: SUPPORT });
    const err = await support.chat.completions.create({ model: QWEN, messages: ask('words 1') }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect((err as InstanceType<typeof OpenAI.APIError>).code).toBe('TG_POLICY_DENIED');
    const capped = await support.chat.completions.create({ model: LLAMA, messages: ask('words 1'), max_tokens: 100_000 }).catch((e: unknown) => e);
    expect((capped as Error).message).toContain('max_tokens 100000 exceeds the cap of 4096');
    expect(llama.seen.length + qwen.seen.length).toBe(before);
  });

  it('an unknown model: 404 TG_MODEL_NOT_FOUND, told only to a caller the policy lets use that name', async () => {
    const client = openaiClient(gw);
    // The policy's allow-list refuses the name first: a caller it refuses learns nothing about what exists.
    const refused = await client.chat.completions.create({ model: 'gpt-unknown', messages: ask('words 1') }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect((refused as Error).message).toContain('model gpt-unknown is not on the allow-list');
    const before = llama.seen.length + qwen.seen.length;
    const missing = await client.chat.completions.create({ model: 'mistral-7b-instruct', messages: ask('words 1') }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(OpenAI.NotFoundError);
    expect((missing as InstanceType<typeof OpenAI.APIError>).code).toBe('TG_MODEL_NOT_FOUND');
    expect((missing as InstanceType<typeof OpenAI.APIError>).param).toBe('model');
    expect(llama.seen.length + qwen.seen.length).toBe(before);
    await expect(client.models.retrieve('mistral-7b-instruct')).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('a name routed to a backend that does not serve it: vLLM\'s own 404 passes through unchanged, nothing charged', async () => {
    const since = finished.length;
    const err = await openaiClient(gw).chat.completions.create({ model: 'Qwen/absent', messages: ask('words 1') }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect((err as Error).message).toBe('404 The model `Qwen/absent` does not exist.');
    const call = await callAfter(since);
    expect(call.outcome).toBe('error');
    expect(call.usage).toBeUndefined();
  });

  it('a prompt over the route\'s maxPromptBytes: 400 TG_PROMPT_TOO_LARGE, never forwarded', async () => {
    const before = llama.seen.length;
    const err = await openaiClient(gw).chat.completions.create({ model: LLAMA, messages: ask('x'.repeat(5000)) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.APIError>).code).toBe('TG_PROMPT_TOO_LARGE');
    expect(llama.seen.length).toBe(before);
  });

  it('a backend error passes through as it is; a backend that hangs times out with 504', async () => {
    const client = openaiClient(gw);
    const failed = await client.chat.completions.create({ model: LLAMA, messages: ask('fail') }).catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(OpenAI.InternalServerError);
    expect((failed as Error).message).toContain('the engine failed');
    const since = finished.length;
    const hung = await client.chat.completions.create({ model: LLAMA, messages: ask('hang') }).catch((e: unknown) => e);
    expect(hung).toBeInstanceOf(OpenAI.APIError);
    expect((hung as InstanceType<typeof OpenAI.APIError>).status).toBe(504);
    expect((hung as InstanceType<typeof OpenAI.APIError>).code).toBe('TG_UPSTREAM_TIMEOUT');
    expect((await callAfter(since)).outcome).toBe('upstream_error');
  });

  it('a backend that breaks or goes silent mid-stream: the client gets an error event and a clean end', async () => {
    for (const [directive, code] of [
      ['words 10 break 3', 'TG_UPSTREAM_UNAVAILABLE'],
      ['words 10 stall 3', 'TG_UPSTREAM_TIMEOUT'],
    ] as const) {
      const rec = recordingFetch();
      const since = finished.length;
      const stream = await openaiClient(gw, { fetch: rec.fetch }).chat.completions.create({ model: LLAMA, messages: ask(directive), stream: true });
      const got: string[] = [];
      const err = await (async () => {
        for await (const chunk of stream) got.push(chunk.choices[0]?.delta.content ?? '');
      })().catch((e: unknown) => e);
      expect(got.join('')).toBe('t0 t1 t2 ');
      expect(err).toBeInstanceOf(OpenAI.APIError);
      expect((err as InstanceType<typeof OpenAI.APIError>).code).toBe(code);
      const tail = (await rec.responses[0]!.done).toString().split('\n\n').slice(-3);
      expect(JSON.parse(tail[0]!.slice('data: '.length))).toMatchObject({ error: { type: 'server_error', code } });
      expect(tail.slice(1)).toEqual(['data: [DONE]', '']);
      // Charged what was streamed: three tokens.
      const call = await callAfter(since);
      expect(call.usage).toEqual({ outputTokens: 3 });
      expect(call.outcome).toBe('upstream_error');
    }
  });

  it('a client that goes away mid-stream aborts the upstream request', async () => {
    const marker = randomUUID();
    const since = finished.length;
    const slow = await startVllm({ name: 'slow', models: [LLAMA_UPSTREAM], tokenDelayMs: 50 });
    try {
      gw.write('slow.yaml', openaiBackend('vllm-slow', { url: slow.url }) + modelsRoute('slow', ['vllm-slow'], { models: [{ name: LLAMA, backend: 'vllm-slow', model: LLAMA_UPSTREAM }] }, '/slow/v1'));
      await eventually(() => gw.gateway.state().snapshot.backends.has('vllm-slow'), 5_000, 'the new route');
      const client = openaiClient(gw, { path: '/slow/v1' });
      const stream = await client.chat.completions.create({ model: LLAMA, messages: ask(`words 1000 ${marker}`), stream: true });
      let n = 0;
      // Chunk by chunk as the backend writes them (50 ms apart), renamed: three arrive long before the 1000th is made.
      for await (const chunk of stream) {
        expect(chunk.model).toBe(LLAMA);
        if (++n === 3) break;
      }
      const aborted = await seenWith(slow, marker).ended;
      expect(aborted).toBe(true);
      expect(seenWith(slow, marker).written.length).toBeLessThan(100);
      const call = finished.slice(since).find((c) => c.upstream === 'vllm-slow');
      await eventually(() => finished.slice(since).some((c) => c.upstream === 'vllm-slow'), 5_000, 'the cancelled call');
      expect((call ?? finished.slice(since).find((c) => c.upstream === 'vllm-slow'))!.outcome).toBe('cancelled');
    } finally {
      await slow.stop();
    }
  });
});

/**
 * The backend's bytes with its name for the model (LLAMA_UPSTREAM) replaced by the one the client asked for: what a
 * client of a rewritten model receives. `times`: how often the backend named it (so the test cannot pass vacuously).
 */
function asAsked(text: string, asked: string, times: number): string {
  const was = `"model":${JSON.stringify(LLAMA_UPSTREAM)}`;
  expect(text.split(was).length - 1).toBe(times);
  return text.replaceAll(was, `"model":${JSON.stringify(asked)}`);
}

/** The request the backend received carrying `marker`. */
function seenWith(server: VllmServer, marker: string) {
  const found = server.seen.find((s) => s.raw.includes(marker));
  if (found === undefined) throw new Error(`the backend saw no request with ${marker}`);
  return found;
}

/** The bytes the backend wrote for the request carrying `marker`. */
function streamOf(server: VllmServer, marker: string): Buffer[] {
  return seenWith(server, marker).written;
}
