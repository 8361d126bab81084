/**
 * What an OpenAI-compatible call leaves behind: OTLP spans with the GenAI semantic conventions (request and response
 * model, operation, usage, finish reasons) and the upstream span's context in the backend's traceparent; the audit
 * record with the target, usage (reported or counted) and model details; tollgate_tokens_total.
 */
import { join } from 'node:path';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryLog } from '../../src/audit/query.ts';
import { eventually, type TestGateway } from '../helpers/gateway.ts';
import { AGENT, LLAMA, LLAMA_UPSTREAM, modelsRoute, openaiBackend, openaiClient, startModelsGateway } from '../helpers/openai-gateway.ts';
import { OtlpReceiver } from '../helpers/otlp-receiver.ts';
import { startVllm, type VllmServer } from '../helpers/vllm-server.ts';

const OTEL_VARS = ['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_PROTOCOL', 'OTEL_BSP_SCHEDULE_DELAY'] as const;
const saved: Record<string, string | undefined> = {};

let vllm: VllmServer;
let gw: TestGateway;
let receiver: OtlpReceiver;

beforeAll(async () => {
  vllm = await startVllm({ models: [LLAMA_UPSTREAM], tokenDelayMs: 2 });
  receiver = new OtlpReceiver();
  await receiver.start();
  for (const k of OTEL_VARS) saved[k] = process.env[k];
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = receiver.httpUrl;
  process.env.OTEL_EXPORTER_OTLP_PROTOCOL = 'http/protobuf';
  process.env.OTEL_BSP_SCHEDULE_DELAY = '50';
  gw = await startModelsGateway({
    'models.yaml': openaiBackend('vllm', { url: vllm.url }) + modelsRoute('models', ['vllm'], { models: [{ name: LLAMA, aliases: ['llama'], backend: 'vllm', model: LLAMA_UPSTREAM }] }),
  });
});

afterAll(async () => {
  await gw?.stop();
  await vllm?.stop();
  await receiver?.close();
  for (const k of OTEL_VARS) {
    if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
});

function auditCalls(): Array<Record<string, unknown>> {
  return [...queryLog(join(gw.dir, '..', '.tollgate', 'audit'), { kinds: ['call'] })].map((l) => JSON.parse(l) as Record<string, unknown>).filter((r) => r.protocol === 'openai');
}

describe('telemetry and audit of model calls', () => {
  it('spans carry the GenAI conventions; the audit record and token metrics the usage', async () => {
    const client = openaiClient(gw);
    const stream = await client.chat.completions.create({ model: 'llama', messages: [{ role: 'user', content: 'words 4' }], stream: true });
    for await (const _ of stream) {
      // to the end
    }
    await client.chat.completions
      .create({ model: LLAMA, messages: [{ role: 'user', content: 'words 9 break 2' }], stream: true })
      .then(async (s) => {
        for await (const _ of s) {
          // broken after two tokens
        }
      })
      .catch(() => undefined);

    const isChat = (s: (typeof receiver.spans)[number]): boolean => s.kind === 2 && s.attributes['tollgate.protocol'] === 'openai' && s.attributes['tollgate.outcome'] === 'ok';
    await eventually(() => receiver.spans.some(isChat), 10_000, 'the server span');
    const server = receiver.spans.find(isChat)!;
    // GenAI conventions: `{gen_ai.operation.name} {gen_ai.request.model}`.
    expect(server.name).toBe(`chat ${LLAMA}`);
    expect(server.attributes).toMatchObject({
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'openai',
      'gen_ai.request.model': LLAMA,
      'gen_ai.response.model': LLAMA_UPSTREAM,
      'gen_ai.usage.input_tokens': 5,
      'gen_ai.usage.output_tokens': 4,
      'gen_ai.response.finish_reasons': ['stop'],
      'tollgate.principal.id': AGENT,
      'tollgate.upstream': 'vllm',
    });
    await eventually(() => receiver.spans.some((s) => s.parentSpanId === server.spanId && s.kind === 3), 10_000, 'the upstream span');
    const upstream = receiver.spans.find((s) => s.parentSpanId === server.spanId && s.kind === 3)!;
    expect(vllm.seen.some((r) => r.headers.traceparent === `00-${upstream.traceId}-${upstream.spanId}-01`)).toBe(true);
    // The upstream span is the inference span as the backend saw it: the model under its backend name.
    expect(upstream.name).toBe(`chat ${LLAMA_UPSTREAM}`);
    expect(upstream.attributes).toMatchObject({
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'openai',
      'gen_ai.request.model': LLAMA_UPSTREAM,
      'gen_ai.response.model': LLAMA_UPSTREAM,
      'gen_ai.usage.input_tokens': 5,
      'gen_ai.usage.output_tokens': 4,
    });

    await eventually(() => auditCalls().length >= 2, 10_000, 'the audit records');
    const [ok, broken] = auditCalls();
    expect(ok).toMatchObject({
      operation: 'chat.completions',
      principal: AGENT,
      upstream: 'vllm',
      target: { kind: 'model', name: LLAMA, server: 'vllm', local: LLAMA_UPSTREAM },
      usage: { inputTokens: 5, outputTokens: 4, reported: true },
      model: { operation: 'chat', requested: 'llama', response: LLAMA_UPSTREAM, metering: 'reported', finishReasons: ['stop'] },
      outcome: 'ok',
      status: 200,
    });
    // The prompt's content is not in the record (the policy did not ask for it); its shape is.
    expect(ok!.args).toMatchObject({ model: 'llama', stream: true, message_count: 1, message_roles: { user: 1 } });
    expect(JSON.stringify(ok)).not.toContain('words 4');
    expect(broken).toMatchObject({ usage: { outputTokens: 2 }, model: { metering: 'counted' }, outcome: 'upstream_error', code: 'TG_UPSTREAM_UNAVAILABLE' });

    const metrics = parsePrometheusTextFormat(await (await fetch(`${gw.adminUrl}/metrics`)).text());
    const tokens = metrics.find((f) => f.name === 'tollgate_tokens_total')!.metrics;
    const count = (direction: string): number => tokens.filter((m) => m.labels?.model === LLAMA && m.labels?.direction === direction).reduce((n, m) => n + Number(m.value), 0);
    expect(count('input')).toBe(5);
    expect(count('output')).toBe(6);
  });
});
