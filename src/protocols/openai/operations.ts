/**
 * The OpenAI-compatible endpoints Tollgate serves under a route's mount (conventionally /v1), and where each goes on
 * a vLLM server: its OpenAI API under /v1, its extras (/tokenize, /detokenize) at the server root.
 */

export interface Operation {
  /** The Call's operation (what policies match on; policies/README.md). */
  readonly name: string;
  /** The OpenTelemetry GenAI operation name (gen_ai.operation.name). */
  readonly genAi: string | undefined;
  /** Path at the backend, under its base URL. */
  readonly upstreamPath: string;
  /** Produces output tokens (chat and text completions): reserved, capped and counted. */
  readonly generates: boolean;
  /** Consumes prompt tokens the budget reserves (completions and embeddings). */
  readonly metered: boolean;
  /** May answer as an SSE stream (`stream: true`). */
  readonly streams: boolean;
}

const op = (name: string, genAi: string | undefined, upstreamPath: string, kind: { generates?: boolean; metered?: boolean; streams?: boolean } = {}): Operation =>
  Object.freeze({ name, genAi, upstreamPath, generates: kind.generates ?? false, metered: kind.metered ?? false, streams: kind.streams ?? false });

/** POST endpoints, by path under the mount. Every one names a model in its body. */
export const POST_OPERATIONS: ReadonlyMap<string, Operation> = new Map([
  ['/chat/completions', op('chat.completions', 'chat', '/v1/chat/completions', { generates: true, metered: true, streams: true })],
  ['/completions', op('completions', 'text_completion', '/v1/completions', { generates: true, metered: true, streams: true })],
  ['/embeddings', op('embeddings', 'embeddings', '/v1/embeddings', { metered: true })],
  ['/tokenize', op('tokenize', undefined, '/tokenize')],
  ['/detokenize', op('detokenize', undefined, '/detokenize')],
]);

export const MODELS_LIST = op('models.list', undefined, '/v1/models');
export const MODELS_RETRIEVE = op('models.retrieve', undefined, '/v1/models');
