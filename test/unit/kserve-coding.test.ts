/**
 * The KServe adapter's request codings (coding.ts) and the paths added with them: which content codings an endpoint
 * takes, bounded decoding, the model configuration endpoint, and the administrative APIs named for their refusal.
 */
import { deflateSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../src/core/errors.ts';
import { DECODE_TOTAL_BYTES, decodeBody, requestCoding } from '../../src/protocols/kserve/coding.ts';
import { administrativeApi, parsePath, upstreamPath } from '../../src/protocols/kserve/operations.ts';
import { headerLength, inferenceHeader } from '../../src/protocols/kserve/request.ts';

function refusal(f: () => unknown): GatewayError {
  try {
    f();
  } catch (err) {
    if (err instanceof GatewayError) return err;
    throw err;
  }
  throw new Error('expected a refusal');
}

describe('request codings', () => {
  it('infer takes gzip and deflate (any case), every endpoint identity; the rest is 415 naming what is taken', () => {
    expect(requestCoding({}, true, 'infer')).toBeUndefined();
    expect(requestCoding({ 'content-encoding': 'identity' }, false, 'generate')).toBeUndefined();
    expect(requestCoding({ 'content-encoding': 'GZIP' }, true, 'infer')).toBe('gzip');
    expect(requestCoding({ 'content-encoding': 'deflate' }, true, 'infer')).toBe('deflate');
    const br = refusal(() => requestCoding({ 'content-encoding': 'br' }, true, 'infer'));
    expect([br.def.code, br.headers]).toEqual(['TG_UNSUPPORTED_MEDIA_TYPE', { 'accept-encoding': 'gzip, deflate' }]);
    const gen = refusal(() => requestCoding({ 'content-encoding': 'gzip' }, false, 'generate'));
    expect([gen.def.code, gen.headers, gen.message.includes('generate')]).toEqual(['TG_UNSUPPORTED_MEDIA_TYPE', { 'accept-encoding': 'identity' }, true]);
    expect(refusal(() => requestCoding({ 'content-encoding': 'gzip, gzip' }, true, 'infer')).def.code).toBe('TG_UNSUPPORTED_MEDIA_TYPE');
  });

  it('decodes within the limit; past it 413, before inflating the rest; bad data 400', async () => {
    const text = Buffer.from('{"inputs":[]}');
    expect((await decodeBody(gzipSync(text), 'gzip', 100)).equals(text)).toBe(true);
    expect((await decodeBody(deflateSync(text), 'deflate', 100)).equals(text)).toBe(true);
    await expect(decodeBody(gzipSync(Buffer.alloc(1 << 20)), 'gzip', 1000)).rejects.toMatchObject({ def: { code: 'TG_PAYLOAD_TOO_LARGE' } });
    await expect(decodeBody(text, 'gzip', 1000)).rejects.toMatchObject({ def: { code: 'TG_INVALID_REQUEST' } });
    await expect(decodeBody(gzipSync(text), 'deflate', 1000)).rejects.toMatchObject({ def: { code: 'TG_INVALID_REQUEST' } });
  });

  it('decodings in flight share one process-wide allowance of output: past it 503, and it is given back', async () => {
    const text = Buffer.from('{"inputs":[]}');
    const half = DECODE_TOTAL_BYTES / 2;
    const big = gzipSync(Buffer.alloc(1 << 16));
    // Two decodings that may each produce half the allowance fill it; a third at the same time is refused.
    const two = [decodeBody(big, 'gzip', half), decodeBody(big, 'gzip', half)];
    await expect(decodeBody(gzipSync(text), 'gzip', 100)).rejects.toMatchObject({ def: { code: 'TG_OVERLOADED' } });
    await Promise.all(two);
    expect((await decodeBody(gzipSync(text), 'gzip', 100)).equals(text)).toBe(true);
  });

  it('frames the binary header against the length given (a decoded body), not Content-Length', () => {
    const headers = { 'inference-header-content-length': '40', 'content-length': '30' };
    expect(refusal(() => headerLength(headers, 1000)).def.code).toBe('TG_INVALID_TENSOR_HEADER');
    expect(headerLength(headers, 1000, 52)).toBe(40);
    const header = Buffer.from(JSON.stringify({ inputs: [{ name: 'a', parameters: { binary_data_size: 12 } }] }));
    expect(inferenceHeader(header, header.length, header.length + 12)).toMatchObject({ inputs: [{ name: 'a' }] });
    expect(refusal(() => inferenceHeader(header, header.length, header.length + 13)).def.code).toBe('TG_INVALID_TENSOR_HEADER');
    expect(refusal(() => inferenceHeader(header.subarray(0, 10), 10, undefined)).def.code).toBe('TG_INVALID_TENSOR_HEADER');
  });
});

describe('paths', () => {
  it('the model configuration is a model endpoint, versions included', () => {
    expect(parsePath('/models/add/config')).toEqual({ operation: 'model.config', method: 'GET', model: 'add', version: undefined });
    expect(parsePath('/models/add/versions/2/config')).toEqual({ operation: 'model.config', method: 'GET', model: 'add', version: '2' });
    expect(upstreamPath(parsePath('/models/sum/versions/2/config')!, 'add')).toBe('/v2/models/add/versions/2/config');
    expect(parsePath('/models/add/config/')).toBeUndefined();
  });

  it('/models/stats is the statistics API, not a model; administrative paths are named, others are not', () => {
    expect(parsePath('/models/stats')).toBeUndefined();
    expect(parsePath('/models/%73tats')).toBeUndefined();
    expect(parsePath('/models/%73tats/ready')).toMatchObject({ operation: 'model.ready', model: 'stats' });
    expect(parsePath('/models/stats/ready')).toMatchObject({ operation: 'model.ready', model: 'stats' });
    for (const [p, api] of [
      ['/models/stats', 'statistics'],
      ['/models/add/stats', 'statistics'],
      ['/models/add/versions/1/stats', 'statistics'],
      ['/repository/index', 'repository'],
      ['/repository/models/add/load', 'repository'],
      ['/trace/setting', 'trace'],
      ['/models/add/trace/setting', 'trace'],
      ['/logging', 'logging'],
      ['/systemsharedmemory/region/x/register', 'shared memory'],
      ['/cudasharedmemory/status', 'shared memory'],
    ] as const) {
      expect(administrativeApi(p), p).toBe(api);
    }
    for (const p of ['/models/add/infer/x', '/repositoryx', '/loggingx', '/models/add/statsx', '/health']) expect(administrativeApi(p), p).toBeUndefined();
  });
});

describe('duplicate members (wire/json-duplicates.ts)', () => {
  it('finds a name given twice in any one object, and only there', async () => {
    const { duplicateMember } = await import('../../src/wire/json-duplicates.ts');
    for (const [text, dup] of [
      ['{"a":1,"a":2}', 'a'],
      ['{"inputs":[{"name":"a","shape":[1],"shape":[2]}]}', 'shape'],
      ['{"p":{"x":1,"y":{"x":2},"x":3}}', 'x'],
      ['{"a":"\\"a\\":1,","a":0}', 'a'],
      ['{"\\u0061":1,"a":2}', 'a'],
      ['{"d":[1,2,{"k":1,"k":2}]}', 'k'],
    ] as const) {
      expect(duplicateMember(text), text).toBe(dup);
      expect(() => JSON.parse(text), text).not.toThrow();
    }
    for (const text of ['{}', '{"a":{"a":{"a":1}}}', '{"a":[{"b":1},{"b":2}],"b":"a,\\"b\\":"}', '{"s":["a","a"],"t":"{\\"x\\":1,\\"x\\":2}"}', `{"data":[${Array.from({ length: 1000 }, (_, i) => i).join(',')}]}`]) {
      expect(duplicateMember(text), text).toBeUndefined();
    }
  });
});

describe('sequence ids (sequence.ts)', () => {
  it('maps a caller\'s id into its own namespace, in place, the rest of the bytes as sent', async () => {
    const { callerSequence, namespaced } = await import('../../src/protocols/kserve/sequence.ts');
    const a = callerSequence('spiffe://x/a', 7);
    expect(Number.isSafeInteger(a) && (a as number) > 0).toBe(true);
    expect(callerSequence('spiffe://x/a', 7)).toBe(a);
    expect(callerSequence('spiffe://x/b', 7)).not.toBe(a);
    expect(callerSequence('spiffe://x/a', '7')).toMatch(/^tg-[0-9a-f]{32}$/);
    const text = '{"inputs":[{"data":[1.50,12345678901234567890]}], "parameters" : { "priority":1, "sequence_id" : 7 ,"sequence_start":true}}';
    const m = namespaced(Buffer.from(text), undefined, 7, 'spiffe://x/a');
    expect(m.sequence).toBe(a);
    expect(m.data.toString()).toBe(text.replace('"sequence_id" : 7 ', `"sequence_id" : ${a} `));
    // Asked to map an id the body does not name there (a caller's bug): refused, never forwarded with the id unmapped.
    expect(() => namespaced(Buffer.from('{"parameters":{"priority":1}}'), undefined, 7, 'spiffe://x/a')).toThrow(expect.objectContaining({ code: 'TG_INTERNAL' }));
    const header = Buffer.from('{"inputs":[],"parameters":{"sequence_id":"s"}}');
    const b = namespaced(Buffer.concat([header, Buffer.from([1, 2, 3, 4])]), header.length, 's', 'spiffe://x/a');
    expect(b.data.subarray(0, b.headerLength).toString()).toBe(`{"inputs":[],"parameters":{"sequence_id":${JSON.stringify(b.sequence)}}}`);
    expect([...b.data.subarray(b.headerLength)]).toEqual([1, 2, 3, 4]);
  });

  it('a generate body\'s top-level sequence_id is mapped in place too, the same id as in parameters', async () => {
    const { callerSequence, namespaced } = await import('../../src/protocols/kserve/sequence.ts');
    const text = '{ "text_input":"sequence_id", "sequence_id" : 7, "parameters":{"sequence_id":9}}';
    const seven = callerSequence('spiffe://x/a', 7);
    expect(namespaced(Buffer.from(text), undefined, 7, 'spiffe://x/a', 'top').data.toString()).toBe(text.replace('"sequence_id" : 7', `"sequence_id" : ${seven}`));
    const none = '{"text_input":"x","parameters":{"sequence_id":9}}';
    expect(() => namespaced(Buffer.from(none), undefined, 9, 'spiffe://x/a', 'top')).toThrow(expect.objectContaining({ code: 'TG_INTERNAL' }));
    const top = namespaced(Buffer.from('{"text_input":"x","sequence_id":"s"}'), undefined, 's', 'spiffe://x/a', 'top');
    const inner = namespaced(Buffer.from('{"text_input":"x","parameters":{"sequence_id":"s"}}'), undefined, 's', 'spiffe://x/a');
    expect(top.sequence).toBe(inner.sequence);
    expect(top.sequence).toBe(callerSequence('spiffe://x/a', 's'));
    expect(top.data.toString()).toBe(`{"text_input":"x","sequence_id":${JSON.stringify(top.sequence)}}`);
  });

  it('a number is the id as written: uint64 ids past 2^53 stay apart; infer refuses one Triton cannot read as a uint64', async () => {
    const { callerSequence, namespaced } = await import('../../src/protocols/kserve/sequence.ts');
    const p = 'spiffe://x/a';
    const body = (id: string): Buffer => Buffer.from(`{"inputs":[],"parameters":{"sequence_id":${id}}}`);
    const map = (id: string, place?: 'parameters'): number | string => namespaced(body(id), undefined, JSON.parse(id) as number, p, place).sequence;
    // JSON.parse reads both as 18446744073709552000: Triton reads two sequences.
    expect(map('18446744073709551615')).not.toBe(map('18446744073709551614'));
    expect(map('9007199254740993')).not.toBe(map('9007199254740992'));
    // Ids up to 2^53 map as they always have; a generate body's id maps to the same as infer's.
    expect(map('7')).toBe(callerSequence(p, 7));
    expect(map('18446744073709551615', 'parameters')).toBe(map('18446744073709551615'));
    // Binary header: the same.
    const header = body('18446744073709551615');
    expect(namespaced(Buffer.concat([header, Buffer.from([1])]), header.length, 18446744073709551615, p).sequence).toBe(map('18446744073709551615'));
    for (const bad of ['-3', '1.5', '1e3', '5.0', '18446744073709551616']) {
      // Triton: "Unable to parse 'sequence_id'" (a uint64 as written, or a string).
      expect(() => map(bad), bad).toThrow(/unsigned 64-bit integer/);
      // generate hands any number to the model as a request parameter: mapped.
      expect(typeof map(bad, 'parameters'), bad).toBe('number');
    }
  });
});
