/**
 * The KServe v2 adapter swept against the Open Inference Protocol, Triton's HTTP extensions and what NVIDIA's
 * tritonclient does in normal use, through a real gateway in front of a real Triton (PyTriton's tritonserver on CPU):
 * - every read-only, per-model call of tritonclient.http (and its asyncio flavour) answers through the gateway as it
 *   does at Triton: health, metadata and readiness with versions, the model configuration extension
 *   (`/v2/models/<m>[/versions/<v>]/config`), infer with JSON and binary tensors, binary_data_output, classification,
 *   request and response compression, async_infer, headers and query parameters;
 * - the administrative APIs (statistics, repository, trace, logging, shared memory) are refused in KServe's shape,
 *   `/v2/models/stats` included (it is Triton's statistics API, not a model named `stats`);
 * - request bodies compressed with gzip or deflate are read for policy and forwarded as the client sent them; other
 *   codings get 415 naming the accepted ones; Accept-Encoding reaches Triton and its compressed answer is relayed;
 * - bad requests get the status Triton gives them, Triton's own errors byte for byte, the gateway's in KServe's shape;
 * - the requests of one sequence (Triton's sequence extension: stateful models keep its state in one server) reach
 *   one endpoint of a pool (two TCP relays in front of the Triton, test/helpers/tcp-proxy.ts), infer, generate and
 *   generate_stream alike;
 * - sequence ids are each caller's own, in infer bodies and in generate / generate_stream bodies (where Triton hands
 *   `sequence_id` to the model as a request parameter): a model keeping state by it (`tally`) keeps callers apart.
 */
import { execFile } from 'node:child_process';
import { request } from 'node:http';
import { connect, createServer, type Server } from 'node:net';
import { promisify } from 'node:util';
import { deflateSync, gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Call } from '../../src/core/call.ts';
import { eventually, recordCalls, type TestGateway } from '../helpers/gateway.ts';
import { AGENT, SUPPORT, TRITON_ROUTE_MODELS, WITHDRAWN_VERSION, auth, binaryAddRequest, kserveBackend, kserveRoute, startKServeGateway } from '../helpers/kserve.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';
import { startTriton, TRITON_PYTHON, type Triton } from '../helpers/triton.ts';

let triton: Triton;
let relays: TcpProxy[] = [];
/** A TCP relay to the Triton that keeps what the gateway sent it (to see the bytes Triton received). */
let capture: Server;
let captured: Buffer[] = [];
let gw: TestGateway;
let finished: Call[] = [];

/** The extensions Triton lists for the APIs the gateway does not expose. */
const ADMINISTRATIVE_EXTENSIONS = ['model_repository', 'model_repository(unload_dependents)', 'statistics', 'trace', 'logging', 'system_shared_memory', 'cuda_shared_memory'];

const ADD = { inputs: [{ name: 'a', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] }, { name: 'b', datatype: 'FP32', shape: [1, 3], data: [10, 20, 30] }] };

beforeAll(async () => {
  triton = await startTriton();
  relays = [await startTcpProxy(triton.url), await startTcpProxy(triton.url)];
  capture = createServer((client) => {
    const server = connect(triton.port, '127.0.0.1');
    client.on('data', (d: Buffer) => captured.push(Buffer.from(d)));
    client.pipe(server).pipe(client);
    client.on('error', () => server.destroy());
    server.on('error', () => client.destroy());
  });
  await new Promise<void>((r) => capture.listen(0, '127.0.0.1', r));
  const capturePort = (capture.address() as { port: number }).port;
  gw = await startKServeGateway({
    'models.yaml':
      kserveBackend('triton', { url: triton.url, healthCheck: { intervalMs: 1000 } }) +
      kserveRoute('models', ['triton'], {
        http: { maxBodyBytes: 1024 * 1024 },
        models: TRITON_ROUTE_MODELS,
      }) +
      // Every name goes to Triton as it is: only the path tells a model from an administrative API.
      kserveRoute('everything', ['triton'], { models: [{ pattern: '*', backend: 'triton' }] }, '/all/v2') +
      // A pool of two endpoints (no health probes: the relays count only the calls' bytes).
      kserveBackend('pair', { endpoints: relays.map((r) => ({ url: r.url })), healthCheck: { enabled: false } }) +
      kserveRoute('pair', ['pair'], { models: [{ name: 'add', backend: 'pair' }, { name: 'echo', backend: 'pair' }] }, '/pair/v2') +
      kserveBackend('capture', { url: `http://127.0.0.1:${capturePort}`, healthCheck: { enabled: false } }) +
      kserveRoute('capture', ['capture'], { models: ['add', 'echo', 'stream', 'tally'].map((name) => ({ name, backend: 'capture' })) }, '/capture/v2'),
  });
  finished = recordCalls(gw);
  await eventually(async () => (await fetch(`${gw.url}/v2/health/ready`, { headers: auth(gw) })).status === 200, 20_000, 'the Triton pool to pass its health checks');
}, 180_000);

afterAll(async () => {
  await gw?.stop();
  for (const r of relays) await r.close();
  await new Promise((r) => capture?.close(r));
  await triton?.stop();
}, 60_000);

async function callAfter(since: number): Promise<Call> {
  await eventually(() => finished.length > since, 5_000, 'the gateway to finish the call');
  return finished[since]!;
}

interface Raw {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
}

/** One request over node:http: no content coding added or undone (fetch would decompress an answer itself). */
function raw(url: string, opts: { method?: string; headers?: Record<string, string>; body?: Buffer | string } = {}): Promise<Raw> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path: `${u.pathname}${u.search}`, method: opts.method ?? (opts.body === undefined ? 'GET' : 'POST'), headers: opts.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

function kserveError(r: Raw, status: number, code: string): string {
  expect(r.status, r.body.toString()).toBe(status);
  const body = JSON.parse(r.body.toString()) as { error: unknown; code: unknown };
  expect(typeof body.error).toBe('string');
  expect(body.code).toBe(code);
  return body.error as string;
}

/** Runs test/python/triton_spec_client.py against `host` for `model`. */
async function tritonclient(host: string, token: string, model: string): Promise<Record<string, unknown>> {
  const out = await promisify(execFile)(TRITON_PYTHON, ['test/python/triton_spec_client.py', host, token, model, '1'], { timeout: 120_000, maxBuffer: 16 * 1024 * 1024 });
  return JSON.parse(out.stdout) as Record<string, unknown>;
}

describe('tritonclient through the gateway', () => {
  it('every read-only, per-model call answers as Triton does (the model named as the route names it); admin calls are refused', async () => {
    const [direct, through, renamed] = await Promise.all([
      tritonclient(new URL(triton.url).host, 'unused', 'add'),
      tritonclient(new URL(gw.url).host, gw.devToken(AGENT), 'add'),
      tritonclient(new URL(gw.url).host, gw.devToken(AGENT), 'sum'),
    ]);
    type Report = { admin: Record<string, { status?: string; message?: string }> } & Record<string, unknown>;
    const { admin, ...rest } = through as Report;
    const { admin: directAdmin, ...directRest } = direct as Report;
    // Health is the gateway's own; the server metadata lists only the extensions the gateway serves (below);
    // everything else is Triton's answer.
    const served = (r: Record<string, unknown>): void => {
      const server = (r.server as { ok: { extensions: string[] } }).ok;
      server.extensions = server.extensions.filter((e) => !ADMINISTRATIVE_EXTENSIONS.includes(e));
    };
    served(directRest);
    expect(rest).toEqual(directRest);
    // The route's other name for `add`: the same answers, `model_name` / `name` being the route's.
    const { admin: renamedAdmin, ...renamedRest } = renamed as Report;
    const named = (r: Record<string, unknown>, keys: string[]): Array<{ ok: { name: string } }> => keys.map((k) => r[k] as { ok: { name: string } });
    for (const m of [...named(renamedRest, ['metadata', 'metadata_version', 'metadata_query', 'config', 'config_version']), ...named(renamedRest.aio as Record<string, unknown>, ['metadata', 'config'])]) {
      expect(m.ok.name).toBe('sum');
      m.ok.name = 'add';
    }
    expect(JSON.parse(JSON.stringify(renamedRest).replaceAll('"model_name":"sum"', '"model_name":"add"'))).toEqual(directRest);
    // PyTriton restricts Triton's administrative APIs (403); the gateway does not expose them at all.
    expect(Object.keys(directAdmin).sort()).toEqual(Object.keys(admin).sort());
    for (const [name, r] of [...Object.entries(admin), ...Object.entries(renamedAdmin)]) {
      expect(r.status, name).toBe('404');
      expect(r.message, name).toMatch(/is not exposed through this gateway/);
    }
  }, 180_000);
});

describe('model configuration (Triton model_configuration extension)', () => {
  it('GET /v2/models/<m>[/versions/<v>]/config: Triton\'s answer, under the route\'s name for the model, guarded like metadata', async () => {
    for (const path of ['/v2/models/add/config', '/v2/models/add/versions/1/config']) {
      const since = finished.length;
      const res = await raw(`${gw.url}${path}`, { headers: auth(gw) });
      const want = await raw(`${triton.url}${path}`);
      expect(res.status, path).toBe(200);
      expect(res.body.toString(), path).toBe(want.body.toString());
      expect(res.headers['content-type']).toBe('application/json');
      const call = await callAfter(since);
      expect(call.operation).toBe('model.config');
      expect(call.target).toMatchObject({ kind: 'model', name: 'add', server: 'triton', local: 'add', ...(path.includes('versions') ? { version: '1' } : {}) });
    }
    // Renamed: the top-level `name` is the route's; the tensors keep theirs.
    const renamed = await raw(`${gw.url}/v2/models/sum/config`, { headers: auth(gw) });
    const original = (await raw(`${triton.url}/v2/models/add/config`)).body.toString();
    expect(renamed.body.toString()).toBe(original.replace('"name":"add"', '"name":"sum"'));
    expect(Number(renamed.headers['content-length'])).toBe(renamed.body.length);
    // HEAD answers as GET; POST is not allowed.
    const head = await raw(`${gw.url}/v2/models/add/config`, { method: 'HEAD', headers: auth(gw) });
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe(String(Buffer.byteLength(original)));
    const post = await raw(`${gw.url}/v2/models/add/config`, { method: 'POST', headers: auth(gw), body: '{}' });
    expect(post.headers.allow).toBe('GET, HEAD');
    kserveError(post, 405, 'TG_METHOD_NOT_ALLOWED');
    // The guards of a model operation: a caller without the model's grant, a withdrawn version, an unrouted model.
    expect(kserveError(await raw(`${gw.url}/v2/models/add/config`, { headers: auth(gw, SUPPORT) }), 403, 'TG_POLICY_DENIED')).toContain('may not use model add');
    expect(kserveError(await raw(`${gw.url}/v2/models/add/versions/${WITHDRAWN_VERSION}/config`, { headers: auth(gw) }), 403, 'TG_POLICY_DENIED')).toContain('withdrawn');
    kserveError(await raw(`${gw.url}/v2/models/unrouted/config`, { headers: auth(gw) }), 404, 'TG_MODEL_NOT_FOUND');
    // Triton's own errors pass as it wrote them.
    for (const [path, upstream] of [
      ['/v2/models/sum/versions/7/config', '/v2/models/add/versions/7/config'],
      ['/v2/models/triton-nope/config', '/v2/models/nope/config'],
    ] as const) {
      const res = await raw(`${gw.url}${path}`, { headers: auth(gw) });
      const want = await raw(`${triton.url}${upstream}`);
      expect(res.status, path).toBe(want.status);
      expect(res.body.toString(), path).toBe(want.body.toString());
    }
    expect((await raw(`${gw.url}/v2/models/add/config`)).status).toBe(401);
  });
});

describe('administrative APIs', () => {
  it('the server metadata lists only the extensions the gateway serves', async () => {
    const direct = JSON.parse((await raw(`${triton.url}/v2`)).body.toString()) as { name: string; version: string; extensions: string[] };
    expect(direct.extensions).toEqual(expect.arrayContaining(ADMINISTRATIVE_EXTENSIONS));
    for (const mount of ['/v2', '/all/v2']) {
      const res = await raw(`${gw.url}${mount}`, { headers: auth(gw) });
      expect(res.status).toBe(200);
      expect(Number(res.headers['content-length'])).toBe(res.body.length);
      expect(JSON.parse(res.body.toString())).toEqual({ ...direct, extensions: direct.extensions.filter((e) => !ADMINISTRATIVE_EXTENSIONS.includes(e)) });
    }
    expect(JSON.parse((await raw(`${gw.url}/v2`, { headers: auth(gw) })).body.toString()).extensions).toEqual(
      expect.arrayContaining(['binary_tensor_data', 'classification', 'sequence', 'model_configuration', 'parameters']),
    );
  });

  it('statistics, repository, trace, logging and shared memory: 404 in KServe\'s shape naming the API, never forwarded', async () => {
    const paths: Array<[string, string, string]> = [
      ['GET', '/v2/models/stats', 'statistics'],
      ['GET', '/v2/models/add/stats', 'statistics'],
      ['GET', '/v2/models/add/versions/1/stats', 'statistics'],
      ['POST', '/v2/repository/index', 'repository'],
      ['POST', '/v2/repository/models/add/load', 'repository'],
      ['POST', '/v2/repository/models/add/unload', 'repository'],
      ['GET', '/v2/trace/setting', 'trace'],
      ['POST', '/v2/models/add/trace/setting', 'trace'],
      ['GET', '/v2/logging', 'logging'],
      ['GET', '/v2/systemsharedmemory/status', 'shared memory'],
      ['POST', '/v2/systemsharedmemory/region/r/register', 'shared memory'],
      ['GET', '/v2/cudasharedmemory/status', 'shared memory'],
    ];
    for (const mount of ['/v2', '/all/v2']) {
      for (const [method, path, api] of paths) {
        const url = `${gw.url}${mount}${path.slice('/v2'.length)}`;
        const since = finished.length;
        const res = await raw(url, { method, headers: auth(gw), ...(method === 'POST' ? { body: '{}' } : {}) });
        expect(kserveError(res, 404, 'TG_NOT_FOUND'), url).toContain(`Triton's ${api} API is not exposed through this gateway`);
        const call = await callAfter(since);
        expect(call.operation, url).toBe('refused');
        expect(call.upstream, url).toBeUndefined();
      }
    }
    // Still authenticated first.
    expect((await raw(`${gw.url}/v2/models/stats`)).status).toBe(401);
  });
});

describe('request compression (Content-Encoding)', () => {
  const gz = (b: Buffer | string): Buffer => gzipSync(b);
  const zz = (b: Buffer | string): Buffer => deflateSync(b);

  it('gzip and deflate infer bodies (JSON and binary tensors) are read for policy and forwarded as sent', async () => {
    const json = Buffer.from(JSON.stringify({ ...ADD, id: 'z' }));
    const { body, headerLength } = binaryAddRequest([1, 2, 3], [0.5, 0.5, 0.5]);
    for (const [coding, pack] of [['gzip', gz], ['deflate', zz]] as const) {
      for (const [kind, plain, extra] of [
        ['json', json, {}],
        ['binary', body, { 'inference-header-content-length': String(headerLength) }],
      ] as const) {
        const packed = pack(plain);
        const headers = { 'content-encoding': coding, ...extra };
        const since = finished.length;
        const res = await raw(`${gw.url}/v2/models/add/infer`, { headers: { ...auth(gw), ...headers }, body: packed });
        const want = await raw(`${triton.url}/v2/models/add/infer`, { headers, body: packed });
        expect(want.status, `${coding} ${kind} at Triton`).toBe(200);
        expect(res.status, `${coding} ${kind}: ${res.body.toString()}`).toBe(200);
        expect(res.body.equals(want.body), `${coding} ${kind}`).toBe(true);
        const call = await callAfter(since);
        expect(call.args, `${coding} ${kind}`).toMatchObject({ inputs: [{ name: 'a', datatype: 'FP32', shape: [1, 3] }, { name: 'b' }], binary: kind === 'binary', body_bytes: plain.length });
        expect(call.transfer?.requestBytes).toBe(packed.length);
      }
    }
    // Content codings are case-insensitive (RFC 9110 8.4.1).
    expect((await raw(`${gw.url}/v2/models/add/infer`, { headers: { ...auth(gw), 'content-encoding': 'identity' }, body: json })).status).toBe(200);
  });

  it('refuses what it cannot read: another coding (415 with Accept-Encoding), a corrupt or oversized body, compressed generate', async () => {
    const json = JSON.stringify(ADD);
    const br = await raw(`${gw.url}/v2/models/add/infer`, { headers: { ...auth(gw), 'content-encoding': 'br' }, body: json });
    expect(kserveError(br, 415, 'TG_UNSUPPORTED_MEDIA_TYPE')).toContain('br');
    expect(br.headers['accept-encoding']).toBe('gzip, deflate');
    const twice = await raw(`${gw.url}/v2/models/add/infer`, { headers: { ...auth(gw), 'content-encoding': 'gzip, gzip' }, body: gz(gz(json)) });
    kserveError(twice, 415, 'TG_UNSUPPORTED_MEDIA_TYPE');
    expect(kserveError(await raw(`${gw.url}/v2/models/add/infer`, { headers: { ...auth(gw), 'content-encoding': 'gzip' }, body: json }), 400, 'TG_INVALID_REQUEST')).toContain('gzip');
    // A small body that inflates past the route's limit (1 MiB here): refused, never inflated whole.
    const bomb = gz(Buffer.alloc(8 * 1024 * 1024, 0x20));
    expect(bomb.length).toBeLessThan(64 * 1024);
    kserveError(await raw(`${gw.url}/v2/models/add/infer`, { headers: { ...auth(gw), 'content-encoding': 'gzip' }, body: bomb }), 413, 'TG_PAYLOAD_TOO_LARGE');
    // The binary header framed against the inflated body.
    const { body, headerLength } = binaryAddRequest([1, 2, 3], [4, 5, 6]);
    const lying = await raw(`${gw.url}/v2/models/add/infer`, { headers: { ...auth(gw), 'content-encoding': 'gzip', 'inference-header-content-length': String(headerLength + 3) }, body: gz(body) });
    kserveError(lying, 400, 'TG_INVALID_TENSOR_HEADER');
    // Triton decodes only infer bodies (generate: 400 "only 'identity' is supported"): refused before forwarding.
    const gen = await raw(`${gw.url}/v2/models/echo/generate`, { headers: { ...auth(gw), 'content-encoding': 'gzip' }, body: gz('{"text_input":"hi"}') });
    expect(kserveError(gen, 415, 'TG_UNSUPPORTED_MEDIA_TYPE')).toContain('generate');
    expect(gen.headers['accept-encoding']).toBe('identity');
    // And the next plain request is served.
    expect((await raw(`${gw.url}/v2/models/add/infer`, { headers: auth(gw), body: json })).status).toBe(200);
  });
});

describe('response compression (Accept-Encoding)', () => {
  it('reaches Triton for infer; its compressed answer is relayed as it wrote it, and still read for the call record', async () => {
    for (const coding of ['gzip', 'deflate']) {
      const since = finished.length;
      const body = JSON.stringify({ ...ADD, id: coding });
      const res = await raw(`${gw.url}/v2/models/add/infer`, { headers: { ...auth(gw), 'accept-encoding': coding }, body });
      const want = await raw(`${triton.url}/v2/models/add/infer`, { headers: { 'accept-encoding': coding }, body });
      expect(want.headers['content-encoding']).toBe(coding);
      expect(res.status).toBe(200);
      expect(res.headers['content-encoding']).toBe(coding);
      expect(res.body.equals(want.body)).toBe(true);
      const call = await callAfter(since);
      expect(call.model?.response).toBe('add');
    }
    const binary = binaryAddRequest([1, 2, 3], [1, 1, 1]);
    const res = await raw(`${gw.url}/v2/models/add/infer`, { headers: { ...auth(gw), 'accept-encoding': 'gzip', 'inference-header-content-length': String(binary.headerLength) }, body: binary.body });
    expect(res.headers['content-encoding']).toBe('gzip');
    const plain = gunzipSync(res.body);
    const n = Number(res.headers['inference-header-content-length']);
    expect(JSON.parse(plain.subarray(0, n).toString())).toMatchObject({ model_name: 'add' });
    expect([...new Float32Array(new Uint8Array(plain.subarray(n)).buffer)]).toEqual([2, 3, 4]);
  });

  it('a model the route renames answers uncompressed (identity is always acceptable), its name rewritten', async () => {
    const res = await raw(`${gw.url}/v2/models/sum/infer`, { headers: { ...auth(gw), 'accept-encoding': 'gzip' }, body: JSON.stringify(ADD) });
    expect(res.status).toBe(200);
    expect(res.headers['content-encoding']).toBeUndefined();
    expect(JSON.parse(res.body.toString())).toMatchObject({ model_name: 'sum', outputs: [{ data: [11, 22, 33] }] });
  });
});

describe('errors compared with Triton', () => {
  it('each bad request gets Triton\'s status; Triton\'s own errors pass byte for byte, the gateway\'s are KServe-shaped', async () => {
    const json = (o: unknown): string => JSON.stringify(o);
    const passed: Array<[string, string, string | undefined]> = [
      ['wrong datatype', '/v2/models/add/infer', json({ inputs: [{ ...ADD.inputs[0], datatype: 'INT32' }, ADD.inputs[1]] })],
      ['shape mismatch', '/v2/models/add/infer', json({ inputs: [{ ...ADD.inputs[0], shape: [1, 4] }, ADD.inputs[1]] })],
      ['missing input', '/v2/models/add/infer', json({ inputs: [ADD.inputs[0]] })],
      ['unknown output', '/v2/models/add/infer', json({ ...ADD, outputs: [{ name: 'nope' }] })],
      ['unknown version', '/v2/models/add/versions/7/infer', json(ADD)],
      ['unknown version metadata', '/v2/models/add/versions/7', undefined],
      ['version not a number', '/v2/models/add/versions/x', undefined],
    ];
    for (const [what, path, body] of passed) {
      const res = await raw(`${gw.url}${path}`, { headers: auth(gw), ...(body === undefined ? {} : { body }) });
      const want = await raw(`${triton.url}${path}`, body === undefined ? {} : { body });
      expect(want.status, what).toBeGreaterThanOrEqual(400);
      expect(res.status, what).toBe(want.status);
      expect(res.body.toString(), what).toBe(want.body.toString());
    }
    // A model Triton does not have, named through a pattern: Triton's 404.
    const unknown = await raw(`${gw.url}/v2/models/triton-nope/infer`, { headers: auth(gw), body: json(ADD) });
    expect(unknown.body.toString()).toBe((await raw(`${triton.url}/v2/models/nope/infer`, { body: json(ADD) })).body.toString());
    // The gateway's own answers, with the status Triton gives the same request (Triton answers 500 to JSON it cannot
    // parse; a client error is 400).
    const own: Array<[string, string, Record<string, string>, string, number, string]> = [
      ['unrouted model', '/v2/models/unrouted/infer', {}, json(ADD), 404, 'TG_MODEL_NOT_FOUND'],
      ['header length over the body', '/v2/models/add/infer', { 'inference-header-content-length': '500' }, json({ inputs: [] }), 400, 'TG_INVALID_TENSOR_HEADER'],
      ['empty body', '/v2/models/add/infer', {}, '', 400, 'TG_PARSE_ERROR'],
      ['bad JSON', '/v2/models/add/infer', {}, '{"inputs": [', 400, 'TG_PARSE_ERROR'],
      ['not an object', '/v2/models/add/infer', {}, '[1]', 400, 'TG_INVALID_REQUEST'],
    ];
    for (const [what, path, headers, body, status, code] of own) {
      const res = await raw(`${gw.url}${path}`, { headers: { ...auth(gw), ...headers }, body });
      kserveError(res, status, code);
      const want = await raw(`${triton.url}${path}`, { headers, body });
      if (what !== 'bad JSON' && what !== 'not an object') expect(want.status, what).toBe(status);
    }
    kserveError(await raw(`${gw.url}/v2/models/add/infer`, { method: 'GET', headers: auth(gw) }), 405, 'TG_METHOD_NOT_ALLOWED');
    // A member named twice: Triton (rapidjson) reads the first, JSON.parse the last, so a policy would judge one
    // request and Triton run another. Triton runs the first `inputs` here; the gateway refuses the body.
    const [a, b] = ADD.inputs;
    const twice = `{"inputs":${json([a, b])},"inputs":${json([{ name: 'x', datatype: 'INT8', shape: [1], data: [1] }])}}`;
    expect((await raw(`${triton.url}/v2/models/add/infer`, { body: twice })).status).toBe(200);
    expect(kserveError(await raw(`${gw.url}/v2/models/add/infer`, { headers: auth(gw), body: twice }), 400, 'TG_INVALID_REQUEST')).toContain('"inputs"');
    const shapeTwice = `{"inputs":[{"name":"a","datatype":"FP32","shape":[1,3],"shape":[1],"data":[1,2,3]},${json(b)}]}`;
    kserveError(await raw(`${gw.url}/v2/models/add/infer`, { headers: auth(gw), body: shapeTwice }), 400, 'TG_INVALID_REQUEST');
    const bin = binaryAddRequest([1, 2, 3], [4, 5, 6]);
    const header = bin.body.subarray(0, bin.headerLength).toString().replace('"outputs"', '"parameters":{"priority":1,"priority":2},"outputs"');
    const dup = Buffer.concat([Buffer.from(header), bin.body.subarray(bin.headerLength)]);
    kserveError(await raw(`${gw.url}/v2/models/add/infer`, { headers: { ...auth(gw), 'inference-header-content-length': String(header.length) }, body: dup }), 400, 'TG_INVALID_TENSOR_HEADER');
    kserveError(await raw(`${gw.url}/v2/models/echo/generate`, { headers: auth(gw), body: '{"text_input":"a","text_input":"b"}' }), 400, 'TG_INVALID_REQUEST');
    // Credentials: missing or not a token, in KServe's shape (tritonclient reads `error`), with the challenge.
    const missing = await raw(`${gw.url}/v2/models/add/infer`, { body: json(ADD) });
    kserveError(missing, 401, 'TG_UNAUTHENTICATED');
    expect(missing.headers['www-authenticate']).toMatch(/^Bearer/);
    kserveError(await raw(`${gw.url}/v2/models/add/infer`, { headers: { authorization: 'Bearer nope' }, body: json(ADD) }), 401, 'TG_INVALID_TOKEN');
    expect((await raw(`${triton.url}/v2/models/add/infer`, { method: 'GET' })).status).toBe(405);
  });
});

describe('sequences (Triton sequence extension)', () => {
  const sent = (): number[] => relays.map((r) => r.fromClients());

  it('every request of one sequence reaches the same endpoint of a pool; other sequences spread', async () => {
    for (const id of [1234, 'chat-7']) {
      const before = sent();
      for (let i = 0; i < 8; i++) {
        const parameters = { sequence_id: id, sequence_start: i === 0, sequence_end: i === 7 };
        const binary = i % 2 === 1;
        const req = binary ? binaryAddRequest([i, 1, 2], [1, 1, 1]) : undefined;
        // Binary requests put the parameters in their JSON header: the same endpoint either way.
        const body = req === undefined ? JSON.stringify({ ...ADD, parameters }) : Buffer.concat([Buffer.from(JSON.stringify({ ...JSON.parse(req.body.subarray(0, req.headerLength).toString()), parameters })), req.body.subarray(req.headerLength)]);
        const headerLength = req === undefined ? undefined : body.length - (req.body.length - req.headerLength);
        const res = await raw(`${gw.url}/pair/v2/models/add/infer`, { headers: { ...auth(gw), ...(headerLength === undefined ? {} : { 'inference-header-content-length': String(headerLength) }) }, body });
        expect(res.status, res.body.toString()).toBe(200);
      }
      const grew = sent().map((n, i) => n - before[i]!);
      expect(grew.filter((n) => n > 0), `sequence ${id}: bytes per endpoint ${grew.join(', ')}`).toHaveLength(1);
    }
    // Many sequences: both endpoints serve some (each sequence one of them).
    const before = sent();
    for (let id = 1; id <= 24; id++) {
      expect((await raw(`${gw.url}/pair/v2/models/add/infer`, { headers: auth(gw), body: JSON.stringify({ ...ADD, parameters: { sequence_id: id, sequence_start: true, sequence_end: true } }) })).status).toBe(200);
    }
    expect(sent().map((n, i) => n - before[i]!).every((n) => n > 0)).toBe(true);
  });

  it('a sequence mixing infer, generate and generate_stream calls of one model stays on one endpoint', async () => {
    const ops = ['infer', 'generate', 'generate_stream'] as const;
    const call = async (op: (typeof ops)[number], parameters: Record<string, unknown>): Promise<void> => {
      const body = op === 'infer' ? { inputs: [{ name: 'text_input', datatype: 'BYTES', shape: [1], data: ['hi'] }], parameters } : { text_input: 'hi', parameters };
      const res = await raw(`${gw.url}/pair/v2/models/echo/${op}`, { headers: auth(gw), body: JSON.stringify(body) });
      expect(res.status, `${op}: ${res.body.toString()}`).toBe(200);
    };
    for (const id of [4321, 'talk-9']) {
      const before = sent();
      for (let i = 0; i < 9; i++) await call(ops[i % 3]!, { sequence_id: id, sequence_start: i === 0, sequence_end: i === 8 });
      const grew = sent().map((n, i) => n - before[i]!);
      expect(grew.filter((n) => n > 0), `sequence ${id}: bytes per endpoint ${grew.join(', ')}`).toHaveLength(1);
    }
    // Many generate sequences: both endpoints serve some.
    const before = sent();
    for (let id = 1; id <= 24; id++) await call(id % 2 === 0 ? 'generate' : 'generate_stream', { sequence_id: id });
    expect(sent().map((n, i) => n - before[i]!).every((n) => n > 0)).toBe(true);
  });
});

describe('sequence ids are the caller\'s own', () => {
  /** The sequence_id values Triton received since `captured` was emptied. */
  const seen = (): unknown[] => [...Buffer.concat(captured).toString('latin1').matchAll(/"sequence_id":(\d+|"[^"]*")/g)].map((m) => JSON.parse(m[1]!) as unknown);
  const OTHER = `${AGENT}/other`;

  async function send(who: string, id: number | string, kind: 'json' | 'binary' | 'gzip'): Promise<unknown> {
    captured = [];
    const parameters = { sequence_id: id, sequence_start: true, sequence_end: true };
    let body: Buffer;
    const headers: Record<string, string> = auth(gw, who);
    if (kind === 'binary') {
      const req = binaryAddRequest([1, 2, 3], [1, 1, 1]);
      const header = Buffer.from(JSON.stringify({ ...(JSON.parse(req.body.subarray(0, req.headerLength).toString()) as object), parameters }));
      body = Buffer.concat([header, req.body.subarray(req.headerLength)]);
      headers['inference-header-content-length'] = String(header.length);
    } else {
      body = Buffer.from(JSON.stringify({ ...ADD, parameters }));
      if (kind === 'gzip') {
        body = gzipSync(body);
        headers['content-encoding'] = 'gzip';
      }
    }
    const since = finished.length;
    const res = await raw(`${gw.url}/capture/v2/models/add/infer`, { headers, body });
    expect(res.status, res.body.toString()).toBe(200);
    // Policies see the caller's own id.
    expect(((await callAfter(since)).args as { parameters: { sequence_id: unknown } }).parameters.sequence_id).toEqual(id);
    const ids = seen();
    expect(ids).toHaveLength(1);
    return ids[0];
  }

  it('Triton sees an id of the caller\'s own: stable for the caller, another for another caller, of the same type', async () => {
    for (const kind of ['json', 'binary', 'gzip'] as const) {
      const mine = await send(AGENT, 77, kind);
      expect(typeof mine).toBe('number');
      expect(mine).not.toBe(77);
      expect(await send(AGENT, 77, kind)).toBe(mine);
      const theirs = await send(OTHER, 77, kind);
      expect(theirs).not.toBe(mine);
      const named = await send(AGENT, 'chat-1', kind);
      expect(named).toMatch(/^tg-[0-9a-f]{32}$/);
      expect(await send(OTHER, 'chat-1', kind)).not.toBe(named);
    }
    // Requests without a sequence reach Triton as sent.
    captured = [];
    const plain = JSON.stringify({ ...ADD, parameters: { sequence_id: 0, priority: 1 } });
    expect((await raw(`${gw.url}/capture/v2/models/add/infer`, { headers: auth(gw), body: plain })).status).toBe(200);
    expect(Buffer.concat(captured).toString()).toContain(plain);
  });

  it('uint64 ids past 2^53 stay apart; an infer id Triton cannot read as a uint64 is refused before it gets there', async () => {
    const at = async (id: string): Promise<unknown> => {
      captured = [];
      const res = await raw(`${gw.url}/capture/v2/models/add/infer`, { headers: auth(gw), body: `{"inputs":${JSON.stringify(ADD.inputs)},"parameters":{"sequence_id":${id}}}` });
      expect(res.status, res.body.toString()).toBe(200);
      return seen()[0];
    };
    expect(await at('18446744073709551615')).not.toEqual(await at('18446744073709551614'));
    expect(await at('77')).toEqual(await send(AGENT, 77, 'json'));
    for (const bad of ['-3', '1.5', '1e3', '18446744073709551616']) {
      const body = `{"inputs":${JSON.stringify(ADD.inputs)},"parameters":{"sequence_id":${bad}}}`;
      // Triton refuses it too ("Unable to parse 'sequence_id'"), with a 500.
      expect((await raw(`${triton.url}/v2/models/add/infer`, { body })).status, bad).not.toBe(200);
      captured = [];
      expect(kserveError(await raw(`${gw.url}/capture/v2/models/add/infer`, { headers: auth(gw), body }), 400, 'TG_INVALID_REQUEST')).toMatch(/unsigned 64-bit integer/);
      expect(captured).toHaveLength(0);
    }
  });

  type Generation = 'generate' | 'generate_stream';

  /** A generate or generate_stream call through the capture relay: the answer, and the sequence ids Triton saw. */
  async function generate(who: string, op: Generation, body: string, model = 'echo'): Promise<{ answer: Raw; ids: unknown[]; args: Record<string, unknown> }> {
    captured = [];
    const since = finished.length;
    const answer = await raw(`${gw.url}/capture/v2/models/${model}/${op}`, { headers: auth(gw, who), body });
    const call = await callAfter(since);
    return { answer, ids: seen(), args: call.args as Record<string, unknown> };
  }

  it('generate and generate_stream: Triton sees the id infer gets for the same caller, another for another caller', async () => {
    for (const op of ['generate', 'generate_stream'] as const) {
      for (const id of [77, 'chat-1']) {
        const infer = await send(AGENT, id, 'json');
        const body = JSON.stringify({ text_input: 'hi', parameters: { sequence_id: id, sequence_start: true, sequence_end: true } });
        const mine = await generate(AGENT, op, body);
        expect(mine.answer.status, mine.answer.body.toString()).toBe(200);
        expect(mine.ids, `${op} ${id}`).toEqual([infer]);
        // Policies see the caller's own id.
        expect((mine.args.parameters as { sequence_id: unknown }).sequence_id).toEqual(id);
        // The answer is Triton's, byte for byte, as the caller's own request would get it.
        const direct = await raw(`${triton.url}/v2/models/echo/${op}`, { body });
        expect(mine.answer.body.toString()).toBe(direct.body.toString());
        expect((await generate(AGENT, op, body)).ids).toEqual([infer]);
        const theirs = await generate(OTHER, op, body);
        expect(theirs.ids).toHaveLength(1);
        expect(theirs.ids[0]).not.toEqual(infer);
        // A top-level sequence_id reaches the model as the same request parameter (Triton passes every member that
        // is not an input as one): mapped the same way.
        const top = await generate(AGENT, op, JSON.stringify({ text_input: 'hi', sequence_id: id }));
        expect(top.answer.status, top.answer.body.toString()).toBe(200);
        expect(top.ids).toEqual([infer]);
        expect(top.args.sequence_id).toEqual(id);
      }
    }
  });

  it('generate bodies without a sequence reach Triton byte for byte; 0 and "" are ids there, mapped; one naming it twice is refused', async () => {
    for (const op of ['generate', 'generate_stream'] as const) {
      for (const body of ['{ "text_input" : "h\u00e9" , "parameters":{"temperature":0.50} }', '{"text_input":"hi","parameters":{"max_tokens":3}}', '{"text_input":"hi"}']) {
        const r = await generate(AGENT, op, body);
        expect(r.answer.status, r.answer.body.toString()).toBe(200);
        expect(Buffer.concat(captured).toString()).toContain(body);
      }
      // infer's "no sequence" (0, "") means nothing to a model reading the parameter: another caller's 0 is not ours.
      for (const id of [0, '']) {
        const body = JSON.stringify({ text_input: 'hi', parameters: { sequence_id: id, temperature: 0.5 } });
        const mine = await generate(AGENT, op, body);
        expect(mine.answer.status, mine.answer.body.toString()).toBe(200);
        expect(mine.ids).toHaveLength(1);
        expect(mine.ids[0]).not.toEqual(id);
        const theirs = await generate(OTHER, op, body);
        expect(theirs.ids[0]).not.toEqual(mine.ids[0]);
      }
      const flag = await generate(AGENT, op, JSON.stringify({ text_input: 'hi', parameters: { sequence_id: true } }));
      expect(kserveError(flag.answer, 400, 'TG_INVALID_REQUEST')).toMatch(/sequence_id/);
      expect(captured).toHaveLength(0);
      // Both places at once: Triton would hand the model whichever comes last; the gateway does not guess.
      const twice = await generate(AGENT, op, JSON.stringify({ text_input: 'hi', sequence_id: 5, parameters: { sequence_id: 6 } }));
      expect(kserveError(twice.answer, 400, 'TG_INVALID_REQUEST')).toMatch(/sequence_id/);
      expect(captured).toHaveLength(0);
    }
  });

  it('a model keeping state by the generate sequence_id keeps two callers naming the same id apart', async () => {
    const say = async (who: string, text: string, flags: Record<string, boolean>, op: Generation = 'generate'): Promise<string> => {
      const r = await generate(who, op, JSON.stringify({ text_input: text, parameters: { sequence_id: 5, ...flags } }), 'tally');
      expect(r.answer.status, r.answer.body.toString()).toBe(200);
      const json = op === 'generate' ? r.answer.body.toString() : r.answer.body.toString().replace(/^data: /, '');
      return (JSON.parse(json) as { text_output: string }).text_output;
    };
    expect(await say(AGENT, 'a1', { sequence_start: true })).toBe('a1');
    // The other caller names the same id: it starts its own sequence, it does not read or feed the first one.
    expect(await say(OTHER, 'b1', {}, 'generate_stream')).toBe('b1');
    expect(await say(AGENT, 'a2', {}, 'generate_stream')).toBe('a1 a2');
    expect(await say(OTHER, 'b2', { sequence_end: true })).toBe('b1 b2');
    expect(await say(AGENT, 'a3', { sequence_end: true })).toBe('a1 a2 a3');
  });
});
