/**
 * The model name a client of a rewritten OpenAI-compatible model reads back (src/protocols/openai/stream.ts with
 * src/upstream/rename.ts): every streamed chunk's `model` and a whole answer's are the name the client asked for,
 * however the backend's bytes are cut; each whole event leaves as soon as it arrived (never held for the stream's
 * end); the dropped usage chunk stays dropped; what the gateway reads (usage, the response model) is the backend's.
 */
import { describe, expect, it } from 'vitest';
import { Call } from '../../src/core/call.ts';
import { CompletionStream, JsonAnswer } from '../../src/protocols/openai/stream.ts';
import { RenamedAnswer } from '../../src/upstream/rename.ts';

const UPSTREAM = 'meta-llama/Llama-3.1-8B-Instruct';

function newCall(): Call {
  return new Call({
    id: 'c1',
    protocol: 'openai',
    operation: 'chat.completions',
    route: { name: 'models', spec: {} as never },
    request: { method: 'POST', path: '/v1/chat/completions', headers: {}, remoteAddress: '127.0.0.1' },
  });
}

/** vLLM's chunks (its field order), the usage-only chunk, [DONE]. */
function events(model: string): string[] {
  const chunk = (choices: unknown[]): string => `data: ${JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model, choices })}\n\n`;
  return [
    chunk([{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]),
    chunk([{ index: 0, delta: { content: 't0 ' }, logprobs: null, finish_reason: null }]),
    chunk([{ index: 0, delta: { content: 't1 ' }, logprobs: null, finish_reason: 'stop' }]),
    `data: ${JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model, choices: [], usage: { prompt_tokens: 4, total_tokens: 6, completion_tokens: 2 } })}\n\n`,
    'data: [DONE]\n\n',
  ];
}

describe('CompletionStream with a rename', () => {
  it('names the model as asked in every event, however the bytes are cut; reads the backend\'s own bytes', async () => {
    const backend = Buffer.from(events(UPSTREAM).join(''));
    const want = events('llama').join('');
    for (const step of [1, 7, 64, backend.length]) {
      const call = newCall();
      const f = new CompletionStream(call, false, 'llama');
      const out: Buffer[] = [];
      for (let at = 0; at < backend.length; at += step) {
        const r = f.chunk(backend.subarray(at, at + step));
        if (r !== undefined) out.push(r);
      }
      const tail = f.end();
      if (tail !== undefined) out.push(tail);
      expect(Buffer.concat(out).toString(), `step ${step}`).toBe(want);
      await Promise.resolve();
      expect(call.model).toMatchObject({ response: UPSTREAM, metering: 'reported' });
      expect(call.usage).toMatchObject({ inputTokens: 4, outputTokens: 2, reported: true });
    }
  });

  it('passes each whole event on at once, renamed, and drops the usage chunk the client did not ask for', () => {
    const call = newCall();
    const f = new CompletionStream(call, true, 'llama');
    const [first, second, third, usage, done] = events(UPSTREAM);
    expect(f.chunk(Buffer.from(first!))?.toString()).toBe(events('llama')[0]);
    // Half an event: nothing yet; its other half: the whole event.
    expect(f.chunk(Buffer.from(second!.slice(0, 30)))).toBeUndefined();
    expect(f.chunk(Buffer.from(second!.slice(30)))?.toString()).toBe(events('llama')[1]);
    expect(f.chunk(Buffer.from(third! + usage! + done!))?.toString()).toBe(events('llama')[2]! + done!);
    expect(f.end()).toBeUndefined();
    expect(call.usage).toMatchObject({ inputTokens: 4, outputTokens: 2, reported: true });
  });

  it('a last event without its blank line is renamed too; without a rename the bytes are the backend\'s', () => {
    const last = `data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"${UPSTREAM}","choices":[]}`;
    const f = new CompletionStream(newCall(), false, 'llama');
    expect(f.chunk(Buffer.from(last))).toBeUndefined();
    expect(f.end()?.toString()).toBe(last.replace(UPSTREAM, 'llama'));
    const plain = new CompletionStream(newCall(), false);
    const bytes = Buffer.from(events(UPSTREAM).slice(0, 3).join(''));
    expect(plain.chunk(bytes)?.equals(bytes)).toBe(true);
  });
});

describe('a whole answer with a rename', () => {
  it('only `model` changes, Content-Length follows, usage and the response model are read from the backend\'s bytes', () => {
    const call = newCall();
    const body = Buffer.from(
      JSON.stringify({ id: 'chatcmpl-2', object: 'chat.completion', created: 1, model: UPSTREAM, choices: [{ index: 0, message: { role: 'assistant', content: 'model' } }], usage: { prompt_tokens: 3, completion_tokens: 1 } }),
    );
    const f = new RenamedAnswer(new JsonAnswer(call, 1 << 20), 'model', 'llama');
    const out: Buffer[] = [];
    for (const part of [body.subarray(0, 40), body.subarray(40, 70), body.subarray(70)]) {
      const r = f.chunk(part);
      if (r !== undefined) out.push(r);
    }
    const tail = f.end();
    if (tail !== undefined) out.push(tail);
    const headers = { 'content-length': String(body.length) };
    f.head(headers);
    const text = Buffer.concat(out).toString();
    expect(text).toBe(body.toString().replace(`"model":"${UPSTREAM}"`, '"model":"llama"'));
    expect(headers['content-length']).toBe(String(Buffer.byteLength(text)));
    expect(call.model?.response).toBe(UPSTREAM);
    expect(call.usage).toMatchObject({ inputTokens: 3, outputTokens: 1, reported: true });
  });
});
