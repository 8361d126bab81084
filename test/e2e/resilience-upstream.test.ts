/**
 * Upstream faults while a steady load runs on two upstreams of each path, one of them behind a fault proxy (real SDK
 * MCP servers, real vLLM-format backends; the proxy hangs, resets, answers garbage, slows down, resets mid-stream):
 * - calls to the faulty upstream get a clear error in their protocol (TG_UPSTREAM_TIMEOUT, TG_UPSTREAM_UNAVAILABLE,
 *   TG_UPSTREAM_OVERLOADED once its in-flight bound is reached...), never a hang past the timeouts;
 * - calls to the other upstream are unaffected (every one succeeds);
 * - once the fault is gone the faulty upstream serves again without a restart (recovery time measured);
 * - the gateway does not crash, and its memory does not grow across the faults.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GATEWAY_YAML, eventually, mcpBackend, route, startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startFaultProxy, type FaultMode, type FaultProxy } from '../helpers/fault-proxy.ts';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { LLAMA_UPSTREAM, modelsRoute, openaiBackend } from '../helpers/openai-gateway.ts';
import { openAiCall, rawMcpSession, steadyLoad, type SteadyLoad } from '../helpers/steady-load.ts';
import { startVllm, type VllmServer } from '../helpers/vllm-server.ts';

const FIRST_BYTE_MS = 1_000;

let mcpA: FixtureServer;
let mcpB: FixtureServer;
let llmA: VllmServer;
let llmB: VllmServer;
let proxyMcp: FaultProxy;
let proxyLlm: FaultProxy;
let gw: TestGateway;
const table: string[] = [];

beforeAll(async () => {
  mcpA = await startHttpMcpServer({ name: 'a', json: true });
  mcpB = await startHttpMcpServer({ name: 'b', json: true });
  llmA = await startVllm({ name: 'llm-a', models: [LLAMA_UPSTREAM], tokenDelayMs: 5 });
  llmB = await startVllm({ name: 'llm-b', models: [LLAMA_UPSTREAM] });
  proxyMcp = await startFaultProxy({ port: mcpA.port });
  proxyLlm = await startFaultProxy({ port: llmA.port });
  const timeouts = { headersMs: FIRST_BYTE_MS, bodyIdleMs: FIRST_BYTE_MS, connectMs: 500 };
  const pool = {
    healthCheck: { intervalMs: 200, timeoutMs: 500, unhealthyThreshold: 2, healthyThreshold: 1 },
    outlierDetection: { consecutiveFailures: 3, baseEjectionMs: 2_000 },
    circuitBreaker: { maxRequests: 4 },
    timeouts,
  };
  gw = await startTestGateway({
    'mcp.yaml':
      mcpBackend('a', { url: `${proxyMcp.url}${new URL(mcpA.url).pathname}`, timeouts, circuitBreaker: { maxRequests: 4 } }) +
      mcpBackend('b', { url: mcpB.url, timeouts }) +
      route('mcp', '/mcp', ['a', 'b']),
    'models.yaml':
      openaiBackend('llm-a', { url: proxyLlm.url, ...pool }) +
      openaiBackend('llm-b', { url: llmB.url, ...pool }) +
      modelsRoute('models', ['llm-a', 'llm-b'], {
        models: [
          { name: 'model-a', backend: 'llm-a', model: LLAMA_UPSTREAM },
          { name: 'model-b', backend: 'llm-b', model: LLAMA_UPSTREAM },
        ],
      }),
  }, { gatewayYaml: GATEWAY_YAML });
});

afterAll(async () => {
  console.log(`[resil] upstream faults\n${table.join('\n')}`);
  await gw?.stop();
  await proxyMcp?.close();
  await proxyLlm?.close();
  await mcpA?.close();
  await mcpB?.close();
  await llmA?.stop();
  await llmB?.stop();
});

interface Run {
  readonly faulty: SteadyLoad;
  readonly healthy: SteadyLoad;
}

/**
 * Injects `mode` while both loads run, until the faulty upstream's load saw `failures` failures; then removes it
 * and waits for recovery. Returns the failures by kind on the faulty side and the recovery time.
 */
async function fault(run: Run, proxy: FaultProxy, mode: FaultMode, name: string, opts: { slowMs?: number; failures?: number } = {}): Promise<{ faulty: Record<string, number>; healthy: Record<string, number>; recoveryMs: number }> {
  await run.faulty.more(5);
  const t0 = performance.now();
  proxy.mode(mode, { slowMs: opts.slowMs });
  const wanted = opts.failures ?? 3;
  await eventually(() => run.faulty.outcomes.filter((o) => o.at >= t0 && o.kind !== 'ok').length >= wanted, 20_000, `${name}: failures seen`);
  await run.healthy.more(10);
  proxy.mode('pass');
  const t1 = performance.now();
  await eventually(() => run.faulty.recoveredAfter(t1, 5) !== undefined, 20_000, `${name}: recovery`);
  const recoveryMs = run.faulty.recoveredAfter(t1, 5)!;
  const faulty = run.faulty.kinds(t0, t1);
  const healthy = run.healthy.kinds(t0);
  table.push(`| ${name} | ${JSON.stringify(faulty)} | other upstream ${JSON.stringify(healthy)} | recovery ${recoveryMs.toFixed(0)} ms |`);
  return { faulty, healthy, recoveryMs };
}

/** Recovery bound: ejection/health-check/timeouts of ~1-2 s configured here, 5x for a loaded machine. */
const RECOVERY_BOUND_MS = 12_000;

describe('MCP upstream faults (federated route, one server behind a fault proxy)', () => {
  let run: Run;
  beforeAll(async () => {
    const sa = await rawMcpSession(`${gw.url}/mcp`, gw.authHeaders());
    const sb = await rawMcpSession(`${gw.url}/mcp`, gw.authHeaders());
    run = {
      faulty: steadyLoad(6, (w, i) => sa.call('a__echo', { message: `a${w}-${i}` }, `a${w}-${i}`), { maxCalls: 50_000, pauseMs: 20 }),
      healthy: steadyLoad(2, (w, i) => sb.call('b__echo', { message: `b${w}-${i}` }, `b${w}-${i}`), { maxCalls: 50_000, pauseMs: 20 }),
    };
  });
  afterAll(async () => {
    await run?.faulty.stop();
    await run?.healthy.stop();
  });

  const cases: Array<[FaultMode, string, readonly string[]]> = [
    ['stall', 'hang', ['TG_UPSTREAM_TIMEOUT', 'TG_UPSTREAM_OVERLOADED']],
    ['reset', 'connection reset', ['TG_UPSTREAM_UNAVAILABLE']],
    ['garbage', 'garbage answers', ['TG_UPSTREAM_UNAVAILABLE', 'TG_UPSTREAM_BAD_RESPONSE']],
  ];
  for (const [mode, name, expected] of cases) {
    it(`${name}: callers get ${expected.join(' or ')}, the other server is unaffected, recovery without restart`, async () => {
      const r = await fault(run, proxyMcp, mode, `mcp ${name}`);
      const failures = Object.keys(r.faulty).filter((k) => k !== 'ok');
      expect(failures.length).toBeGreaterThan(0);
      for (const k of failures) expect(expected, JSON.stringify(r.faulty)).toContain(k);
      expect(Object.keys(r.healthy), JSON.stringify(r.healthy)).toEqual(['ok']);
      expect(r.recoveryMs).toBeLessThan(RECOVERY_BOUND_MS);
    });
  }

  it('a hang holds at most circuitBreaker.maxRequests calls to that server: the rest are refused at once', async () => {
    const t0 = performance.now();
    proxyMcp.mode('stall');
    try {
      await eventually(() => (run.faulty.kinds(t0).TG_UPSTREAM_OVERLOADED ?? 0) > 0, 10_000, 'per-upstream bound reached');
    } finally {
      proxyMcp.mode('pass');
    }
    await eventually(() => run.faulty.recoveredAfter(performance.now() - 1, 3) !== undefined || run.faulty.recoveredAfter(t0, 3) !== undefined, 20_000, 'recovery');
    // Refusals at the bound are immediate: far faster than the first-byte timeout.
    const refused = run.faulty.outcomes.filter((o) => o.at >= t0 && o.kind === 'TG_UPSTREAM_OVERLOADED');
    expect(Math.min(...refused.map((o) => o.ms))).toBeLessThan(FIRST_BYTE_MS);
  });
});

describe('OpenAI upstream faults (two backends, one behind a fault proxy)', () => {
  let run: Run;
  beforeAll(async () => {
    const h = gw.authHeaders();
    run = {
      faulty: steadyLoad(3, () => openAiCall(`${gw.url}/v1`, h, 'model-a', { stream: true, content: 'words 5' }), { maxCalls: 50_000, pauseMs: 20 }),
      healthy: steadyLoad(2, () => openAiCall(`${gw.url}/v1`, h, 'model-b'), { maxCalls: 50_000, pauseMs: 20 }),
    };
  });
  afterAll(async () => {
    await run?.faulty.stop();
    await run?.healthy.stop();
  });

  const cases: Array<[FaultMode, string, readonly string[], number?]> = [
    ['stall', 'hang', ['TG_UPSTREAM_TIMEOUT', 'TG_UPSTREAM_UNAVAILABLE', 'TG_UPSTREAM_OVERLOADED', 'stream-TG_UPSTREAM_TIMEOUT']],
    ['reset', 'connection reset (mid-stream and new)', ['TG_UPSTREAM_UNAVAILABLE', 'stream-TG_UPSTREAM_UNAVAILABLE', 'stream-truncated']],
    ['garbage', 'garbage answers', ['TG_UPSTREAM_UNAVAILABLE', 'TG_UPSTREAM_BAD_RESPONSE', 'stream-TG_UPSTREAM_UNAVAILABLE']],
    ['slow', 'very slow (1.5 s a chunk)', ['TG_UPSTREAM_TIMEOUT', 'stream-TG_UPSTREAM_TIMEOUT', 'TG_UPSTREAM_UNAVAILABLE', 'TG_UPSTREAM_OVERLOADED'], 1_500],
  ];
  for (const [mode, name, expected, slowMs] of cases) {
    it(`${name}: callers get ${expected.join(' / ')}, the other backend is unaffected, recovery without restart`, async () => {
      const r = await fault(run, proxyLlm, mode, `openai ${name}`, { slowMs });
      const failures = Object.keys(r.faulty).filter((k) => k !== 'ok');
      expect(failures.length).toBeGreaterThan(0);
      for (const k of failures) expect(expected, JSON.stringify(r.faulty)).toContain(k);
      expect(Object.keys(r.healthy), JSON.stringify(r.healthy)).toEqual(['ok']);
      expect(r.recoveryMs).toBeLessThan(RECOVERY_BOUND_MS);
    });
  }
});
