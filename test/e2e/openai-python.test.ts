/**
 * The official Python `openai` client (pinned, in the virtualenv scripts/install-tools.sh builds under
 * ~/.cache/tollgate/venv-openai) through the gateway to a vLLM-like backend: chat, streams with and without
 * include_usage (the gateway's usage chunk never reaches a client that did not ask), completions, embeddings, model
 * lists, the Responses API (streamed and not, and a stream that breaks), and the errors it raises for an unknown model, a denied one, a bad key and a stream that breaks.
 * A missing virtualenv fails the test (npm test builds it).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestGateway } from '../helpers/gateway.ts';
import { AGENT, LLAMA, LLAMA_UPSTREAM, modelsRoute, openaiBackend, startModelsGateway } from '../helpers/openai-gateway.ts';
import { startVllm, type VllmServer } from '../helpers/vllm-server.ts';

const PYTHON = join(process.env.TOLLGATE_CACHE ?? join(homedir(), '.cache/tollgate'), 'venv-openai/bin/python');

let vllm: VllmServer;
let gw: TestGateway;

beforeAll(async () => {
  vllm = await startVllm({ models: [LLAMA_UPSTREAM], tokenDelayMs: 2 });
  gw = await startModelsGateway({
    'models.yaml': openaiBackend('vllm', { url: vllm.url }) + modelsRoute('models', ['vllm'], { models: [{ name: LLAMA, backend: 'vllm', model: LLAMA_UPSTREAM }] }),
  });
});

afterAll(async () => {
  await gw?.stop();
  await vllm?.stop();
});

describe('the Python openai client', () => {
  it('gets the same answers, streams and errors as from vLLM itself', async () => {
    expect(existsSync(PYTHON), `${PYTHON} (run scripts/install-tools.sh)`).toBe(true);
    const { stdout } = await promisify(execFile)(PYTHON, ['test/python/openai_client.py', `${gw.url}/v1`, gw.devToken(AGENT), LLAMA], { timeout: 60_000 });
    const out = JSON.parse(stdout) as Record<string, unknown>;
    expect(out.version).toBe('3.60.0');
    // The route rewrites LLAMA to LLAMA_UPSTREAM at the backend: the client reads back the name it asked for.
    expect(out.chat).toEqual({ content: 't0 t1 t2 t3 t4 ', usage: { prompt_tokens: 5, total_tokens: 10, completion_tokens: 5 }, model: LLAMA });
    expect(out.stream).toEqual({ text: 't0 t1 t2 t3 ', usage_chunks: 0, models: [LLAMA] });
    expect(out.stream_usage).toEqual({ prompt_tokens: 5, total_tokens: 8, completion_tokens: 3 });
    expect(out.completions_stream).toBe('t0 t1 ');
    expect(out.embedding).toEqual([0.125, -0.5, 0]);
    expect(out.embedding_model).toBe(LLAMA);
    expect(out.models).toEqual([LLAMA]);
    expect(out.unknown_model).toMatchObject({ class: 'NotFoundError', status: 404, code: 'TG_MODEL_NOT_FOUND' });
    expect(out.denied_model).toMatchObject({ class: 'PermissionDeniedError', status: 403, code: 'TG_POLICY_DENIED' });
    expect(out.bad_key).toMatchObject({ class: 'AuthenticationError', status: 401 });
    expect(out.broken).toMatchObject({ class: 'APIError', code: 'TG_UPSTREAM_UNAVAILABLE', type: 'server_error' });
    expect(out.broken_text).toBe('t0 t1 t2 ');
    // The Responses API: the answer and the stream's events name the model as asked; usage read by the client.
    expect(out.responses).toEqual({ text: 't0 t1 t2 ', model: LLAMA, usage: [2, 3], status: 'completed' });
    expect(out.responses_stream).toEqual({ text: 't0 t1 ', first: 'response.created', last: 'response.completed' });
    expect(out.responses_stream_usage).toEqual([2 + 3, 2]);
    expect(out.responses_stream_model).toBe(LLAMA);
    // A Responses stream that breaks ends with OpenAI's error event, which this client yields as an event.
    expect(out.broken_response).toBeNull();
    expect(out.broken_response_events).toEqual(['response.output_text.delta', { type: 'error', code: 'TG_UPSTREAM_UNAVAILABLE', message: 'Upstream vllm is unavailable' }]);
  });
});
