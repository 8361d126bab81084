/**
 * The KServe adapter's pure pieces: which endpoint a path names (and what the backend's path is for it), the
 * Inference-Header-Content-Length checks, the policy summaries, and peeking the inference header off a stream without
 * losing a byte of it.
 */
import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../src/core/errors.ts';
import { parsePath, upstreamPath } from '../../src/protocols/kserve/operations.ts';
import { declaredBinaryBytes, generateArguments, generateMaxTokens, generateSequence, headerLength, inferArguments, peekHeader, sequenceId } from '../../src/protocols/kserve/request.ts';

describe('paths', () => {
  it('names the server and model endpoints, versions included', () => {
    expect(parsePath('')).toMatchObject({ operation: 'server.metadata', method: 'GET' });
    expect(parsePath('/health/live')).toMatchObject({ operation: 'server.live' });
    expect(parsePath('/health/ready')).toMatchObject({ operation: 'server.ready' });
    expect(parsePath('/models/add')).toEqual({ operation: 'model.metadata', method: 'GET', model: 'add', version: undefined });
    expect(parsePath('/models/add/versions/3/infer')).toEqual({ operation: 'infer', method: 'POST', model: 'add', version: '3' });
    expect(parsePath('/models/my%20model/generate_stream')).toMatchObject({ operation: 'generate_stream', model: 'my model' });
    expect(parsePath('/models/add/ready')).toMatchObject({ operation: 'model.ready' });
  });

  it('refuses what it does not serve (repository, stats, malformed names, names of Object.prototype)', () => {
    for (const p of ['/repository/index', '/models/add/stats', '/models/add/infer/x', '/models/', '/models/a%2Fb/infer', '/models/%E0%A4%A/infer', '/models/add/versions/', '/models/add/', '/models/add/ready/', '/models/add/versions/1/', '/models/add/versions', '/health', '/trace/setting', '/models/add/constructor', '/models/add/__proto__', '/models/add/toString', '/models/add/versions/1/hasOwnProperty', '__proto__', 'constructor']) {
      expect(parsePath(p), p).toBeUndefined();
    }
  });

  it('builds the backend path for the model\'s name there', () => {
    expect(upstreamPath(parsePath('/models/sum/infer')!, 'add')).toBe('/v2/models/add/infer');
    expect(upstreamPath(parsePath('/models/x/versions/2')!, 'a b')).toBe('/v2/models/a%20b/versions/2');
    expect(upstreamPath(parsePath('/models/x/ready')!, 'y')).toBe('/v2/models/y/ready');
  });
});

describe('Inference-Header-Content-Length', () => {
  const code = (f: () => unknown): string | undefined => {
    try {
      f();
      return undefined;
    } catch (err) {
      return (err as GatewayError).code;
    }
  };

  it('is absent for JSON tensors, else a positive byte count within the cap and the body', () => {
    expect(headerLength({}, 1024)).toBeUndefined();
    expect(headerLength({ 'inference-header-content-length': '120', 'content-length': '300' }, 1024)).toBe(120);
    expect(code(() => headerLength({ 'inference-header-content-length': '-1' }, 1024))).toBe('TG_INVALID_TENSOR_HEADER');
    expect(code(() => headerLength({ 'inference-header-content-length': '1e3' }, 1024))).toBe('TG_INVALID_TENSOR_HEADER');
    expect(code(() => headerLength({ 'inference-header-content-length': '0' }, 1024))).toBe('TG_INVALID_TENSOR_HEADER');
    expect(code(() => headerLength({ 'inference-header-content-length': '2048' }, 1024))).toBe('TG_INVALID_TENSOR_HEADER');
    expect(code(() => headerLength({ 'inference-header-content-length': '301', 'content-length': '300' }, 1024))).toBe('TG_INVALID_TENSOR_HEADER');
  });

  it('peeks the header and puts it back: the stream still yields every byte, in order', async () => {
    const body = new PassThrough();
    const data = Buffer.from('{"inputs":[]}' + 'x'.repeat(100));
    body.write(data.subarray(0, 5));
    setTimeout(() => body.end(data.subarray(5)), 5);
    const header = await peekHeader(body, 13);
    expect(header.toString()).toBe('{"inputs":[]}');
    const rest: Buffer[] = [];
    for await (const c of body) rest.push(c as Buffer);
    expect(Buffer.concat(rest).equals(data)).toBe(true);
  });

  it('fails when the body ends before the announced header', async () => {
    await expect(peekHeader(Readable.from([Buffer.from('{"in')]), 13)).rejects.toMatchObject({ code: 'TG_INVALID_TENSOR_HEADER' });
  });
});

describe('policy arguments', () => {
  it('infer: tensors by name, datatype and shape, never their data', () => {
    const header = { id: '1', inputs: [{ name: 'a', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] }, { name: 'b', datatype: 'FP32', shape: [1, 3], parameters: { binary_data_size: 12 } }], outputs: [{ name: 'sum' }] };
    const args = inferArguments(header, 100, true);
    expect(args).toEqual({ inputs: [{ name: 'a', datatype: 'FP32', shape: [1, 3] }, { name: 'b', datatype: 'FP32', shape: [1, 3], binary_data_size: 12 }], outputs: ['sum'], binary: true, body_bytes: 100 });
    expect(declaredBinaryBytes(header)).toBeUndefined();
    expect(declaredBinaryBytes({ inputs: [header.inputs[1]] })).toBe(12);
  });

  it('generate: text_input by its size unless asked, max_tokens and temperature lifted from parameters', () => {
    const body = { text_input: 'héllo', parameters: { max_tokens: 7, temperature: 0.5 }, stream: false };
    expect(generateArguments(body, false)).toEqual({ text_input_bytes: 6, parameters: { max_tokens: 7, temperature: 0.5 }, stream: false, max_tokens: 7, temperature: 0.5 });
    expect(generateArguments(body, true).text_input).toBe('héllo');
    expect(generateMaxTokens(body)).toBe(7);
    expect(generateMaxTokens({ max_tokens: 3 })).toBe(3);
    expect(generateMaxTokens({ parameters: { max_tokens: 'many' } })).toBeUndefined();
  });
});

describe('sequence ids named in a body', () => {
  it('infer: parameters.sequence_id, a non-zero number or a non-empty string', () => {
    expect(sequenceId({ parameters: { sequence_id: 7 } })).toBe(7);
    expect(sequenceId({ parameters: { sequence_id: 'chat' } })).toBe('chat');
    for (const none of [0, '', true, null, { a: 1 }]) expect(sequenceId({ parameters: { sequence_id: none } }), JSON.stringify(none)).toBeUndefined();
    expect(sequenceId({ sequence_id: 7 })).toBeUndefined();
    expect(sequenceId({ parameters: 'sequence_id' })).toBeUndefined();
  });

  it('generate: in parameters or at the top level (Triton makes either the request parameter sequence_id)', () => {
    expect(generateSequence({ text_input: 'x', parameters: { sequence_id: 7, sequence_start: true } })).toEqual({ id: 7, place: 'parameters' });
    expect(generateSequence({ text_input: 'x', sequence_id: 'chat' })).toEqual({ id: 'chat', place: 'top' });
    // A parameter the model reads: 0 and "" are ids there like any other (only infer's correlation id takes them as
    // "none"), so another caller's 0 is not this caller's 0.
    expect(generateSequence({ text_input: 'x', sequence_id: 0, parameters: { max_tokens: 3 } })).toEqual({ id: 0, place: 'top' });
    expect(generateSequence({ text_input: 'x', parameters: { sequence_id: '' } })).toEqual({ id: '', place: 'parameters' });
    expect(generateSequence({ text_input: 'x' })).toBeUndefined();
    expect(generateSequence({ text_input: 'x', parameters: { sequence_id: null } })).toBeUndefined();
    // A boolean cannot be mapped into the caller's own ids: refused.
    expect(() => generateSequence({ text_input: 'x', parameters: { sequence_id: true } })).toThrow(expect.objectContaining({ code: 'TG_INVALID_REQUEST' }));
  });

  it('generate: naming it in both places is refused, whatever the values (Triton would take the last one)', () => {
    for (const [top, inner] of [[5, 6], [5, 5], [0, 'x'], ['a', 0]] as const) {
      try {
        generateSequence({ text_input: 'x', sequence_id: top, parameters: { sequence_id: inner } });
        expect.unreachable('refused');
      } catch (err) {
        expect(err).toBeInstanceOf(GatewayError);
        expect((err as GatewayError).def.code).toBe('TG_INVALID_REQUEST');
        expect((err as GatewayError).message).toMatch(/sequence_id/);
      }
    }
  });
});
