/**
 * The two model listing endpoints as calls: GET <mount>/models (every model of the rule's pools the caller may use,
 * one policy evaluation for the whole list) and GET <mount>/models/{id} (one model, granted like a completion).
 */
import type { ServerResponse } from 'node:http';
import type { Call } from '../../core/call.ts';
import type { AdapterContext, Exchange } from '../../gateway/adapter.ts';
import { sendBody } from '../../server/io.ts';
import { HeaderPolicy } from '../../upstream/headers.ts';
import type { ModelRoutes } from '../../upstream/model-catalog.ts';
import { modelCard, notFound, offeredModels } from './models.ts';

/**
 * What crosses the gateway for OpenAI-compatible calls besides the body (never the caller's credentials). `metadata`:
 * vLLM's JSON header beside a binary answer (pooling and embeddings with `encoding_format: "bytes"`: id, model, data
 * layout, usage), without which the client cannot read the bytes.
 */
export const HEADERS = new HeaderPolicy({
  request: ['content-type', 'accept', 'x-request-id'],
  response: ['content-type', 'x-request-id', 'metadata'],
});

/** What the list endpoints need of the adapter. */
export interface ModelsContext {
  readonly ctx: AdapterContext;
  readonly models: ModelRoutes;
}

function sendJson(res: ServerResponse, body: unknown): void {
  sendBody(res, 200, 'application/json', JSON.stringify(body));
}

/** GET <mount>/models: merged from the rule's pools, filtered by policy (`visible`). */
export async function listModels(m: ModelsContext, x: Exchange, call: Call): Promise<void> {
  const { req, res, match, state } = x;
  m.ctx.calls.begin(call);
  await m.ctx.calls.run(call, { res, req, call }, state, async () => {
    const offered = await offeredModels(m.models.router(match.rule), m.models.catalog);
    const seen = offered.length === 0 || !state.pipeline.filtersLists ? offered.map(() => true) : await state.pipeline.visible(call, offered.map((o) => o.target));
    sendJson(res, { object: 'list', data: offered.filter((_, i) => seen[i]).map((o) => o.card) });
  });
}

/** GET <mount>/models/{id}: one model, after the policy allowed the caller to use it. */
export async function retrieveModel(m: ModelsContext, x: Exchange, call: Call, id: string): Promise<void> {
  const { req, res, match, state } = x;
  const resolved = await m.models.resolve(match.rule, id);
  call.target = { kind: 'model', name: resolved?.name ?? id, server: resolved?.backend, local: resolved?.upstream };
  call.upstream = resolved?.backend;
  call.estimate = { inputTokens: 0, maxOutputTokens: 0 };
  m.ctx.calls.begin(call);
  await m.ctx.calls.run(call, { res, req, call }, state, async () => {
    if (resolved === undefined) throw notFound(id);
    sendJson(res, await modelCard(resolved, m.models.catalog));
  });
}
