/**
 * The pure pieces under the OpenAI adapter's Responses API and pooling endpoints: the reservation and policy reading
 * of their requests (request.ts), the Responses stream reader and its model rename (responses.ts), and response
 * ownership in memory (owners.ts; the shared-store path is exercised end to end in test/e2e/openai-extras.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { Call } from '../../src/core/call.ts';
import { GatewayError, Errors } from '../../src/core/errors.ts';
import { POST_OPERATIONS } from '../../src/protocols/openai/operations.ts';
import { ResponseOwners } from '../../src/protocols/openai/owners.ts';
import { claimResponseState } from '../../src/protocols/openai/stored.ts';
import { reportUsage } from '../../src/protocols/openai/stream.ts';
import { clientMaxTokens, estimatePromptTokens, maxOutputTokens, parseBody, policyArguments, promptBytes, upstreamBody } from '../../src/protocols/openai/request.ts';
import { renameResponseEvent, ResponsesStream } from '../../src/protocols/openai/responses.ts';

const responses = POST_OPERATIONS.get('/responses')!;
const rerank = POST_OPERATIONS.get('/rerank')!;
const body = (o: unknown) => parseBody(Buffer.from(JSON.stringify(o)));

function newCall(): Call {
  return new Call({
    id: 'c1',
    protocol: 'openai',
    operation: 'responses',
    route: { name: 'models', spec: {} as never },
    request: { method: 'POST', path: '/v1/responses', headers: {}, remoteAddress: '127.0.0.1' },
  });
}

describe('reading a Responses API or pooling request', () => {
  it('max_output_tokens is the Responses API\'s output limit (reserved, and the member set when capped)', () => {
    const p = body({ model: 'm', input: 'hi', max_tokens: 7, max_output_tokens: 50 });
    expect(clientMaxTokens(p, responses)).toBe(50);
    expect(maxOutputTokens(p, responses)).toBe(50);
    expect(maxOutputTokens(body({ model: 'm', input: 'hi' }), responses)).toBeUndefined();
    expect(maxOutputTokens(p, rerank)).toBe(0);
    expect(upstreamBody(body({ model: 'm', input: 'hi' }), { maxTokens: { key: responses.outputLimit, value: 40 } })).toBe('{"model":"m","input":"hi","max_output_tokens":40}');
  });

  it('a rerank reserves the query once per document, the instructions count as prompt', () => {
    // 9 bytes of query ("red fox" quoted) read with each of 3 documents, plus the documents' 30 bytes.
    const p = body({ model: 'm', query: 'red fox', documents: ['a red fox', 'blue', 'the fox'] });
    expect(estimatePromptTokens(p, 1)).toBe(9 * 3 + 30);
    // Equal lists are scored pair by pair.
    expect(estimatePromptTokens(body({ model: 'm', text_1: ['a', 'b'], text_2: ['c', 'd'] }), 1)).toBe(9 + 9);
    expect(estimatePromptTokens(body({ model: 'm', input: 'abc', instructions: 'xyz' }), 1)).toBe(5 + 5);
    // The route's prompt cap sees each member once, whichever spelling of the pair it is part of.
    expect(promptBytes(body({ model: 'm', queries: ['q'], documents: ['d'] }))).toBe(5 + 5);
  });

  it('policy sees the Responses API\'s tools: functions by name, built-in tools by type, MCP tools by server', () => {
    const args = policyArguments(body({ model: 'm', input: 'x', tools: [{ type: 'function', name: 'get_weather', parameters: {} }, { type: 'web_search_preview' }, { type: 'mcp', server_label: 'deepwiki', server_url: 'https://x' }, { type: 'function' }] }), false);
    expect(args.tools).toEqual(['get_weather', 'web_search_preview', 'mcp:deepwiki']);
  });

  it('policy sees the shape of the compared texts, not the texts', () => {
    const args = policyArguments(body({ model: 'm', query: 'secret question', documents: ['a', 'b'], top_n: 1 }), false);
    expect({ ...args }).toEqual({ model: 'm', query_count: 1, query_bytes: 17, document_count: 2, document_bytes: 9, top_n: 1 });
  });
});

const event = (type: string, data: Record<string, unknown>): string => `event: ${type}\ndata: ${JSON.stringify({ ...data, type })}\n\n`;

describe('ResponsesStream', () => {
  it('passes every byte, counts deltas, then takes the final event\'s usage', async () => {
    const call = newCall();
    const s = new ResponsesStream(call);
    const stream = [
      event('response.created', { response: { id: 'resp_1', model: 'up', status: 'in_progress', usage: null }, sequence_number: 0 }),
      event('response.output_text.delta', { delta: 'a', sequence_number: 1 }),
      event('response.output_text.delta', { delta: 'b', sequence_number: 2 }),
    ].join('');
    expect(s.chunk(Buffer.from(stream))?.toString()).toBe(stream);
    await Promise.resolve();
    expect(call.usage).toMatchObject({ outputTokens: 2 });
    expect(call.model).toMatchObject({ responseId: 'resp_1', response: 'up', metering: 'counted' });
    const last = event('response.incomplete', { response: { id: 'resp_1', model: 'up', object: 'response', status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' }, usage: { input_tokens: 4, output_tokens: 2 } }, sequence_number: 3 });
    expect(s.chunk(Buffer.from(last.slice(0, 10)))).toBeUndefined();
    expect(s.chunk(Buffer.from(last.slice(10)))?.toString()).toBe(last);
    expect(s.end()).toBeUndefined();
    expect(call.usage).toMatchObject({ inputTokens: 4, outputTokens: 2, reported: true });
    expect(call.model).toMatchObject({ metering: 'reported', finishReasons: ['max_output_tokens'] });
  });

  it('a broken stream ends with OpenAI\'s error event, numbered after the last one', async () => {
    const call = newCall();
    const s = new ResponsesStream(call);
    s.chunk(Buffer.from(event('response.output_text.delta', { delta: 'a', sequence_number: 4 }) + 'event: response.output_te'));
    const tail = s.fail(new GatewayError(Errors.UPSTREAM_UNAVAILABLE, 'gone'))!.toString();
    expect(tail).toBe('event: error\ndata: {"type":"error","code":"TG_UPSTREAM_UNAVAILABLE","message":"gone","param":null,"sequence_number":5}\n\n');
  });

  it('renames the model inside an event\'s response, nothing else', () => {
    const name = Buffer.from('"asked"');
    const created = event('response.created', { response: { id: 'r', model: 'up', output: [{ model: 'inner' }] }, sequence_number: 0 });
    expect(renameResponseEvent(Buffer.from(created), name).toString()).toBe(created.replace('"model":"up"', '"model":"asked"'));
    const delta = event('response.output_text.delta', { delta: '"model":"up"', sequence_number: 1 });
    expect(renameResponseEvent(Buffer.from(delta), name).toString()).toBe(delta);
    // Not metered (a replayed stored response): renamed, nothing read.
    const call = newCall();
    expect(new ResponsesStream(call, 'asked', false).chunk(Buffer.from(created))?.toString()).toContain('"model":"asked"');
    expect(call.model).toBeUndefined();
  });
});

describe('ResponseOwners (one replica)', () => {
  const where = { backend: 'vllm', model: 'llama', upstream: 'meta/llama' };
  it('binds an id to its first owner; another identity gets 404 TG_RESPONSE_NOT_FOUND, as for an unknown id', async () => {
    const owners = new ResponseOwners(undefined);
    expect(await owners.bind('resp_1', { owner: 'a', ...where })).toBe(true);
    expect(await owners.bind('resp_1', { owner: 'a', ...where })).toBe(true);
    expect(await owners.bind('resp_1', { owner: 'b', ...where })).toBe(false);
    expect(await owners.check('resp_1', 'a')).toMatchObject({ owner: 'a', backend: 'vllm' });
    await expect(owners.check('resp_1', 'b')).rejects.toMatchObject({ code: 'TG_RESPONSE_NOT_FOUND' });
    await expect(owners.check('resp_2', 'a', 'previous_response_id')).rejects.toMatchObject({ code: 'TG_RESPONSE_NOT_FOUND', data: { param: 'previous_response_id' } });
  });

  it('a full table refuses the newcomer (503 TG_OVERLOADED) and keeps every owner\'s response reachable', async () => {
    const owners = new ResponseOwners(undefined, 2);
    expect(await owners.bind('resp_a', { owner: 'a', ...where })).toBe(true);
    expect(await owners.bind('resp_b', { owner: 'b', ...where })).toBe(true);
    // The attacker fills nothing more: its response is refused before it is forwarded, and a bind after an answer too.
    expect(() => owners.assertRoom('c')).toThrow(expect.objectContaining({ code: 'TG_OVERLOADED' }));
    await expect(owners.bind('resp_c', { owner: 'c', ...where })).rejects.toMatchObject({ code: 'TG_OVERLOADED' });
    expect(await owners.check('resp_a', 'a')).toMatchObject({ owner: 'a' });
    expect(await owners.check('resp_b', 'b')).toMatchObject({ owner: 'b' });
    await expect(owners.check('resp_c', 'c')).rejects.toMatchObject({ code: 'TG_RESPONSE_NOT_FOUND' });
  });

  it('one caller holds at most its share of the table (a tenth): it gets 429 TG_CAP_REACHED, another caller does not', async () => {
    const owners = new ResponseOwners(undefined, 20);
    expect(await owners.bind('resp_1', { owner: 'm', ...where })).toBe(true);
    expect(await owners.bind('resp_2', { owner: 'm', ...where })).toBe(true);
    expect(() => owners.assertRoom('m')).toThrow(expect.objectContaining({ code: 'TG_CAP_REACHED' }));
    await expect(owners.bind('resp_3', { owner: 'm', ...where })).rejects.toMatchObject({ code: 'TG_CAP_REACHED' });
    owners.assertRoom('a');
    expect(await owners.bind('resp_a', { owner: 'a', ...where })).toBe(true);
    expect(await owners.check('resp_1', 'm')).toMatchObject({ owner: 'm' });
  });
});

describe('claimResponseState (before a POST /responses is forwarded)', () => {
  const resolved = { backend: 'vllm', name: 'llama', upstream: 'meta/llama' } as never;
  const as = (id: string, issuer: string): Call => {
    const call = newCall();
    call.principal = { id, issuer } as never;
    return call;
  };
  it('anonymous callers are one caller: previous_response_id and request_id are refused, nothing is bound', async () => {
    const owners = new ResponseOwners(undefined);
    const anon = as('anonymous', 'anonymous');
    await expect(claimResponseState(owners, anon, body({ model: 'm', input: 'x', previous_response_id: 'resp_1' }), resolved)).rejects.toMatchObject({
      code: 'TG_INVALID_REQUEST',
      data: { param: 'previous_response_id' },
    });
    await expect(claimResponseState(owners, anon, body({ model: 'm', input: 'x', request_id: 'mine' }), resolved)).rejects.toMatchObject({ data: { param: 'request_id' } });
    await claimResponseState(owners, anon, body({ model: 'm', input: 'x' }), resolved);
    await expect(owners.check('mine', 'anonymous')).rejects.toMatchObject({ code: 'TG_RESPONSE_NOT_FOUND' });
  });

  it('request_id is a short id of safe characters, claimed only for a stored response', async () => {
    const owners = new ResponseOwners(undefined);
    const alice = as('spiffe://corp.example/alice', 'spiffe://corp.example');
    await expect(claimResponseState(owners, alice, body({ model: 'm', input: 'x', request_id: 'r'.repeat(129) }), resolved)).rejects.toMatchObject({ data: { param: 'request_id' } });
    await expect(claimResponseState(owners, alice, body({ model: 'm', input: 'x', request_id: 'a/b' }), resolved)).rejects.toMatchObject({ data: { param: 'request_id' } });
    await claimResponseState(owners, alice, body({ model: 'm', input: 'x', request_id: 'not-kept', store: false }), resolved);
    await expect(owners.check('not-kept', alice.principal!.id)).rejects.toMatchObject({ code: 'TG_RESPONSE_NOT_FOUND' });
    await claimResponseState(owners, alice, body({ model: 'm', input: 'x', request_id: 'resp_kept-1' }), resolved);
    expect(await owners.check('resp_kept-1', alice.principal!.id)).toMatchObject({ owner: alice.principal!.id });
  });
});

describe('reportUsage', () => {
  it('an older vLLM\'s pooling usage ({total_tokens} only) is counted as input, not left unmetered', () => {
    const call = newCall();
    reportUsage(call, { total_tokens: 42 });
    expect(call.usage).toMatchObject({ inputTokens: 42, outputTokens: 0, reported: true });
    const chat = newCall();
    reportUsage(chat, { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 });
    expect(chat.usage).toMatchObject({ inputTokens: 5, outputTokens: 7 });
  });
});
