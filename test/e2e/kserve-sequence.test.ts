/**
 * Sequence ids through the gateway against a real stateful model: Triton's sequence batcher (direct strategy) in
 * front of `accumulate` (test/python/triton_sequence_models.py), which answers the texts of its sequence so far and
 * the correlation id Triton gave it. Triton keeps one sequence-id space per model for everyone; through the gateway
 * two callers (two real JWT identities) naming the same sequence_id each get a sequence of their own: neither feeds,
 * reads, restarts nor ends the other's, and the model's correlation id is the mapped one, never the id sent.
 * Generate calls cannot reach a sequence-batched model at all: Triton makes no correlation id of a generate body's
 * sequence_id (it hands it to the model as a request parameter), so it refuses them; the gateway passes that on as
 * Triton wrote it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, type TestGateway } from '../helpers/gateway.ts';
import { AGENT, auth, kserveBackend, kserveRoute, startKServeGateway } from '../helpers/kserve.ts';
import { SEQUENCE_MODELS, startTriton, type Triton } from '../helpers/triton.ts';

let triton: Triton;
let gw: TestGateway;

beforeAll(async () => {
  triton = await startTriton(SEQUENCE_MODELS);
  gw = await startKServeGateway({
    'models.yaml': kserveBackend('stateful', { url: triton.url, healthCheck: { intervalMs: 1000 } }) + kserveRoute('models', ['stateful'], { models: [{ name: 'accumulate', backend: 'stateful' }] }),
  });
  await eventually(async () => (await fetch(`${gw.url}/v2/health/ready`, { headers: auth(gw) })).status === 200, 20_000, 'the stateful Triton to pass its health checks');
}, 180_000);

afterAll(async () => {
  await gw?.stop();
  await triton?.stop();
}, 60_000);

const OTHER = `${AGENT}/other`;
const THIRD = `${AGENT}/third`;

interface Said {
  readonly status: number;
  /** The texts of the sequence so far, as the model answered them. */
  readonly texts?: string;
  /** The correlation id the model was given. */
  readonly corr?: string;
  readonly error?: string;
}

/** One infer call to `accumulate` (JSON tensors, or the binary tensor extension). */
async function say(who: string, text: string, parameters: Record<string, unknown>, binary = false): Promise<Said> {
  const headers: Record<string, string> = { ...auth(gw, who), 'content-type': 'application/json' };
  let body: Buffer;
  if (binary) {
    const data = Buffer.concat([Buffer.alloc(4), Buffer.from(text)]);
    data.writeUInt32LE(Buffer.byteLength(text), 0);
    const header = Buffer.from(JSON.stringify({ inputs: [{ name: 'text_input', datatype: 'BYTES', shape: [1, 1], parameters: { binary_data_size: data.length } }], parameters }));
    body = Buffer.concat([header, data]);
    headers['inference-header-content-length'] = String(header.length);
  } else {
    body = Buffer.from(JSON.stringify({ inputs: [{ name: 'text_input', datatype: 'BYTES', shape: [1, 1], data: [text] }], parameters }));
  }
  const res = await fetch(`${gw.url}/v2/models/accumulate/infer`, { method: 'POST', headers, body });
  const json = (await res.json()) as { outputs?: { data: string[] }[]; error?: string };
  if (res.status !== 200) return { status: res.status, error: json.error ?? '' };
  const [texts, corr] = json.outputs![0]!.data[0]!.split(' |');
  return { status: 200, texts: texts!, corr: corr! };
}

describe('a stateful model (Triton sequence batcher) through a shared gateway', () => {
  it('two callers naming the same sequence_id each get their own sequence: none feeds, reads, restarts or ends another\'s', async () => {
    for (const id of [5, 'chat']) {
      const a1 = await say(AGENT, 'a1', { sequence_id: id, sequence_start: true });
      expect(a1, JSON.stringify(a1)).toMatchObject({ status: 200, texts: 'a1' });
      // The model's correlation id is the caller's mapped id, of the same type, never the id sent.
      expect(a1.corr).not.toBe(String(id));
      expect(a1.corr).toMatch(typeof id === 'number' ? /^[1-9][0-9]*$/ : /^tg-[0-9a-f]{32}$/);
      // Another caller starting "the same" sequence starts its own: the first is not restarted.
      const b1 = await say(OTHER, 'b1', { sequence_id: id, sequence_start: true });
      expect(b1, JSON.stringify(b1)).toMatchObject({ status: 200, texts: 'b1' });
      expect(b1.corr).not.toBe(a1.corr);
      expect(await say(AGENT, 'a2', { sequence_id: id })).toEqual({ status: 200, texts: 'a1 a2', corr: a1.corr });
      expect(await say(OTHER, 'b2', { sequence_id: id }, true)).toEqual({ status: 200, texts: 'b1 b2', corr: b1.corr });
      // Ending "the same" sequence ends the caller's own.
      expect(await say(OTHER, 'b3', { sequence_id: id, sequence_end: true })).toEqual({ status: 200, texts: 'b1 b2 b3', corr: b1.corr });
      expect(await say(AGENT, 'a3', { sequence_id: id }, true)).toEqual({ status: 200, texts: 'a1 a2 a3', corr: a1.corr });
      // A third caller cannot continue it: to Triton its id names no sequence that has started.
      const c = await say(THIRD, 'c1', { sequence_id: id });
      expect(c.status).toBe(400);
      expect(c.error).toMatch(/START flag/);
      expect(c.error).not.toContain(String(a1.corr));
      expect(await say(AGENT, 'a4', { sequence_id: id, sequence_end: true })).toEqual({ status: 200, texts: 'a1 a2 a3 a4', corr: a1.corr });
    }
  });

  it('uint64 ids past 2^53 name two sequences, as at Triton', async () => {
    const say64 = async (id: string, text: string, flags: string): Promise<string> => {
      const body = `{"inputs":[{"name":"text_input","datatype":"BYTES","shape":[1,1],"data":["${text}"]}],"parameters":{"sequence_id":${id}${flags}}}`;
      const res = await fetch(`${gw.url}/v2/models/accumulate/infer`, { method: 'POST', headers: auth(gw), body });
      const json = (await res.json()) as { outputs?: { data: string[] }[]; error?: string };
      expect(res.status, json.error).toBe(200);
      return json.outputs![0]!.data[0]!.split(' |')[0]!;
    };
    expect(await say64('18446744073709551615', 'x1', ',"sequence_start":true')).toBe('x1');
    expect(await say64('18446744073709551614', 'y1', ',"sequence_start":true')).toBe('y1');
    expect(await say64('18446744073709551615', 'x2', ',"sequence_end":true')).toBe('x1 x2');
    expect(await say64('18446744073709551614', 'y2', ',"sequence_end":true')).toBe('y1 y2');
  });

  it('generate and generate_stream cannot reach it: Triton refuses them (no correlation id), passed on as written', async () => {
    for (const op of ['generate', 'generate_stream']) {
      for (const body of [{ text_input: 'x', parameters: { sequence_id: 5, sequence_start: true } }, { text_input: 'x', sequence_id: 'chat', sequence_start: true }]) {
        const text = JSON.stringify(body);
        const direct = await fetch(`${triton.url}/v2/models/accumulate/${op}`, { method: 'POST', body: text });
        const via = await fetch(`${gw.url}/v2/models/accumulate/${op}`, { method: 'POST', headers: auth(gw), body: text });
        const [d, v] = [await direct.text(), await via.text()];
        expect(d).toMatch(/must specify a non-zero or non-empty correlation ID/);
        expect({ status: via.status, body: v }).toEqual({ status: direct.status, body: d });
      }
    }
  });
});
