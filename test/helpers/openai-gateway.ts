/**
 * An in-process gateway in front of vLLM-like backends (test/helpers/vllm-server.ts), and the official `openai` npm
 * client pointed at it with a dev JWT-SVID as its API key (the client sends it as `Authorization: Bearer`).
 * `rawFetch` records the exact bytes each response body carried to the client.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { GATEWAY_YAML, startTestGateway, type TestGateway } from './gateway.ts';

export const LLAMA = 'llama-3.1-8b-instruct';
export const LLAMA_UPSTREAM = 'meta-llama/Llama-3.1-8B-Instruct';

export function openaiBackend(name: string, spec: Record<string, unknown>): string {
  return `---
apiVersion: tollgate.dev/v1alpha1
kind: Backend
metadata: { name: ${name} }
spec: ${JSON.stringify({ protocol: 'openai', ...spec })}
`;
}

export function modelsRoute(name: string, backends: string[], extra: Record<string, unknown> = {}, path = '/v1'): string {
  return `---
apiVersion: tollgate.dev/v1alpha1
kind: Route
metadata: { name: ${name} }
spec: ${JSON.stringify({ rules: [{ matches: [{ path: { type: 'PathPrefix', value: path } }], backendRefs: backends.map((b) => ({ name: b })) }], ...extra })}
`;
}

/** An agent the test policy grants every model (the default grants give example.org identities one model at most). */
export const AGENT = 'spiffe://example.org/agents/models-test';
/** The default policy's support agent: granted llama-3.1-8b-instruct only. */
export const SUPPORT = 'spiffe://example.org/agents/support';

/**
 * The default policies (policies/tollgate/*.rego, built by the real opa), with test data added: a grant of every
 * model to AGENT and the models the tests use on the allow-list (two that no backend serves: `mistral-7b-instruct`,
 * routed nowhere, and `Qwen/absent`, routed to a backend that does not have it). Identities are minted by the dev trust
 * domain, named example.org so the default grants apply to them.
 */
export function testPolicyGateway(extra = ''): string {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-openai-policy-'));
  mkdirSync(join(dir, 'tollgate'));
  for (const f of readdirSync('policies/tollgate')) {
    if (f.endsWith('_test.rego')) continue;
    let text = readFileSync(join('policies/tollgate', f), 'utf8');
    if (f === 'grants.rego') text = text.replace('grants := [', `grants := [\n\t{"spiffe_id": "${AGENT}", "models": ["*"], "rate_class": "standard"},`);
    if (f === 'models.rego') text = text.replace('allowed := {', 'allowed := {\n\t"Qwen/Qwen2.5-7B-Instruct": {"max_tokens": 4096, "cost_multiplier": 2},\n\t"Qwen/absent": {"max_tokens": 4096, "cost_multiplier": 1},\n\t"mistral-7b-instruct": {"max_tokens": 4096, "cost_multiplier": 1},');
    writeFileSync(join(dir, 'tollgate', f), text);
  }
  return `${GATEWAY_YAML}  identity:
    dev: { enabled: true, trustDomain: example.org }
  policy: { dir: ${JSON.stringify(dir)}, watch: false }
${extra}`;
}

export interface Recorded {
  readonly url: string;
  readonly status: number;
  body: Buffer;
  readonly done: Promise<Buffer>;
}

/** A fetch that keeps a copy of every response body as it reached the client. */
export function recordingFetch(): { fetch: typeof fetch; responses: Recorded[] } {
  const responses: Recorded[] = [];
  const wrapped: typeof fetch = async (input, init) => {
    const res = await fetch(input, init);
    if (res.body === null) return res;
    const [mine, theirs] = res.body.tee();
    const chunks: Buffer[] = [];
    const rec: { url: string; status: number; body: Buffer; done: Promise<Buffer> } = {
      url: String(input instanceof Request ? input.url : input),
      status: res.status,
      body: Buffer.alloc(0),
      done: Promise.resolve(Buffer.alloc(0)),
    };
    rec.done = (async () => {
      const reader = mine.getReader();
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          chunks.push(Buffer.from(value));
          rec.body = Buffer.concat(chunks);
        }
      } catch {
        // the client aborted: keep what arrived
      }
      return rec.body;
    })();
    responses.push(rec);
    return new Response(theirs, { status: res.status, statusText: res.statusText, headers: res.headers });
  };
  return { fetch: wrapped, responses };
}

export function openaiClient(gw: TestGateway, opts: { spiffeId?: string; fetch?: typeof fetch; maxRetries?: number; path?: string } = {}): OpenAI {
  return new OpenAI({
    baseURL: `${gw.url}${opts.path ?? '/v1'}`,
    apiKey: gw.devToken(opts.spiffeId ?? AGENT),
    maxRetries: opts.maxRetries ?? 0,
    fetch: opts.fetch,
  });
}

export async function startModelsGateway(files: Record<string, string>, gatewayYaml = testPolicyGateway()): Promise<TestGateway> {
  return startTestGateway(files, { gatewayYaml });
}
