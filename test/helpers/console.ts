/**
 * A gateway with the operator console on its admin listener, after a mixed run of real traffic: MCP tool calls (the
 * official SDK client, against a real SDK tool server, one tool named like markup), OpenAI-compatible model calls
 * (the `openai` npm client, against the vLLM-format backend), policy denials (the default Rego policies, built by
 * the real opa) and a budget refusal, and A2A messages (the @a2a-js/sdk client, against an SDK agent). One task's
 * calls share a W3C trace id across MCP tools, A2A agents and model calls.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClientFactory, DefaultAgentCardResolver, JsonRpcTransportFactory } from '@a2a-js/sdk/client';
import OpenAI from 'openai';
import { startTestAgent, type TestAgent } from './a2a-agent.ts';
import { connectClient, eventually, GATEWAY_YAML, startTestGateway, type TestGateway } from './gateway.ts';
import { LLAMA, LLAMA_UPSTREAM, modelsRoute, openaiBackend } from './openai-gateway.ts';
import { startToolServer, type ToolServer } from './tool-server.ts';
import { startVllm, type VllmServer } from './vllm-server.ts';

export const ADMIN = 'spiffe://example.org/ops/console-admin';
/** Granted every tool of the `tools` server and every model. */
export const WORKER = 'spiffe://example.org/agents/worker';
/** The default policy's support agent: no tool of the `tools` server (its calls there are denied). */
export const SUPPORT = 'spiffe://example.org/agents/support';
/** Granted models, but its token budget is tiny. */
export const FRUGAL = 'spiffe://example.org/agents/frugal';
export const XSS_TOOL = '<img src=x onerror=alert(1)>';
export const TRACE_URL = 'https://jaeger.example.test/trace/{traceId}';

export interface ConsoleRun {
  readonly gw: TestGateway;
  readonly tools: ToolServer;
  readonly vllm: VllmServer;
  readonly agent: TestAgent;
  /** The task whose calls share a trace id, in the order they were made: [protocol, target]. */
  readonly task: { trace: string; steps: Array<[string, string]> };
  /** A token for the console (aud `<base>/console`) of any identity. */
  consoleToken(spiffeId: string): string;
  /** Another MCP call of `spiffeId` (tools/call of `search`); resolves with the JSON-RPC error message of a refusal. */
  callTool(spiffeId: string, tool?: string, traceparent?: string): Promise<string | undefined>;
  stop(): Promise<void>;
}

/** The default policies with grants for the test identities. */
function policyDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-console-policy-'));
  mkdirSync(join(dir, 'tollgate'));
  for (const f of readdirSync('policies/tollgate')) {
    if (f.endsWith('_test.rego')) continue;
    let text = readFileSync(join('policies/tollgate', f), 'utf8');
    if (f === 'grants.rego') {
      text = text.replace(
        'grants := [',
        `grants := [\n\t{"spiffe_id": "${WORKER}", "tools": ["tools/*"], "models": ["*"], "skills": ["echo/*"], "rate_class": "standard"},\n\t{"spiffe_id": "${FRUGAL}", "models": ["*"], "rate_class": "standard"},`,
      );
    }
    writeFileSync(join(dir, 'tollgate', f), text);
  }
  return dir;
}

export function traceparent(trace: string): string {
  return `00-${trace}-${randomBytes(8).toString('hex')}-01`;
}

// The SDK warns on every registration of the markup-named tool (a fresh server per request): that is the point here.
const warn = console.warn.bind(console);
console.warn = (...args: unknown[]) => {
  if (typeof args[0] === 'string' && /^(Tool name|  - Tool name|  - Allowed|Tool registration|Consider updating|See SEP)/.test(args[0])) return;
  warn(...args);
};

export async function startConsoleRun(opts: { adminExtra?: string } = {}): Promise<ConsoleRun> {
  const vllm = await startVllm({ name: 'llama', models: [LLAMA_UPSTREAM] });
  const tools = await startToolServer('tools', { search: ['q'], [XSS_TOOL]: ['q'], delete_all: [] });
  const agent = await startTestAgent();
  const gatewayYaml = `${GATEWAY_YAML}  identity:
    dev: { enabled: true, trustDomain: example.org }
  policy: { dir: ${JSON.stringify(policyDir())}, watch: false }
  limits:
    prices: [{ model: "*", input: 1, output: 2 }]
  admin:
    listener: { host: 127.0.0.1, port: 0 }
    principals: [${JSON.stringify(ADMIN)}]
    console: { enabled: true, traceUrl: ${JSON.stringify(TRACE_URL)} }
${opts.adminExtra ?? ''}`;
  const gw = await startTestGateway(
    {
      'mcp.yaml': `---
apiVersion: tollgate.dev/v1alpha1
kind: Backend
metadata: { name: tools }
spec: ${JSON.stringify({ protocol: 'mcp', url: tools.url })}
---
apiVersion: tollgate.dev/v1alpha1
kind: Route
metadata: { name: agents }
spec: ${JSON.stringify({ rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/mcp' } }], backendRefs: [{ name: 'tools' }] }] })}
`,
      'a2a.yaml': `---
apiVersion: tollgate.dev/v1alpha1
kind: Backend
metadata: { name: echo }
spec: ${JSON.stringify({ protocol: 'a2a', url: agent.url })}
---
apiVersion: tollgate.dev/v1alpha1
kind: Route
metadata: { name: a2a-agents }
spec: ${JSON.stringify({ a2a: { defaultVersion: '1.0', defaultSkills: { echo: 'echo' } }, rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/a2a' } }], backendRefs: [{ name: 'echo' }] }] })}
`,
      'models.yaml': openaiBackend('vllm-llama', { url: vllm.url }) + modelsRoute('models', ['vllm-llama'], { models: [{ name: LLAMA, backend: 'vllm-llama', model: LLAMA_UPSTREAM }] }),
      'budget.yaml': `---
apiVersion: tollgate.dev/v1alpha1
kind: Budget
metadata: { name: frugal-daily }
spec: { match: { protocols: [openai], principals: [${JSON.stringify(FRUGAL)}] }, key: [principal], window: day, tokens: 200 }
---
apiVersion: tollgate.dev/v1alpha1
kind: Budget
metadata: { name: agents-daily }
spec: { match: { protocols: [openai] }, key: [principal], window: day, tokens: 1000000, cost: 100 }
`,
    },
    { gatewayYaml },
  );
  const model = (spiffeId: string, headers: Record<string, string> = {}): OpenAI =>
    new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: gw.devToken(spiffeId), maxRetries: 0, defaultHeaders: headers });
  const callTool = async (spiffeId: string, tool = 'search', tp?: string): Promise<string | undefined> => {
    let client: Awaited<ReturnType<typeof connectClient>> | undefined;
    try {
      client = await connectClient(`${gw.url}/mcp`, { headers: { authorization: `Bearer ${gw.devToken(spiffeId)}`, ...(tp ? { traceparent: tp } : {}) } });
      await client.callTool({ name: `tools__${tool}`, arguments: { q: 'console' } });
      return undefined;
    } catch (err) {
      // A JSON-RPC error answer (the SDK's McpError, whichever copy of the module made it).
      if (!(err instanceof Error) || typeof (err as { code?: unknown }).code !== 'number') throw err;
      return err.message;
    } finally {
      await client?.close();
    }
  };

  // One task across protocols: a tool, a model call, the markup-named tool, another model call. Each request
  // carries the task's trace id in its traceparent.
  const trace = randomBytes(16).toString('hex');
  const steps: Array<[string, string]> = [];
  const worker = await connectClient(`${gw.url}/mcp`, { headers: { authorization: `Bearer ${gw.devToken(WORKER)}`, traceparent: traceparent(trace) } });
  await worker.listTools();
  await worker.callTool({ name: 'tools__search', arguments: { q: 'flights to Lisbon', api_key: 'sk-live-should-never-show' } });
  steps.push(['mcp', 'tools__search']);
  await model(WORKER, { traceparent: traceparent(trace) }).chat.completions.create({ model: LLAMA, messages: [{ role: 'user', content: 'words 5 plan' }], max_tokens: 20 });
  steps.push(['openai', LLAMA]);
  await worker.callTool({ name: `tools__${XSS_TOOL}`, arguments: { q: 'markup' } });
  steps.push(['mcp', `tools__${XSS_TOOL}`]);
  const a2aFetch: typeof fetch = (input, init) => {
    const headers = new Headers(init?.headers);
    headers.set('authorization', `Bearer ${gw.devToken(WORKER)}`);
    headers.set('traceparent', traceparent(trace));
    return fetch(input, { ...init, headers });
  };
  const a2a = await new ClientFactory({ transports: [new JsonRpcTransportFactory({ fetchImpl: a2aFetch })], cardResolver: new DefaultAgentCardResolver({ fetchImpl: a2aFetch }) }).createFromUrl(`${gw.url}/a2a/echo/`);
  await a2a.sendMessage({ message: { messageId: randomBytes(8).toString('hex'), role: 1, parts: [{ content: { $case: 'text', value: 'hand over' } }] } } as never);
  steps.push(['a2a', 'echo']);
  await model(WORKER, { traceparent: traceparent(trace) }).chat.completions.create({ model: LLAMA, messages: [{ role: 'user', content: 'words 3 summary' }], max_tokens: 20 });
  steps.push(['openai', LLAMA]);
  await worker.close();

  // Denials: the support agent may not use these tools; a budget too small for the frugal agent's request.
  for (const tool of ['search', 'delete_all']) {
    if ((await callTool(SUPPORT, tool)) === undefined) throw new Error(`the support agent should have been denied ${tool}`);
  }
  await model(FRUGAL)
    .chat.completions.create({ model: LLAMA, messages: [{ role: 'user', content: 'words 5 too much' }], max_tokens: 500 })
    .then(
      () => {
        throw new Error('the frugal agent should have hit its budget');
      },
      (err: unknown) => {
        if (!(err instanceof OpenAI.APIError) || err.status !== 429) throw err;
      },
    );

  const consoleToken = (spiffeId: string): string => gw.devToken(spiffeId, { audiences: [gw.resourceUri('/console')] });
  // Everything above is on disk (the audit writer works in the background).
  await eventually(async () => {
    const r = await fetch(`${gw.adminUrl}/console/api/calls?limit=50`, { headers: { authorization: `Bearer ${consoleToken(ADMIN)}` } });
    const body = (await r.json()) as { calls: Array<{ principal?: string; outcome?: string }> };
    return body.calls.some((c) => c.principal === FRUGAL && c.outcome === 'limited');
  }, 10_000, 'the mixed run to be in the audit log');
  return {
    gw,
    tools,
    vllm,
    agent,
    task: { trace, steps },
    consoleToken,
    callTool,
    stop: async () => {
      await gw.stop();
      await tools.close();
      await vllm.stop();
      await agent.close();
    },
  };
}
