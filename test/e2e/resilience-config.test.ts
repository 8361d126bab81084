/**
 * Config faults while a steady load of MCP and OpenAI calls runs: each broken change is refused (shown by /readyz
 * with file and line), the running config stays in force (same revision, every call still served), and a valid
 * change afterwards applies. Complements config-reload.test.ts and policy-reload.test.ts (policy edits refused) with
 * the cases fuzzing found or that touch this issue's settings: a YAML alias to no anchor (it used to throw out of the
 * loader), an alias bomb, listener timeouts that contradict each other, an overload section out of range, a Backend
 * of an unregistered protocol, a route to a missing Backend next to a directory named like a config file.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GATEWAY_YAML, eventually, mcpBackend, route, startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { LLAMA, LLAMA_UPSTREAM, modelsRoute, openaiBackend } from '../helpers/openai-gateway.ts';
import { openAiCall, rawMcpSession, steadyLoad, type SteadyLoad } from '../helpers/steady-load.ts';
import { startVllm, type VllmServer } from '../helpers/vllm-server.ts';

let fixture: FixtureServer;
let vllm: VllmServer;
let gw: TestGateway;
let mcp: SteadyLoad;
let openai: SteadyLoad;

beforeAll(async () => {
  fixture = await startHttpMcpServer({ name: 'fixture', json: true });
  vllm = await startVllm({ name: 'llm', models: [LLAMA_UPSTREAM] });
  gw = await startTestGateway({
    'mcp.yaml': mcpBackend('fixture', { url: fixture.url }) + route('mcp', '/mcp', ['fixture']),
    'models.yaml':
      openaiBackend('llm', { url: vllm.url, healthCheck: { enabled: false } }) + modelsRoute('models', ['llm'], { models: [{ name: LLAMA, backend: 'llm', model: LLAMA_UPSTREAM }] }),
  });
  const s = await rawMcpSession(`${gw.url}/mcp`, gw.authHeaders());
  const h = gw.authHeaders();
  mcp = steadyLoad(2, (w, i) => s.call('fixture__echo', { message: `m${w}-${i}` }, `m${w}-${i}`), { maxCalls: 50_000, pauseMs: 10 });
  openai = steadyLoad(1, () => openAiCall(`${gw.url}/v1`, h, LLAMA), { maxCalls: 50_000, pauseMs: 10 });
  await mcp.more(10);
});

afterAll(async () => {
  await mcp?.stop();
  await openai?.stop();
  await gw?.stop();
  await fixture?.close();
  await vllm?.stop();
});

const BAD: Array<[string, string, RegExp]> = [
  ['an alias to no anchor', 'apiVersion: tollgate.dev/v1alpha1\nkind: Route\nmetadata: *nothing\n', /alias/i],
  ['an alias bomb', `a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n`, /alias/i],
  ['headersTimeoutMs over requestTimeoutMs', `${GATEWAY_YAML}  http: { headersTimeoutMs: 60000, requestTimeoutMs: 1000 }\n`, /headersTimeoutMs/],
  ['a negative overload bound', `${GATEWAY_YAML}  overload: { maxInFlight: -1 }\n`, /maxInFlight|>=|too small/i],
  ['a Backend of an unregistered protocol', 'apiVersion: tollgate.dev/v1alpha1\nkind: Backend\nmetadata: { name: odd }\nspec: { protocol: gopher, url: "http://127.0.0.1:9" }\n', /protocol/i],
];

async function refusedWhileServing(name: string, apply: () => void, undo: () => void, message: RegExp): Promise<void> {
  const revision = gw.gateway.state().snapshot.revision;
  const t0 = performance.now();
  apply();
  await eventually(() => gw.gateway.readiness().config.rejected !== undefined, 5_000, `${name}: refused`);
  const issues = gw.gateway.readiness().config.rejected!.issues;
  expect(issues.map((i) => i.message).join('\n')).toMatch(message);
  await mcp.more(10);
  await openai.more(3);
  expect(gw.gateway.state().snapshot.revision).toBe(revision);
  undo();
  await eventually(() => gw.gateway.readiness().config.rejected === undefined && gw.gateway.state().snapshot.revision > revision, 5_000, `${name}: valid config applied`);
  const kinds = { mcp: mcp.kinds(t0), openai: openai.kinds(t0) };
  expect(kinds, JSON.stringify(kinds)).toEqual({ mcp: { ok: expect.any(Number) }, openai: { ok: expect.any(Number) } });
}

describe('config faults under load', () => {
  for (const [name, text, message] of BAD) {
    it(`${name}: refused, the running config serves every call, a fix applies`, async () => {
      const file = name.includes('Timeout') || name.includes('overload') ? 'gateway.yaml' : 'extra.yaml';
      const original = file === 'gateway.yaml' ? GATEWAY_YAML : '';
      await refusedWhileServing(
        name,
        () => gw.write(file, text),
        () => gw.write(file, original === '' ? '# fixed\n' : `${original}# fixed\n`),
        message,
      );
    });
  }

  it('a directory named like a config file is skipped; a route to a missing Backend beside it is refused', async () => {
    rmSync(join(gw.dir, 'extra.yaml'), { force: true });
    mkdirSync(join(gw.dir, 'sub.yaml'));
    await refusedWhileServing(
      'route to a missing backend',
      () => gw.write('mcp.yaml', mcpBackend('fixture', { url: fixture.url }) + route('mcp', '/mcp', ['fixture']) + route('more', '/more', ['missing'])),
      () => gw.write('mcp.yaml', mcpBackend('fixture', { url: fixture.url }) + route('mcp', '/mcp', ['fixture'])),
      /missing/,
    );
  });
});
