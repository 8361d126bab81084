/**
 * Renaming a Triton model in its answers (src/upstream/rename.ts) and finding a top-level member in the first
 * bytes of a JSON object (src/wire/json-edit.ts `prefixMember`): the name is found however the answer is cut into
 * chunks, only its value changes, the framing lengths follow, and what carries no name passes as it came.
 */
import type { OutgoingHttpHeaders } from 'node:http';
import { describe, expect, it } from 'vitest';
import type { ChunkFilter } from '../../src/upstream/forwarder.ts';
import { renameEvent, RenamedAnswer } from '../../src/upstream/rename.ts';
import { prefixMember } from '../../src/wire/json-edit.ts';

/** A filter that passes bytes and records what it saw (stands for KServeAnswer, which reads the original). */
class Seen implements ChunkFilter {
  readonly sameBytes = true;
  readonly chunks: Buffer[] = [];
  ended = false;
  chunk(data: Buffer): Buffer {
    this.chunks.push(data);
    return data;
  }
  end(): undefined {
    this.ended = true;
    return undefined;
  }
  fail(): undefined {
    return undefined;
  }
}

/** Feeds `body` in chunks cut at `cuts`; returns what the client gets and the headers after the filter's head(). */
function relay(body: Buffer, cuts: number[], key: string, name: string, headers: OutgoingHttpHeaders): { out: Buffer; headers: OutgoingHttpHeaders; seen: Buffer } {
  const inner = new Seen();
  const f = new RenamedAnswer(inner, key, name, ['content-length', 'inference-header-content-length']);
  const out: Buffer[] = [];
  let from = 0;
  for (const at of [...cuts, body.length]) {
    const r = f.chunk(body.subarray(from, at));
    if (r !== undefined) out.push(r);
    from = at;
  }
  const tail = f.end();
  if (tail !== undefined) out.push(tail);
  const h = { ...headers };
  f.head(h);
  expect(inner.ended).toBe(true);
  return { out: Buffer.concat(out), headers: h, seen: Buffer.concat(inner.chunks) };
}

describe('prefixMember', () => {
  const text = '{"id":"x\\"}","model_name":"add","model_version":"1","outputs":[{"name":"sum","data":[1.0,2]}]}';

  it('finds a top-level string member once its value is complete, not a nested one of the same name', () => {
    const at = text.indexOf('"add"');
    expect(prefixMember(text, 'model_name')).toEqual({ start: at, end: at + 5 });
    for (let n = 0; n < at + 5; n++) expect(prefixMember(text.slice(0, n), 'model_name'), text.slice(0, n)).toBeUndefined();
    expect(prefixMember(text.slice(0, at + 5), 'model_name')).toEqual({ start: at, end: at + 5 });
    // `name` appears only inside outputs: absent at the top level, known once the object closed.
    expect(prefixMember(text, 'name')).toBe('absent');
    expect(prefixMember(text.slice(0, -1), 'name')).toBeUndefined();
    expect(prefixMember('{ "a" : 12 , "name" : "x" }', 'name')).toEqual({ start: 22, end: 25 });
    // A number at the end of the prefix may go on.
    expect(prefixMember('{"a":12', 'name')).toBeUndefined();
  });

  it('says absent for what is not an object, or an error answer', () => {
    expect(prefixMember('[1,2]', 'name')).toBe('absent');
    expect(prefixMember('{"error":"Request for unknown model"}', 'model_name')).toBe('absent');
    expect(prefixMember('{}', 'model_name')).toBe('absent');
    expect(prefixMember('', 'model_name')).toBeUndefined();
    expect(prefixMember('  ', 'model_name')).toBeUndefined();
  });
});

describe('RenamedAnswer', () => {
  const body = Buffer.from('{"id":"r1","model_name":"add","model_version":"1","outputs":[{"name":"sum","datatype":"FP32","shape":[1,3],"data":[11.0,22.0,33.0]}]}');

  it('renames the model in any chunking, fixes Content-Length, and hands the reader Triton\'s bytes', () => {
    const name = 'trés "sum"';
    const expected = body.toString().replace('"model_name":"add"', `"model_name":${JSON.stringify(name)}`);
    for (const cuts of [[], [1], [20], [27, 28], [5, 10, 15, 20, 25, 30, 35], [body.length - 1]]) {
      const r = relay(body, cuts, 'model_name', name, { 'content-length': String(body.length), 'content-type': 'application/json' });
      expect(r.out.toString(), JSON.stringify(cuts)).toBe(expected);
      expect(JSON.parse(r.out.toString())).toMatchObject({ model_name: name, outputs: [{ name: 'sum' }] });
      expect(r.headers['content-length']).toBe(String(r.out.length));
      expect(r.seen.equals(body)).toBe(true);
    }
  });

  it('a binary answer: the JSON header grows, Inference-Header-Content-Length with it, the tensor bytes untouched', () => {
    const header = Buffer.from('{"model_name":"add","model_version":"1","outputs":[{"name":"sum","datatype":"FP32","shape":[1,3],"parameters":{"binary_data_size":12}}]}');
    const data = Buffer.from(new Float32Array([1, 2, 3]).buffer);
    const whole = Buffer.concat([header, data]);
    const r = relay(whole, [header.length - 3, header.length + 2], 'model_name', 'triton-add', {
      'content-length': String(whole.length),
      'inference-header-content-length': String(header.length),
    });
    const n = Number(r.headers['inference-header-content-length']);
    expect(n).toBe(header.length + 7);
    expect(r.headers['content-length']).toBe(String(whole.length + 7));
    expect(JSON.parse(r.out.subarray(0, n).toString())).toMatchObject({ model_name: 'triton-add' });
    expect(r.out.subarray(n).equals(data)).toBe(true);
  });

  it('model metadata: the top-level name, not the tensors\'', () => {
    const meta = Buffer.from('{"name":"add","versions":["1"],"platform":"python","inputs":[{"name":"a","datatype":"FP32","shape":[-1,-1]}]}');
    const r = relay(meta, [3], 'name', 'sum', { 'content-length': String(meta.length) });
    expect(JSON.parse(r.out.toString())).toEqual({ ...JSON.parse(meta.toString()), name: 'sum' });
  });

  it('what has no name passes unchanged: an error, an empty answer, an answer too large to hold', () => {
    for (const b of [Buffer.from('{"error":"Model version not ready"}'), Buffer.alloc(0), Buffer.from('not json')]) {
      const r = relay(b, b.length > 4 ? [4] : [], 'model_name', 'sum', { 'content-length': String(b.length) });
      expect(r.out.equals(b)).toBe(true);
      expect(r.headers['content-length']).toBe(String(b.length));
    }
    // The name after 64 KiB of other members is not looked for: the answer is relayed as it is.
    const big = Buffer.from(`{"outputs":[${'1,'.repeat(40_000)}1],"model_name":"add"}`);
    const r = relay(big, [10_000, 50_000, 70_000], 'model_name', 'sum', { 'content-length': String(big.length) });
    expect(r.out.equals(big)).toBe(true);
  });
});

describe('renameEvent', () => {
  it('renames one generate_stream event, leaves other events and comments as they are', () => {
    const value = Buffer.from(JSON.stringify('triton-stream'));
    expect(renameEvent(Buffer.from('data: {"model_name":"stream","model_version":"1","text_output":"w0"}\n\n'), 'model_name', value).toString()).toBe(
      'data: {"model_name":"triton-stream","model_version":"1","text_output":"w0"}\n\n',
    );
    expect(renameEvent(Buffer.from('data:{"model_name":"stream"}\r\n\r\n'), 'model_name', value).toString()).toBe('data:{"model_name":"triton-stream"}\r\n\r\n');
    for (const e of ['data: {"error":"Traceback"}\n\n', ': keep-alive\n\n', 'data: [DONE]\n\n']) expect(renameEvent(Buffer.from(e), 'model_name', value).toString()).toBe(e);
  });
});
