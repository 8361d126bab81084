/**
 * SIGTERM while MCP calls and streamed OpenAI completions run against a gateway process (`node bin/tollgate.mjs
 * serve`): the process drains what it accepted (streams run to their end within drainMs), refuses newcomers cleanly,
 * flushes the audit log and exits 0. Afterwards, from the clients' side and the log's:
 * - every MCP call a client saw answered is in the log once, with its outcome; no call the log holds was left
 *   without an answer (a reset or a truncated answer after acceptance);
 * - every completion stream that started was completed ([DONE]), none truncated; per caller, the log holds exactly
 *   as many successful completions as the caller received;
 * - what was refused got TG_SHUTTING_DOWN (or found the listener closed), nothing else.
 */
import { afterAll, expect, it } from 'vitest';
import type { AuditRecord } from '../../src/audit/format.ts';
import { queryLog } from '../../src/audit/query.ts';
import { verifyLog } from '../../src/audit/verify.ts';
import { devAuthHeaders, mcpBackend, route } from '../helpers/gateway.ts';
import { startConfiguredGateway, type ConfiguredGateway } from '../helpers/gateway-process.ts';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { LLAMA, LLAMA_UPSTREAM, modelsRoute, openaiBackend } from '../helpers/openai-gateway.ts';
import { openAiCall, rawMcpSession, steadyLoad } from '../helpers/steady-load.ts';
import { startVllm, type VllmServer } from '../helpers/vllm-server.ts';

let fixture: FixtureServer | undefined;
let vllm: VllmServer | undefined;
let started: ConfiguredGateway | undefined;

afterAll(async () => {
  started?.dispose();
  await fixture?.close();
  await vllm?.stop();
});

/**
 * Outcomes that mean "refused before acceptance" while the gateway stops. A connection the kernel completed in the
 * instant the listener closed is reset before the gateway reads a byte (ECONNRESET on a fresh connection, before any
 * answer began: a reset after it is `throw-AFTER_ANSWER_ECONNRESET`, a broken answer): allowed together with the
 * proof below that no such call reached the upstream (MCP: the tool ran once per answered call; OpenAI: the backend
 * saw one completion per stream a caller received, and the log holds no other).
 */
const REFUSED = new Set(['TG_SHUTTING_DOWN', 'throw-ECONNREFUSED', 'http-503', 'throw-ECONNRESET']);

it('drains calls and streams, refuses newcomers cleanly, flushes the audit log and exits 0', async () => {
  fixture = await startHttpMcpServer({ name: 'fixture', json: true });
  // Streams of 20 tokens 25 ms apart: ~0.5 s each, so several are always mid-stream at SIGTERM.
  vllm = await startVllm({ name: 'llm', models: [LLAMA_UPSTREAM], tokenDelayMs: 25 });
  const gw = (started = await startConfiguredGateway({
    label: 'resil-sigterm',
    name: 'sigterm',
    drainMs: 8000,
    spec: `  identity:
    dev: { enabled: true, trustDomain: example.org }
  audit:
    segment: { maxRecords: 400 }
`,
    routes:
      mcpBackend('fixture', { url: fixture.url }) +
      route('mcp', '/mcp', ['fixture']) +
      openaiBackend('llm', { url: vllm.url, healthCheck: { enabled: false } }) +
      modelsRoute('models', ['llm'], { models: [{ name: LLAMA, backend: 'llm', model: LLAMA_UPSTREAM }] }),
  }));
  const config = gw.config;
  const mcpHeaders = devAuthHeaders(config, 'spiffe://example.org/agents/mcp-load', gw.url);
  const sessions = await Promise.all([0, 1, 2, 3].map(() => rawMcpSession(`${gw.url}/mcp`, mcpHeaders)));
  const sent = new Map<string, string>();
  const mcp = steadyLoad(4, async (w, i) => {
    const message = `w${w}-${i}`;
    let kind: string;
    try {
      kind = await sessions[w]!.call('fixture__echo', { message }, message);
    } catch (err) {
      kind = `throw-${(err as { code?: string }).code ?? 'error'}`;
    }
    sent.set(message, kind);
    return kind;
  }, { maxCalls: 20_000, pauseMs: 5 });
  const streamers = [0, 1, 2].map((k) => ({ id: `spiffe://example.org/agents/streamer-${k}`, ok: 0, kinds: {} as Record<string, number> }));
  const openai = steadyLoad(3, async (w) => {
    const s = streamers[w]!;
    const kind = await openAiCall(`${gw.url}/v1`, devAuthHeaders(config, s.id, gw.url), LLAMA, { stream: true, content: 'words 20' }).catch((err: { code?: string }) => `throw-${err.code ?? 'error'}`);
    s.kinds[kind] = (s.kinds[kind] ?? 0) + 1;
    if (kind === 'ok') s.ok++;
    return kind;
  }, { maxCalls: 2_000 });
  let code: number | null;
  try {
    await mcp.more(200);
    await openai.more(6);
    gw.child.kill('SIGTERM');
    code = await gw.exited;
  } finally {
    await mcp.stop();
    await openai.stop();
  }
  expect(code, gw.stderr()).toBe(0);

  // What the clients saw: answers, or a clean refusal; never a broken answer.
  const mcpKinds = mcp.kinds();
  const openaiKinds = openai.kinds();
  expect(Object.keys(mcpKinds).filter((k) => k !== 'ok' && !REFUSED.has(k)), JSON.stringify(mcpKinds)).toEqual([]);
  expect(Object.keys(openaiKinds).filter((k) => k !== 'ok' && !REFUSED.has(k)), JSON.stringify(openaiKinds)).toEqual([]);

  const dir = gw.auditDir;
  const records = [...queryLog(dir, { kinds: ['call'] })].map((l) => JSON.parse(l) as AuditRecord);
  // MCP: every answered call recorded once, ok; every recorded call was answered.
  const mcpRecords = records.filter((r) => r.protocol === 'mcp' && r.operation === 'tools/call');
  const byMessage = new Map<string, AuditRecord[]>();
  for (const r of mcpRecords) {
    const m = (r.args as { message?: string } | undefined)?.message;
    if (m !== undefined) byMessage.set(m, [...(byMessage.get(m) ?? []), r]);
  }
  const answered = [...sent].filter(([, k]) => k === 'ok').map(([m]) => m);
  expect(answered.length).toBeGreaterThanOrEqual(200);
  expect(answered.filter((m) => byMessage.get(m)?.length !== 1 || byMessage.get(m)![0]!.outcome !== 'ok')).toEqual([]);
  expect([...byMessage.keys()].filter((m) => sent.get(m) !== 'ok')).toEqual([]);
  // ... and the upstream ran the tool exactly once per answered call: whatever was refused or reset did no work.
  expect(fixture.metas.filter((m) => m.tool === 'echo').length).toBe(answered.length);
  // OpenAI: per caller, as many successful completions in the log as the caller received.
  for (const s of streamers) {
    const logged = records.filter((r) => r.protocol === 'openai' && r.principal === s.id);
    expect(logged.filter((r) => r.outcome === 'ok').length, `${s.id}: ${JSON.stringify(s.kinds)}`).toBe(s.ok);
    expect(logged.filter((r) => r.outcome !== 'ok'), JSON.stringify(s.kinds)).toEqual([]);
  }
  // ... and the backend generated exactly the completions the callers received: whatever was refused or reset did no work.
  const completions = vllm.seen.filter((r) => r.path.endsWith('/chat/completions')).length;
  expect(completions, JSON.stringify(openaiKinds)).toBe(streamers.reduce((n, s) => n + s.ok, 0));
  // Sealed and verifiable without --allow-open.
  const v = verifyLog(dir);
  expect(v.problem).toBeUndefined();
  expect(v.ok).toBe(true);
  console.log(`[resil] SIGTERM under load: MCP ${JSON.stringify(mcpKinds)}, OpenAI streams ${JSON.stringify(openaiKinds)}, ${records.length} call records, exit ${code}`);
});
