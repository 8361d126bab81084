/**
 * The pure pieces under the OpenAI-compatible adapter: SSE event framing without re-encoding (src/wire/sse-frames.ts),
 * byte-preserving JSON member edits (src/wire/json-edit.ts), model routing (src/upstream/models.ts), and the request
 * reading for policy and budgets (src/protocols/openai/request.ts).
 */
import { describe, expect, it } from 'vitest';
import { modelRouteSpec, ModelRouter, checkModelRoutes } from '../../src/upstream/models.ts';
import { POST_OPERATIONS } from '../../src/protocols/openai/operations.ts';
import { estimatePromptTokens, maxOutputTokens, parseBody, policyArguments, upstreamBody, cappedMaxTokens } from '../../src/protocols/openai/request.ts';
import { editMembers, topLevelMembers } from '../../src/wire/json-edit.ts';
import { eventData, SseFramer } from '../../src/wire/sse-frames.ts';

describe('SseFramer', () => {
  const events = (chunks: string[]): { out: string; frames: string[] } => {
    const f = new SseFramer();
    let out = '';
    const frames: string[] = [];
    for (const c of chunks) {
      const got: Buffer[] = [];
      const bytes = f.push(Buffer.from(c), got);
      if (bytes) out += bytes.toString();
      frames.push(...got.map((g) => g.toString()));
    }
    return { out, frames };
  };

  it('hands on whole events only, every byte as received, whatever the chunking', () => {
    const stream = 'data: {"a":1}\n\n: keep-alive\n\ndata: x\ndata: y\n\nevent: e\r\ndata: z\r\n\r\ndata: [DONE]\n\n';
    for (const size of [1, 2, 3, 7, 1000]) {
      const chunks: string[] = [];
      for (let i = 0; i < stream.length; i += size) chunks.push(stream.slice(i, i + size));
      const { out, frames } = events(chunks);
      expect(out).toBe(stream);
      // (A CRLF split between two chunks leaves its LF outside the event it ends: it still reaches the client.)
      expect(frames.map((f) => eventData(Buffer.from(f)))).toEqual(['{"a":1}', undefined, 'x\ny', 'z', '[DONE]']);
    }
  });

  it('returns the chunk itself when it ends on an event boundary (no copy), and keeps a partial event back', () => {
    const f = new SseFramer();
    const chunk = Buffer.from('data: 1\n\ndata: 2\n\n');
    expect(f.push(chunk)).toBe(chunk);
    expect(f.push(Buffer.from('data: 3\n'))).toBeUndefined();
    expect(f.push(Buffer.from('\n'))?.toString()).toBe('data: 3\n\n');
    f.push(Buffer.from('data: cut'));
    expect(f.take()?.toString()).toBe('data: cut');
  });

  it('never splits a multi-byte character', () => {
    const text = Buffer.from('data: {"t":"héllo ✓"}\n\n');
    const f = new SseFramer();
    const parts = [text.subarray(0, 14), text.subarray(14, 15), text.subarray(15)];
    const out = parts.map((p) => f.push(p)).filter((b): b is Buffer => b !== undefined);
    expect(Buffer.concat(out).toString()).toBe('data: {"t":"héllo ✓"}\n\n');
  });

  it('reads data fields as the SSE spec says', () => {
    expect(eventData(Buffer.from('data: a\ndata:b\ndata\n\n'))).toBe('a\nb\n');
    expect(eventData(Buffer.from(': comment\n\n'))).toBeUndefined();
    expect(eventData(Buffer.from('id: 1\r\ndata:  two spaces\r\n\r\n'))).toBe(' two spaces');
  });
});

describe('JSON member edits', () => {
  it('replaces and appends members, leaving every other byte as sent', () => {
    const text = '{ "model" : "a\\"b", "seed":12345678901234567890, "s":"\\u00e9", "stream_options":{"x":[1,{"y":"}"}]} }';
    const members = topLevelMembers(text);
    expect([...members.keys()]).toEqual(['model', 'seed', 's', 'stream_options']);
    expect(text.slice(members.get('stream_options')!.start, members.get('stream_options')!.end)).toBe('{"x":[1,{"y":"}"}]}');
    const out = editMembers(text, members, [
      { key: 'model', value: '"m/2"' },
      { key: 'stream_options', value: '{"include_usage":true}' },
      { key: 'max_tokens', value: '7' },
    ]);
    expect(out).toBe('{ "model" : "m/2", "seed":12345678901234567890, "s":"\\u00e9", "stream_options":{"include_usage":true},"max_tokens":7 }');
    expect(editMembers('{}', topLevelMembers('{}'), [{ key: 'a', value: '1' }])).toBe('{"a":1}');
  });
});

describe('model routes', () => {
  const routes = [
    { name: 'llama', aliases: ['l3'], backend: 'a', model: 'meta/Llama' },
    { pattern: 'Qwen/*', backend: 'b' },
    { pattern: 'team/*', backend: 'b', model: 'org/*-instruct' },
  ].map((r) => modelRouteSpec.parse(r));

  it('resolves exact names, aliases (to the name), patterns and rewrites', () => {
    const r = new ModelRouter(routes, ['a', 'b']);
    expect(r.resolve('l3')).toEqual({ name: 'llama', requested: 'l3', backend: 'a', upstream: 'meta/Llama' });
    expect(r.resolve('Qwen/7B')).toEqual({ name: 'Qwen/7B', requested: 'Qwen/7B', backend: 'b', upstream: 'Qwen/7B' });
    expect(r.resolve('team/x')).toMatchObject({ backend: 'b', upstream: 'org/x-instruct' });
    expect(r.resolve('other')).toBeUndefined();
    // A rule only routes to its own backends.
    expect(new ModelRouter(routes, ['b']).resolve('llama')).toBeUndefined();
  });

  it('without routes, serves what the backends advertise, first backend first', () => {
    const r = new ModelRouter([], ['a', 'b']);
    const advertised = { names: (b: string) => new Set(b === 'a' ? ['m1'] : ['m1', 'm2']) };
    expect(r.resolve('m1', advertised)?.backend).toBe('a');
    expect(r.resolve('m2', advertised)?.backend).toBe('b');
    expect(r.resolve('m3', advertised)).toBeUndefined();
  });

  it('lists a backend model under the name callers use (a rewrite inverted)', () => {
    const r = new ModelRouter(routes, ['a', 'b']);
    expect(r.offered('a', ['meta/Llama', 'other'])).toEqual([{ name: 'llama', upstream: 'meta/Llama' }]);
    expect(r.offered('b', ['Qwen/7B', 'org/x-instruct', 'nope'])).toEqual([
      { name: 'Qwen/7B', upstream: 'Qwen/7B' },
      { name: 'team/x', upstream: 'org/x-instruct' },
    ]);
  });

  it('refuses duplicate names and backends outside the route', () => {
    const dup = [modelRouteSpec.parse({ name: 'x', backend: 'a' }), modelRouteSpec.parse({ name: 'y', aliases: ['x'], backend: 'z' })];
    expect(checkModelRoutes(dup, new Set(['a']))).toEqual([
      { path: [1, 'backend'], message: 'backend "z" is not a backend of this route' },
      { path: [1, 'aliases', 0], message: 'model name "x" is already used by models[0]' },
    ]);
    expect(modelRouteSpec.safeParse({ pattern: 'a*b*', backend: 'a' }).success).toBe(false);
    expect(modelRouteSpec.safeParse({ name: 'a', model: 'b*', backend: 'a' }).success).toBe(false);
  });
});

describe('request reading', () => {
  const chat = POST_OPERATIONS.get('/chat/completions')!;
  const completions = POST_OPERATIONS.get('/completions')!;

  it('gives policies the parameters, tool names and the prompt shape, not its content unless asked', () => {
    const p = parseBody(
      Buffer.from(
        JSON.stringify({
          model: 'm',
          messages: [
            { role: 'system', content: 'be brief' },
            { role: 'user', content: 'hello there' },
          ],
          max_tokens: 100,
          temperature: 0.2,
          tools: [{ type: 'function', function: { name: 'get_weather', parameters: {} } }],
          guided_json: { big: 'x'.repeat(3000) },
        }),
      ),
    );
    const args = policyArguments(p, false);
    expect(args).toMatchObject({ model: 'm', max_tokens: 100, temperature: 0.2, tools: ['get_weather'], message_count: 2, message_roles: { system: 1, user: 1 } });
    expect(args.messages).toBeUndefined();
    expect(args.guided_json).toEqual({ omitted_bytes: 3010 });
    expect(policyArguments(p, true).messages).toEqual(p.json.messages);
  });

  it('hands the policy every request member, one named __proto__ too (a member, never a prototype)', () => {
    const p = parseBody(Buffer.from('{"model":"m","__proto__":{"max_tokens":1},"max_tokens":99999}'));
    const args = policyArguments(p, false);
    expect(JSON.parse(JSON.stringify(args))).toEqual(JSON.parse('{"model":"m","__proto__":{"max_tokens":1},"max_tokens":99999}'));
    expect(Object.keys(args)).toEqual(['model', '__proto__', 'max_tokens']);
    const roles = policyArguments(parseBody(Buffer.from('{"model":"m","messages":[{"role":"constructor"},{"role":"__proto__"},{"role":"user"}]}')), false).message_roles;
    expect(JSON.parse(JSON.stringify(roles))).toEqual(JSON.parse('{"constructor":1,"__proto__":1,"user":1}'));
  });

  it('estimates prompt tokens from bytes (token ids counted exactly) and output from max_tokens x sequences', () => {
    const p = parseBody(Buffer.from('{"model":"m","messages":[{"role":"user","content":"abcdefghijkl"}]}'));
    expect(estimatePromptTokens(p, 3)).toBe(Math.ceil('[{"role":"user","content":"abcdefghijkl"}]'.length / 3));
    expect(maxOutputTokens(p, chat)).toBeUndefined();
    const ids = parseBody(Buffer.from('{"model":"m","prompt":[[1,2,3],[4,5]],"n":2,"max_tokens":10}'));
    expect(estimatePromptTokens(ids, 3)).toBe(5);
    expect(maxOutputTokens(ids, completions)).toBe(10 * 2 * 2);
    expect(cappedMaxTokens(ids, completions, 100)).toBe(25);
    expect(maxOutputTokens(parseBody(Buffer.from('{"model":"m","prompt":"x"}')), completions)).toBe(16);
  });

  it('adds include_usage beside the client\'s stream options (continuous stats off, as the client had them)', () => {
    const p = parseBody(Buffer.from('{"model":"m","stream":true,"stream_options":{"continuous_usage_stats":true}}'));
    expect(upstreamBody(p, { includeUsage: true, maxTokens: { key: 'max_tokens', value: 5 } })).toBe('{"model":"m","stream":true,"stream_options":{"continuous_usage_stats":false,"include_usage":true},"max_tokens":5}');
  });

  it('refuses bodies that are not an object with a model', () => {
    expect(() => parseBody(Buffer.from('[1]'))).toThrowError(expect.objectContaining({ code: 'TG_INVALID_REQUEST' }));
    expect(() => parseBody(Buffer.from('{"model":3}'))).toThrowError(expect.objectContaining({ code: 'TG_INVALID_REQUEST' }));
    expect(() => parseBody(Buffer.from('{'))).toThrowError(expect.objectContaining({ code: 'TG_PARSE_ERROR' }));
  });
});
