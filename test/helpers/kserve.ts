/**
 * A gateway in front of real Triton servers (test/helpers/triton.ts) for the KServe v2 tests: config builders, the
 * default policies with the test models granted, and small clients for KServe's wire format (JSON and binary
 * tensors, SSE read event by event with arrival times).
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GATEWAY_YAML, startTestGateway, type TestGateway } from './gateway.ts';

/** An agent granted every model. */
export const AGENT = 'spiffe://example.org/agents/kserve-test';
/** The default policy's support agent: granted llama-3.1-8b-instruct only (so the Triton models are denied). */
export const SUPPORT = 'spiffe://example.org/agents/support';

/** The model names callers use in these tests (all on the test policy's allow-list). */
export const TEST_MODELS = ['add', 'echo', 'stream', 'tally', 'accumulate', 'sum', 'triton-nope', 'triton-add', 'triton-echo', 'triton-stream', 'unrouted'];

export function kserveBackend(name: string, spec: Record<string, unknown>): string {
  return `---
apiVersion: tollgate.dev/v1alpha1
kind: Backend
metadata: { name: ${name} }
spec: ${JSON.stringify({ protocol: 'kserve', ...spec })}
`;
}

export function kserveRoute(name: string, backends: string[], extra: Record<string, unknown> = {}, path = '/v2'): string {
  return `---
apiVersion: tollgate.dev/v1alpha1
kind: Route
metadata: { name: ${name} }
spec: ${JSON.stringify({ rules: [{ matches: [{ path: { type: 'PathPrefix', value: path } }], backendRefs: backends.map((b) => ({ name: b })) }], ...extra })}
`;
}

/** A model version the test policy refuses (any model). */
/** The models of the Triton the tests start, as a route serves them: by name, one renamed, a pattern. */
export const TRITON_ROUTE_MODELS = [
  { name: 'add', backend: 'triton' },
  { name: 'echo', backend: 'triton' },
  { name: 'stream', backend: 'triton' },
  { name: 'sum', backend: 'triton', model: 'add' },
  { pattern: 'triton-*', backend: 'triton', model: '*' },
];

export const WITHDRAWN_VERSION = '13';

/**
 * The default policies (built by the real opa) with AGENT granted every model, the test models allow-listed, and
 * version WITHDRAWN_VERSION of every model refused.
 */
export function kservePolicyGateway(extra = ''): string {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-kserve-policy-'));
  mkdirSync(join(dir, 'tollgate'));
  for (const f of readdirSync('policies/tollgate')) {
    if (f.endsWith('_test.rego')) continue;
    let text = readFileSync(join('policies/tollgate', f), 'utf8');
    if (f === 'grants.rego') text = text.replace('grants := [', `grants := [\n\t{"spiffe_id": "${AGENT}", "models": ["*"], "rate_class": "standard"},`);
    if (f === 'models.rego') text = text.replace('allowed := {', `allowed := {\n${TEST_MODELS.map((m) => `\t"${m}": {"max_tokens": 4096, "cost_multiplier": 1},`).join('\n')}`);
    // A version the test policy withdraws: proves the path's version reaches the policy input (target.version).
    if (f === 'models.rego') text += `\nrefusals contains msg if {\n\tinput.target.kind == "model"\n\tinput.target.version == "${WITHDRAWN_VERSION}"\n\tmsg := sprintf("version %s of model %s is withdrawn", [input.target.version, input.target.name])\n}\n`;
    writeFileSync(join(dir, 'tollgate', f), text);
  }
  return `${GATEWAY_YAML}  identity:
    dev: { enabled: true, trustDomain: example.org }
  policy: { dir: ${JSON.stringify(dir)}, watch: false }
${extra}`;
}

export function startKServeGateway(files: Record<string, string>, gatewayYaml = kservePolicyGateway()): Promise<TestGateway> {
  return startTestGateway(files, { gatewayYaml });
}

export function auth(gw: TestGateway, spiffeId = AGENT): Record<string, string> {
  return { authorization: `Bearer ${gw.devToken(spiffeId)}` };
}

/** Inputs `a` and `b` of the `add` model as a KServe binary-tensor request: JSON header, then raw FP32 data. */
export function binaryAddRequest(a: number[], b: number[], opts: { binaryOutput?: boolean } = {}): { body: Buffer; headerLength: number } {
  const fa = Buffer.from(new Float32Array(a).buffer);
  const fb = Buffer.from(new Float32Array(b).buffer);
  const header = Buffer.from(
    JSON.stringify({
      inputs: [
        { name: 'a', datatype: 'FP32', shape: [1, a.length], parameters: { binary_data_size: fa.length } },
        { name: 'b', datatype: 'FP32', shape: [1, b.length], parameters: { binary_data_size: fb.length } },
      ],
      outputs: [{ name: 'sum', parameters: { binary_data: opts.binaryOutput ?? true } }],
    }),
  );
  return { body: Buffer.concat([header, fa, fb]), headerLength: header.length };
}

/** A binary-tensor infer answer: its JSON header and the FP32 values of its (single) output. */
export function parseBinaryAnswer(body: Buffer, headerLength: number): { header: Record<string, unknown>; values: number[] } {
  const header = JSON.parse(body.subarray(0, headerLength).toString('utf8')) as Record<string, unknown>;
  const data = body.subarray(headerLength);
  const copy = new Uint8Array(data);
  return { header, values: [...new Float32Array(copy.buffer, 0, copy.length / 4)] };
}

export interface TimedEvent {
  readonly data: string;
  readonly at: number;
}

/** POSTs and reads an SSE answer event by event, noting when each arrived (ms since the request). */
export async function readEvents(url: string, body: unknown, headers: Record<string, string>, signal?: AbortSignal): Promise<{ status: number; raw: Buffer; events: TimedEvent[] }> {
  const t0 = performance.now();
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body), signal });
  const events: TimedEvent[] = [];
  const chunks: Buffer[] = [];
  let pending = '';
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    chunks.push(Buffer.from(chunk));
    pending += Buffer.from(chunk).toString('utf8');
    let i: number;
    while ((i = pending.indexOf('\n\n')) >= 0) {
      const frame = pending.slice(0, i);
      pending = pending.slice(i + 2);
      const data = frame.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
      events.push({ data, at: performance.now() - t0 });
    }
  }
  return { status: res.status, raw: Buffer.concat(chunks), events };
}
