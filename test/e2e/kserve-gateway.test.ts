/**
 * The KServe v2 adapter through a real gateway in front of a real Triton Inference Server (PyTriton's tritonserver on
 * CPU, test/helpers/triton.ts), under the default policies (with the test models granted):
 * - server and model health and metadata; infer with JSON tensors and with binary tensors (raw, and with NVIDIA's
 *   tritonclient from the Triton virtualenv), answers identical to Triton's own;
 * - generate, and generate_stream relayed event by event as Triton produces them;
 * - versioned paths (`/versions/<v>`: metadata, ready, infer, generate, generate_stream) to the backend serving the
 *   model under its name there, the version in the policy input and the audit record, Triton's own version errors;
 * - Triton's own errors passed through (unknown model, bad tensors, a failing or breaking stream model, an error
 *   inside a 200); the gateway's errors in KServe's shape with their stable code: malformed JSON, unknown model,
 *   lying Inference-Header-Content-Length, policy denial, rate limit;
 * - the audit record (metering counted or unmetered, usage, target) and the request metrics.
 */
import { execFile } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryLog } from '../../src/audit/query.ts';
import type { Call } from '../../src/core/call.ts';
import { eventually, recordCalls, type TestGateway } from '../helpers/gateway.ts';
import { AGENT, SUPPORT, TRITON_ROUTE_MODELS, WITHDRAWN_VERSION, auth, binaryAddRequest, kserveBackend, kservePolicyGateway, kserveRoute, parseBinaryAnswer, readEvents, startKServeGateway } from '../helpers/kserve.ts';
import { freePort, listenLoopback } from '../helpers/net.ts';
import { OtlpReceiver } from '../helpers/otlp-receiver.ts';
import { startTriton, TRITON_PYTHON, type Triton } from '../helpers/triton.ts';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6390';
const PREFIX = `tgk${process.pid % 10000}${Date.now().toString(36)}:`;
const RATED = `${AGENT}/rated`;

let triton: Triton;
let gw: TestGateway;
let finished: Call[] = [];
/** A server that accepts connections and never answers (a hung backend), and a port nobody listens on. */
let hung: Server;
const hungSockets = new Set<Socket>();
let hungPort: number;
let deadPort: number;
let receiver: OtlpReceiver;
const OTEL_VARS = ['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_PROTOCOL', 'OTEL_BSP_SCHEDULE_DELAY'] as const;
const savedEnv: Record<string, string | undefined> = {};

const ADD = { inputs: [{ name: 'a', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] }, { name: 'b', datatype: 'FP32', shape: [1, 3], data: [10, 20, 30] }] };

beforeAll(async () => {
  triton = await startTriton();
  hung = createServer((s) => {
    hungSockets.add(s);
    s.on('close', () => hungSockets.delete(s));
  });
  hungPort = await listenLoopback(hung, 0);
  deadPort = await freePort();
  receiver = new OtlpReceiver();
  await receiver.start();
  for (const k of OTEL_VARS) savedEnv[k] = process.env[k];
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = receiver.httpUrl;
  process.env.OTEL_EXPORTER_OTLP_PROTOCOL = 'http/protobuf';
  process.env.OTEL_BSP_SCHEDULE_DELAY = '50';
  gw = await startKServeGateway(
    {
      'models.yaml':
        kserveBackend('triton', { url: triton.url, healthCheck: { intervalMs: 1000 } }) +
        kserveRoute('models', ['triton'], {
          http: { maxBodyBytes: 64 * 1024 * 1024 },
          models: TRITON_ROUTE_MODELS,
          kserve: { countStreamEvents: true },
        }) +
        kserveBackend('hung', { url: `http://127.0.0.1:${hungPort}`, healthCheck: { enabled: false }, retries: { attempts: 1 }, timeouts: { headersMs: 300 } }) +
        kserveBackend('dead', { url: `http://127.0.0.1:${deadPort}`, healthCheck: { enabled: false }, retries: { attempts: 1 }, outlierDetection: { consecutiveFailures: 1 } }) +
        kserveRoute('faults', ['hung', 'dead'], { models: [{ name: 'add', backend: 'hung' }, { name: 'echo', backend: 'dead' }] }, '/faults/v2') +
        // The same backend without event counting: generate_stream is unmetered there.
        kserveRoute('plain', ['triton'], { models: [{ name: 'stream', backend: 'triton' }] }, '/plain/v2') +
        `---
apiVersion: tollgate.dev/v1alpha1
kind: RateLimit
metadata: { name: two-a-minute }
spec: { match: { protocols: [kserve], principals: ["${RATED}"] }, key: [principal], requests: 2, per: 60s }
`,
    },
    kservePolicyGateway(`  redis: { url: ${JSON.stringify(REDIS_URL)}, keyPrefix: ${JSON.stringify(PREFIX)} }\n`),
  );
  finished = recordCalls(gw);
  await eventually(async () => (await fetch(`${gw.url}/v2/health/ready`, { headers: auth(gw) })).status === 200, 20_000, 'the Triton pool to pass its health checks');
}, 180_000);

afterAll(async () => {
  await gw?.stop();
  await triton?.stop();
  for (const s of hungSockets) s.destroy();
  await new Promise((r) => hung?.close(r));
  await receiver?.close();
  for (const k of OTEL_VARS) {
    if (savedEnv[k] === undefined) delete process.env[k];
    else process.env[k] = savedEnv[k];
  }
}, 60_000);

async function callAfter(since: number): Promise<Call> {
  await eventually(() => finished.length > since, 5_000, 'the gateway to finish the call');
  return finished[since]!;
}

function post(path: string, body: unknown, headers: Record<string, string> = auth(gw)): Promise<Response> {
  return fetch(`${gw.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
}

function direct(path: string, body?: unknown): Promise<Response> {
  return body === undefined ? fetch(`${triton.url}${path}`) : fetch(`${triton.url}${path}`, { method: 'POST', body: JSON.stringify(body) });
}

async function kserveError(res: Response, status: number, code: string): Promise<string> {
  expect(res.status).toBe(status);
  const body = (await res.json()) as { error: unknown; code: unknown };
  expect(typeof body.error).toBe('string');
  expect(body.code).toBe(code);
  return body.error as string;
}

describe('health and metadata', () => {
  it('answers live and ready for the route, and relays the server and model metadata as Triton wrote it', async () => {
    const live = await fetch(`${gw.url}/v2/health/live`, { headers: auth(gw) });
    expect(live.status).toBe(200);
    expect(await live.text()).toBe('');
    expect((await fetch(`${gw.url}/v2/health/ready`, { headers: auth(gw) })).status).toBe(200);
    const server = await fetch(`${gw.url}/v2`, { headers: auth(gw) });
    expect(server.status).toBe(200);
    // Triton's, the extensions of the administrative APIs the gateway does not expose left out (kserve-spec.test.ts).
    const own = (await (await direct('/v2')).json()) as { extensions: string[] };
    expect(await server.json()).toEqual({ ...own, extensions: own.extensions.filter((e) => !/^(model_repository|statistics|trace|logging|system_shared_memory|cuda_shared_memory)\b/.test(e)) });
    for (const path of ['/v2/models/add', '/v2/models/add/versions/1', '/v2/models/stream']) {
      const res = await fetch(`${gw.url}${path}`, { headers: auth(gw) });
      expect(res.status, path).toBe(200);
      expect(await res.text()).toBe(await (await direct(path)).text());
    }
    const ready = await fetch(`${gw.url}/v2/models/echo/ready`, { headers: auth(gw) });
    expect(ready.status).toBe(200);
  });

  it('HEAD on every GET endpoint answers as GET would, without a body; other methods get 405 naming what is allowed', async () => {
    for (const path of ['/v2', '/v2/health/live', '/v2/health/ready', '/v2/models/add', '/v2/models/add/versions/1', '/v2/models/add/ready', '/v2/models/add/versions/1/ready', '/v2/models/add/versions/9', '/v2/models/sum', '/v2/models/sum/ready']) {
      const get = await fetch(`${gw.url}${path}`, { headers: auth(gw) });
      const text = await get.text();
      const head = await fetch(`${gw.url}${path}`, { method: 'HEAD', headers: auth(gw) });
      expect(head.status, path).toBe(get.status);
      expect(head.headers.get('content-length'), path).toBe(String(Buffer.byteLength(text)));
      expect(head.headers.get('content-type'), path).toBe(get.headers.get('content-type'));
      expect(await head.text(), path).toBe('');
    }
    const postLive = await fetch(`${gw.url}/v2/health/live`, { method: 'POST', headers: auth(gw), body: '{}' });
    expect(postLive.headers.get('allow')).toBe('GET, HEAD');
    await kserveError(postLive, 405, 'TG_METHOD_NOT_ALLOWED');
    const getInfer = await fetch(`${gw.url}/v2/models/add/infer`, { headers: auth(gw) });
    expect(getInfer.headers.get('allow')).toBe('POST');
    await kserveError(getInfer, 405, 'TG_METHOD_NOT_ALLOWED');
  });

  it('a path Triton does not serve is no endpoint here either: a trailing slash, a bare versions segment (404)', async () => {
    for (const path of ['/v2/models/add/', '/v2/models/add/ready/', '/v2/models/add/versions', '/v2/models/add/versions/1/']) {
      expect((await direct(path)).status, path).toBe(404);
      await kserveError(await fetch(`${gw.url}${path}`, { headers: auth(gw) }), 404, 'TG_NOT_FOUND');
    }
  });

  it('needs a token like every route, and a model grant for a model', async () => {
    expect((await fetch(`${gw.url}/v2/health/live`)).status).toBe(401);
    await kserveError(await fetch(`${gw.url}/v2/models/add`, { headers: auth(gw, SUPPORT) }), 403, 'TG_POLICY_DENIED');
    // Server health and metadata name no model: open to any caller with a grant.
    expect((await fetch(`${gw.url}/v2`, { headers: auth(gw, SUPPORT) })).status).toBe(200);
  });
});

describe('infer', () => {
  it('JSON tensors: the answer is Triton\'s, byte for byte; policies saw the tensors\' shapes, not their data', async () => {
    const since = finished.length;
    const res = await post('/v2/models/add/infer', ADD);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(JSON.parse(text)).toMatchObject({ model_name: 'add', outputs: [{ name: 'sum', datatype: 'FP32', shape: [1, 3], data: [11, 22, 33] }] });
    expect(text).toBe(await (await direct('/v2/models/add/infer', ADD)).text());
    const call = await callAfter(since);
    expect(call.operation).toBe('infer');
    expect(call.target).toMatchObject({ kind: 'model', name: 'add', server: 'triton', local: 'add' });
    expect(call.args).toMatchObject({ inputs: [{ name: 'a', datatype: 'FP32', shape: [1, 3] }, { name: 'b', datatype: 'FP32', shape: [1, 3] }], binary: false });
    expect(JSON.stringify(call.args)).not.toContain('[1,2,3]');
    expect(call.model?.metering).toBe('unmetered');
  });

  it('binary tensors stream through: Inference-Header-Content-Length respected, the answer\'s binary output intact', async () => {
    const { body, headerLength } = binaryAddRequest([1.5, 2.5, -3], [0.25, 0.5, 4]);
    const since = finished.length;
    const res = await fetch(`${gw.url}/v2/models/add/infer`, {
      method: 'POST',
      headers: { ...auth(gw), 'content-type': 'application/octet-stream', 'inference-header-content-length': String(headerLength) },
      body,
    });
    expect(res.status).toBe(200);
    const answerHeader = Number(res.headers.get('inference-header-content-length'));
    const raw = Buffer.from(await res.arrayBuffer());
    const { header, values } = parseBinaryAnswer(raw, answerHeader);
    expect(values).toEqual([1.75, 3, 1]);
    expect(header).toMatchObject({ model_name: 'add', outputs: [{ name: 'sum', datatype: 'FP32', shape: [1, 3], parameters: { binary_data_size: 12 } }] });
    const viaTriton = await fetch(`${triton.url}/v2/models/add/infer`, { method: 'POST', headers: { 'inference-header-content-length': String(headerLength) }, body });
    expect(raw.equals(Buffer.from(await viaTriton.arrayBuffer()))).toBe(true);
    const call = await callAfter(since);
    expect(call.args).toMatchObject({ binary: true, body_bytes: body.length, inputs: [{ name: 'a', binary_data_size: 12 }, { name: 'b', binary_data_size: 12 }] });
    expect(call.transfer?.requestBytes).toBe(body.length);
  });

  it('a large binary request (8 MiB of tensors) streams through and adds up', async () => {
    const n = 1024 * 1024;
    const a = Array.from({ length: n }, (_, i) => i % 1000);
    const b = Array.from({ length: n }, () => 0.5);
    const { body, headerLength } = binaryAddRequest(a, b);
    const res = await fetch(`${gw.url}/v2/models/add/infer`, { method: 'POST', headers: { ...auth(gw), 'inference-header-content-length': String(headerLength) }, body });
    expect(res.status).toBe(200);
    const { values } = parseBinaryAnswer(Buffer.from(await res.arrayBuffer()), Number(res.headers.get('inference-header-content-length')));
    expect(values.length).toBe(n);
    expect(values[999]).toBe(999.5);
    expect(values[n - 1]).toBe(((n - 1) % 1000) + 0.5);
  });

  it('tritonclient (HTTP) sees the gateway as a Triton server: health, metadata, binary and JSON infer; a denial raises', async () => {
    const out = await promisify(execFile)(TRITON_PYTHON, ['test/python/triton_client.py', new URL(gw.url).host, gw.devToken(AGENT), gw.devToken(SUPPORT), 'triton-add'], { timeout: 60_000 });
    const report = JSON.parse(out.stdout) as Record<string, unknown>;
    expect(report).toMatchObject({ live: true, ready: true, model_ready: true, server: { name: 'triton' }, model: { name: 'add' } });
    expect(report.binary).toMatchObject({ sum: [[1.5, 2.25, 3.125]], response: { model_name: 'add', id: 'tc-True' } });
    expect(report.json).toMatchObject({ sum: [[1.5, 2.25, 3.125]], response: { model_name: 'add', id: 'tc-False' } });
    expect(report.denied).toMatchObject({ status: '403' });
    expect((report.denied as { message: string }).message).toContain('may not use model add');
    // Under the route's other name for `add`: the name tritonclient reads back is that one, and the binary answer
    // (whose JSON header grew by the longer name) still splits where Inference-Header-Content-Length says.
    expect(report.renamed).toMatchObject({ model: { name: 'triton-add' }, binary: { sum: [[1.5, 2.25, 3.125]], response: { model_name: 'triton-add', id: 'tc-True' } } });
  });

  it('refuses an Inference-Header-Content-Length that does not frame the JSON header, in KServe\'s shape', async () => {
    const { body, headerLength } = binaryAddRequest([1, 2, 3], [4, 5, 6]);
    const send = (length: string, b: Buffer = body): Promise<Response> =>
      fetch(`${gw.url}/v2/models/add/infer`, { method: 'POST', headers: { ...auth(gw), 'inference-header-content-length': length }, body: b });
    // Longer than the header: binary bytes read as JSON. Shorter: a truncated header.
    expect(await kserveError(await send(String(headerLength + 5)), 400, 'TG_INVALID_TENSOR_HEADER')).toContain('does not frame a JSON inference header');
    expect(await kserveError(await send(String(headerLength - 1)), 400, 'TG_INVALID_TENSOR_HEADER')).toContain('does not frame a JSON inference header');
    expect(await kserveError(await send(String(body.length + 1)), 400, 'TG_INVALID_TENSOR_HEADER')).toContain('larger than the whole body');
    await kserveError(await send('12abc'), 400, 'TG_INVALID_TENSOR_HEADER');
    await kserveError(await send('0'), 400, 'TG_INVALID_TENSOR_HEADER');
    // Over the route's cap on the header (1 MiB by default) whatever the body.
    expect(await kserveError(await send(String(2 * 1024 * 1024), Buffer.alloc(3 * 1024 * 1024)), 400, 'TG_INVALID_TENSOR_HEADER')).toContain('over the 1048576 bytes');
    // A header that declares less tensor data than the body carries.
    expect(await kserveError(await send(String(headerLength), Buffer.concat([body, Buffer.alloc(8)])), 400, 'TG_INVALID_TENSOR_HEADER')).toContain('make');
    // The gateway still serves the next request on the same route.
    expect((await post('/v2/models/add/infer', ADD)).status).toBe(200);
  });

  it('passes Triton\'s own errors on (bad tensors, a model Triton does not have) and answers its own in KServe\'s shape', async () => {
    const wrong = { inputs: [{ name: 'a', datatype: 'INT32', shape: [1, 3], data: [1, 2, 3] }, ADD.inputs[1]] };
    const bad = await post('/v2/models/add/infer', wrong);
    expect(bad.status).toBe(400);
    const badText = await bad.text();
    expect(badText).toBe(await (await direct('/v2/models/add/infer', wrong)).text());
    expect(JSON.parse(badText)).toHaveProperty('error');
    // Routed by the pattern to Triton, which has no such model.
    const unknown = await post('/v2/models/triton-nope/infer', ADD);
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toEqual({ error: "Request for unknown model: 'nope' is not found" });
    // Not routed at all: the gateway's own answer (after the policy saw the name).
    expect(await kserveError(await post('/v2/models/unrouted/infer', ADD), 404, 'TG_MODEL_NOT_FOUND')).toContain('unrouted');
    await kserveError(await post('/v2/models/add/infer', '{"inputs": ['), 400, 'TG_PARSE_ERROR');
    await kserveError(await post('/v2/models/add/infer', '[1]'), 400, 'TG_INVALID_REQUEST');
    await kserveError(await fetch(`${gw.url}/v2/models/add/infer`, { headers: auth(gw) }), 405, 'TG_METHOD_NOT_ALLOWED');
    await kserveError(await fetch(`${gw.url}/v2/repository/index`, { method: 'POST', headers: auth(gw) }), 404, 'TG_NOT_FOUND');
  });

  it('a body over the route\'s limit is refused (413) before anything is forwarded; a hung or unreachable backend in KServe\'s shape', async () => {
    // The `plain` route keeps the Gateway's default limit (4 MiB); binary tensors are refused as soon as it is crossed.
    const { body, headerLength } = binaryAddRequest(Array.from({ length: 600_000 }, () => 1), Array.from({ length: 600_000 }, () => 2));
    const big = await fetch(`${gw.url}/plain/v2/models/stream/infer`, { method: 'POST', headers: { ...auth(gw), 'inference-header-content-length': String(headerLength) }, body });
    await kserveError(big, 413, 'TG_PAYLOAD_TOO_LARGE');
    const hangs = await post('/faults/v2/models/add/infer', ADD);
    expect(await kserveError(hangs, 504, 'TG_UPSTREAM_TIMEOUT')).toContain('hung');
    expect(await kserveError(await post('/faults/v2/models/echo/generate', { text_input: 'x' }), 502, 'TG_UPSTREAM_UNAVAILABLE')).toContain('dead');
    // The refused connection ejected the dead backend's only endpoint: the route is not ready.
    await kserveError(await fetch(`${gw.url}/faults/v2/health/ready`, { headers: auth(gw) }), 503, 'TG_UPSTREAM_NOT_READY');
  });

});

describe('model versions', () => {
  /** The audit records of KServe calls so far. */
  const records = (): Record<string, unknown>[] =>
    [...queryLog(join(gw.dir, '..', '.tollgate', 'audit'), { kinds: ['call'] })].map((l) => JSON.parse(l) as Record<string, unknown>).filter((r) => r.protocol === 'kserve');

  it('versioned infer, ready and metadata reach the model under its name at Triton, the version with it', async () => {
    let since = finished.length;
    const res = await post('/v2/models/add/versions/1/infer', { ...ADD, id: 'v-1' });
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(JSON.parse(text)).toMatchObject({ id: 'v-1', model_name: 'add', model_version: '1', outputs: [{ data: [11, 22, 33] }] });
    expect(text).toBe(await (await direct('/v2/models/add/versions/1/infer', { ...ADD, id: 'v-1' })).text());
    let call = await callAfter(since);
    expect(call.operation).toBe('infer');
    expect(call.target).toEqual({ kind: 'model', name: 'add', server: 'triton', local: 'add', version: '1' });
    // A route's other name for the model: the versioned path at Triton names `add`; the answer says `sum`.
    since = finished.length;
    const renamed = await post('/v2/models/sum/versions/1/infer', { ...ADD, id: 'v-2' });
    expect(renamed.status).toBe(200);
    const renamedText = await renamed.text();
    expect(renamedText).toBe((await (await direct('/v2/models/add/versions/1/infer', { ...ADD, id: 'v-2' })).text()).replace('"model_name":"add"', '"model_name":"sum"'));
    call = await callAfter(since);
    expect(call.target).toEqual({ kind: 'model', name: 'sum', server: 'triton', local: 'add', version: '1' });
    // Binary tensors on a versioned path (and a pattern's rewrite): the same streamed road.
    const { body, headerLength } = binaryAddRequest([1, 2, 3], [0.5, 0.5, 0.5]);
    const binary = await fetch(`${gw.url}/v2/models/triton-add/versions/1/infer`, { method: 'POST', headers: { ...auth(gw), 'inference-header-content-length': String(headerLength) }, body });
    expect(binary.status).toBe(200);
    const parsed = parseBinaryAnswer(Buffer.from(await binary.arrayBuffer()), Number(binary.headers.get('inference-header-content-length')));
    expect(parsed.values).toEqual([1.5, 2.5, 3.5]);
    expect(parsed.header).toMatchObject({ model_name: 'triton-add', model_version: '1' });
    since = finished.length;
    const ready = await fetch(`${gw.url}/v2/models/sum/versions/1/ready`, { headers: auth(gw) });
    expect(ready.status).toBe(200);
    expect(await ready.text()).toBe('');
    expect((await callAfter(since)).target).toMatchObject({ name: 'sum', local: 'add', version: '1' });
    const meta = await fetch(`${gw.url}/v2/models/sum/versions/1`, { headers: auth(gw) });
    expect(await meta.json()).toMatchObject({ name: 'sum', versions: ['1'] });
  });

  it('versioned generate and generate_stream (Triton\'s extension accepts versions too)', async () => {
    const res = await post('/v2/models/triton-echo/versions/1/generate', { text_input: 'hi' });
    expect(await res.json()).toEqual({ model_name: 'triton-echo', model_version: '1', text_output: 'hi' });
    const since = finished.length;
    const { status, events } = await readEvents(`${gw.url}/v2/models/stream/versions/1/generate_stream`, { text_input: 'repeat 3 1' }, auth(gw));
    expect(status).toBe(200);
    expect(events.map((e) => JSON.parse(e.data) as unknown)).toEqual([0, 1, 2].map((i) => ({ model_name: 'stream', model_version: '1', text_output: `w${i}` })));
    const call = await callAfter(since);
    expect(call.target).toMatchObject({ name: 'stream', version: '1' });
    expect(call.usage?.outputTokens).toBe(3);
  });

  it('a version Triton does not have: Triton\'s own error, passed on in KServe\'s shape', async () => {
    for (const [path, upstream, body] of [
      ['/v2/models/add/versions/7/infer', '/v2/models/add/versions/7/infer', ADD],
      ['/v2/models/sum/versions/7/infer', '/v2/models/add/versions/7/infer', ADD],
      ['/v2/models/sum/versions/7/ready', '/v2/models/add/versions/7/ready', undefined],
      ['/v2/models/sum/versions/7', '/v2/models/add/versions/7', undefined],
      ['/v2/models/echo/versions/x/generate', '/v2/models/echo/versions/x/generate', { text_input: 'hi' }],
    ] as const) {
      const since = finished.length;
      const res = body === undefined ? await fetch(`${gw.url}${path}`, { headers: auth(gw) }) : await post(path, body);
      const want = await direct(upstream, body);
      expect(want.status, upstream).toBeGreaterThanOrEqual(400);
      expect(res.status, path).toBe(want.status);
      const text = await res.text();
      expect(text, path).toBe(await want.text());
      expect(typeof (JSON.parse(text) as { error: unknown }).error, path).toBe('string');
      const call = await callAfter(since);
      expect(call.outcome, path).toBe('error');
      expect(call.target?.version, path).toBe(path.includes('/x/') ? 'x' : '7');
    }
  });

  it('the policy sees the version (a withdrawn one is refused before anything is forwarded), the audit records it', async () => {
    const since = finished.length;
    const refused = await post(`/v2/models/add/versions/${WITHDRAWN_VERSION}/infer`, ADD);
    expect(await kserveError(refused, 403, 'TG_POLICY_DENIED')).toContain(`version ${WITHDRAWN_VERSION} of model add is withdrawn`);
    const call = await callAfter(since);
    expect(call.outcome).toBe('denied');
    expect(call.transfer).toBeUndefined();
    // The same model without a version, or with another one, is served.
    expect((await post('/v2/models/add/infer', ADD)).status).toBe(200);
    await eventually(() => records().some((r) => (r.target as { version?: string } | undefined)?.version === WITHDRAWN_VERSION), 10_000, 'the denied call\'s audit record');
    expect(records().find((r) => (r.target as { version?: string } | undefined)?.version === WITHDRAWN_VERSION)).toMatchObject({
      operation: 'infer',
      outcome: 'denied',
      target: { kind: 'model', name: 'add', server: 'triton', version: WITHDRAWN_VERSION },
    });
    expect(records().find((r) => r.operation === 'infer' && r.outcome === 'ok' && (r.target as { name?: string } | undefined)?.name === 'sum' && (r.target as { version?: string } | undefined)?.version === '1')).toMatchObject({
      target: { kind: 'model', name: 'sum', server: 'triton', local: 'add', version: '1' },
    });
  });
});

describe('a model the route names otherwise', () => {
  /** Triton's answer with its name for the model replaced by the route's: the only bytes that may differ. */
  const renamedText = (text: string, key: string, from: string, to: string): string => {
    const was = `"${key}":"${from}"`;
    expect(text).toContain(was);
    return text.replace(was, `"${key}":"${to}"`);
  };

  it('infer answers with the route\'s name (alias or pattern), the rest as Triton wrote it', async () => {
    const since = finished.length;
    const res = await post('/v2/models/sum/infer', ADD);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(JSON.parse(text)).toMatchObject({ model_name: 'sum', outputs: [{ data: [11, 22, 33] }] });
    expect(text).toBe(renamedText(await (await direct('/v2/models/add/infer', ADD)).text(), 'model_name', 'add', 'sum'));
    const call = await callAfter(since);
    expect(call.target).toMatchObject({ name: 'sum', local: 'add' });
    // Telemetry and audit still say which model answered at the backend.
    expect(call.model?.response).toBe('add');
    // A longer name: Content-Length follows.
    const longer = await post('/v2/models/triton-add/infer', { ...ADD, id: 'req-7' });
    const longerText = await longer.text();
    expect(Number(longer.headers.get('content-length'))).toBe(Buffer.byteLength(longerText));
    expect(longerText).toBe(renamedText(await (await direct('/v2/models/add/infer', { ...ADD, id: 'req-7' })).text(), 'model_name', 'add', 'triton-add'));
  });

  it('a binary answer\'s JSON header carries the name, and its Inference-Header-Content-Length the new length', async () => {
    const { body, headerLength } = binaryAddRequest([1, 2, 3], [0.5, 0.5, 0.5]);
    const send = (url: string, headers: Record<string, string>): Promise<Response> =>
      fetch(url, { method: 'POST', headers: { ...headers, 'inference-header-content-length': String(headerLength) }, body });
    const res = await send(`${gw.url}/v2/models/triton-add/infer`, auth(gw));
    expect(res.status).toBe(200);
    const length = Number(res.headers.get('inference-header-content-length'));
    const raw = Buffer.from(await res.arrayBuffer());
    expect(Number(res.headers.get('content-length'))).toBe(raw.length);
    const { header, values } = parseBinaryAnswer(raw, length);
    expect(header).toMatchObject({ model_name: 'triton-add', outputs: [{ name: 'sum', parameters: { binary_data_size: 12 } }] });
    expect(values).toEqual([1.5, 2.5, 3.5]);
    const viaTriton = await send(`${triton.url}/v2/models/add/infer`, {});
    const directLength = Number(viaTriton.headers.get('inference-header-content-length'));
    const directRaw = Buffer.from(await viaTriton.arrayBuffer());
    expect(length).toBe(directLength + 'triton-add'.length - 'add'.length);
    expect(raw.subarray(0, length).toString()).toBe(renamedText(directRaw.subarray(0, directLength).toString(), 'model_name', 'add', 'triton-add'));
    expect(raw.subarray(length).equals(directRaw.subarray(directLength))).toBe(true);
  });

  it('model metadata names the model as the route does; ready answers as Triton does', async () => {
    for (const [path, name] of [
      ['/v2/models/sum', 'sum'],
      ['/v2/models/triton-add/versions/1', 'triton-add'],
      ['/v2/models/triton-stream', 'triton-stream'],
    ] as const) {
      const res = await fetch(`${gw.url}${path}`, { headers: auth(gw) });
      expect(res.status, path).toBe(200);
      const text = await res.text();
      const upstream = path.replace(/^\/v2\/models\/(sum|triton-)(\w*)/, (_, alias: string, rest: string) => `/v2/models/${alias === 'sum' ? 'add' : rest}`);
      const original = await (await direct(upstream)).text();
      const from = (JSON.parse(original) as { name: string }).name;
      expect(text, path).toBe(renamedText(original, 'name', from, name));
      // The inputs and outputs keep their own names.
      expect((JSON.parse(text) as { inputs: { name: string }[] }).inputs.map((i) => i.name)).toEqual((JSON.parse(original) as { inputs: { name: string }[] }).inputs.map((i) => i.name));
    }
    const ready = await fetch(`${gw.url}/v2/models/sum/ready`, { headers: auth(gw) });
    expect(ready.status).toBe(200);
    expect(await ready.text()).toBe('');
  });

  it('generate and every generate_stream event name the model as the route does', async () => {
    const res = await post('/v2/models/triton-echo/generate', { text_input: 'hi' });
    expect(await res.json()).toEqual({ model_name: 'triton-echo', model_version: '1', text_output: 'hi' });
    const since = finished.length;
    const { status, raw, events } = await readEvents(`${gw.url}/v2/models/triton-stream/generate_stream`, { text_input: 'repeat 3 1' }, auth(gw));
    expect(status).toBe(200);
    expect(events.map((e) => JSON.parse(e.data) as unknown)).toEqual([0, 1, 2].map((i) => ({ model_name: 'triton-stream', model_version: '1', text_output: `w${i}` })));
    const directly = await readEvents(`${triton.url}/v2/models/stream/generate_stream`, { text_input: 'repeat 3 1' }, {});
    expect(raw.toString()).toBe(directly.raw.toString().replaceAll('"model_name":"stream"', '"model_name":"triton-stream"'));
    const call = await callAfter(since);
    expect(call.usage?.outputTokens).toBe(3);
    expect(call.model?.response).toBe('stream');
    // A stream model's own error event carries no model name: it passes as Triton wrote it.
    const failing = await readEvents(`${gw.url}/v2/models/triton-stream/generate_stream`, { text_input: 'fail' }, auth(gw));
    expect(failing.status).toBe(400);
    expect(JSON.parse(failing.events[0]!.data).error).toContain('the stream model was asked to fail');
  });
});

describe('generate', () => {
  it('generate: Triton\'s answer as it wrote it', async () => {
    const res = await post('/v2/models/echo/generate', { text_input: 'hello there', parameters: { temperature: 0.2 } });
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(JSON.parse(text)).toEqual({ model_name: 'echo', model_version: '1', text_output: 'hello there' });
    expect(text).toBe(await (await direct('/v2/models/echo/generate', { text_input: 'hello there', parameters: { temperature: 0.2 } })).text());
  });

  it('generate_stream is relayed event by event as Triton produces them, byte for byte, events counted', async () => {
    const since = finished.length;
    // Five events 300 ms apart: the first reaches the client long before the last is produced.
    const { status, raw, events } = await readEvents(`${gw.url}/v2/models/stream/generate_stream`, { text_input: 'repeat 5 300' }, auth(gw));
    expect(status).toBe(200);
    expect(events.map((e) => JSON.parse(e.data).text_output)).toEqual(['w0', 'w1', 'w2', 'w3', 'w4']);
    expect(events[4]!.at - events[0]!.at).toBeGreaterThan(900);
    const directly = await readEvents(`${triton.url}/v2/models/stream/generate_stream`, { text_input: 'repeat 5 1' }, {});
    expect(raw.toString().replace(/w(\d)/g, 'x')).toBe(directly.raw.toString().replace(/w(\d)/g, 'x'));
    const call = await callAfter(since);
    expect(call.operation).toBe('generate_stream');
    expect(call.model).toMatchObject({ metering: 'counted', response: 'stream', operation: 'text_completion' });
    expect(call.usage?.outputTokens).toBe(5);
    expect(call.outcome).toBe('ok');
  });

  it('generate_stream on a route that does not count events is unmetered', async () => {
    const since = finished.length;
    const { status, events } = await readEvents(`${gw.url}/plain/v2/models/stream/generate_stream`, { text_input: 'a b c' }, auth(gw));
    expect(status).toBe(200);
    expect(events).toHaveLength(3);
    const call = await callAfter(since);
    expect(call.model?.metering).toBe('unmetered');
    expect(call.usage?.outputTokens).toBeUndefined();
  });

  it('Triton\'s stream errors pass through: a model failing at once (400 event stream) or midway (an error event)', async () => {
    const failing = await readEvents(`${gw.url}/v2/models/stream/generate_stream`, { text_input: 'fail' }, auth(gw));
    expect(failing.status).toBe(400);
    expect(failing.events).toHaveLength(1);
    expect(JSON.parse(failing.events[0]!.data).error).toContain('the stream model was asked to fail');
    const since = finished.length;
    const breaking = await readEvents(`${gw.url}/v2/models/stream/generate_stream`, { text_input: 'break 2' }, auth(gw));
    expect(breaking.status).toBe(200);
    expect(breaking.events.map((e) => Object.keys(JSON.parse(e.data)).includes('error'))).toEqual([false, false, true]);
    const call = await callAfter(since);
    expect(call.outcome).toBe('upstream_error');
    expect(call.usage?.outputTokens).toBe(2);
    // generate on a decoupled model answering more than once: Triton's error inside a 200, recorded as an error.
    const since2 = finished.length;
    const many = await post('/v2/models/stream/generate', { text_input: 'a b' });
    expect(many.status).toBe(200);
    expect((await many.json()) as object).toHaveProperty('error');
    expect((await callAfter(since2)).outcome).toBe('upstream_error');
  });
});

describe('guards', () => {
  it('policy denial and rate limit in KServe\'s shape with stable codes', async () => {
    expect(await kserveError(await post('/v2/models/stream/generate_stream', { text_input: 'a' }, auth(gw, SUPPORT)), 403, 'TG_POLICY_DENIED')).toContain('may not use model stream');
    const headers = auth(gw, RATED);
    expect((await post('/v2/models/echo/generate', { text_input: 'one' }, headers)).status).toBe(200);
    expect((await post('/v2/models/echo/generate', { text_input: 'two' }, headers)).status).toBe(200);
    const limited = await post('/v2/models/echo/generate', { text_input: 'three' }, headers);
    expect(limited.headers.get('retry-after')).toMatch(/^\d+$/);
    await kserveError(limited, 429, 'TG_RATE_LIMITED');
  });

  it('audit records and metrics say what each call was, and how it was metered', async () => {
    const records = () =>
      [...queryLog(join(gw.dir, '..', '.tollgate', 'audit'), { kinds: ['call'] })].map((l) => JSON.parse(l) as Record<string, unknown>).filter((r) => r.protocol === 'kserve');
    await eventually(() => records().some((r) => r.operation === 'generate_stream' && (r.model as { metering?: string } | undefined)?.metering === 'counted'), 10_000, 'audit records');
    const all = records();
    // The `stream` model's own unversioned record (the renamed `triton-stream` and versioned ones are calls of their own).
    const stream = all.find((r) => r.operation === 'generate_stream' && r.outcome === 'ok' && (r.model as { metering?: string }).metering === 'counted' && (r.target as { name?: string; version?: string }).name === 'stream' && (r.target as { version?: string }).version === undefined)!;
    expect(stream).toMatchObject({ target: { kind: 'model', name: 'stream' }, upstream: 'triton', usage: { outputTokens: 5 }, model: { metering: 'counted', response: 'stream' } });
    expect(all.find((r) => r.operation === 'generate_stream' && (r.model as { metering?: string }).metering === 'unmetered')).toBeDefined();
    expect(all.find((r) => r.operation === 'infer' && r.outcome === 'ok')).toMatchObject({ model: { metering: 'unmetered' } });
    expect(all.find((r) => r.code === 'TG_POLICY_DENIED')).toMatchObject({ outcome: 'denied' });
    expect(all.find((r) => r.code === 'TG_INVALID_TENSOR_HEADER')).toMatchObject({ status: 400 });
    expect(JSON.stringify(all)).not.toContain('Bearer');
    // Spans: the call's server span with the GenAI conventions, and its upstream span.
    const isStream = (x: (typeof receiver.spans)[number]): boolean => x.kind === 2 && x.attributes['tollgate.protocol'] === 'kserve' && x.attributes['gen_ai.usage.output_tokens'] === 5;
    await eventually(() => receiver.spans.some(isStream), 10_000, 'the generate_stream span');
    const span = receiver.spans.find(isStream)!;
    expect(span.attributes).toMatchObject({ 'gen_ai.operation.name': 'text_completion', 'gen_ai.request.model': 'stream', 'gen_ai.response.model': 'stream', 'tollgate.upstream': 'triton' });
    await eventually(() => receiver.spans.some((x) => x.parentSpanId === span.spanId && x.kind === 3), 10_000, 'the upstream span');
    const metrics = parsePrometheusTextFormat(await (await fetch(`${gw.adminUrl}/metrics`)).text());
    const requests = metrics.find((f) => f.name === 'tollgate_requests_total')!.metrics as Array<{ labels: Record<string, string>; value: string }>;
    const infer = requests.filter((m) => m.labels.protocol === 'kserve' && m.labels.operation === 'infer' && m.labels.outcome === 'ok');
    expect(infer.reduce((n, m) => n + Number(m.value), 0)).toBeGreaterThanOrEqual(4);
  });
});
