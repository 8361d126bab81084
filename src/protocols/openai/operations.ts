/**
 * The OpenAI-compatible endpoints Tollgate serves under a route's mount (conventionally /v1), and where each goes on
 * a vLLM server: its OpenAI API under /v1 (chat and text completions, embeddings, the Responses API), its extras at
 * the server root (tokenize, detokenize, and the pooling models' rerank, score, pooling, classify: vLLM serves
 * /v1/rerank and /v1/score too, as deprecated aliases of the root paths; vllm/entrypoints/pooling/score/api_router.py and its siblings).
 */

export interface Operation {
  /** The Call's operation (what policies match on; policies/README.md). */
  readonly name: string;
  /**
   * The OpenTelemetry GenAI operation name (gen_ai.operation.name): a well-known value where one applies (`chat` for
   * the Responses API, as for chat completions), vLLM's task name otherwise (`rerank`, `score`, `classify`,
   * `pooling`: the conventions have no value for them and allow a custom one).
   */
  readonly genAi: string | undefined;
  /** Path at the backend, under its base URL. */
  readonly upstreamPath: string;
  /** Produces output tokens (chat and text completions, responses): reserved, capped and counted. */
  readonly generates: boolean;
  /** Consumes prompt tokens the budget reserves (completions, responses, embeddings and the pooling tasks). */
  readonly metered: boolean;
  /** May answer as an SSE stream (`stream: true`). */
  readonly streams: boolean;
  /** The request member that limits the output per sequence: `max_tokens` (completions), `max_output_tokens` (responses). */
  readonly outputLimit: 'max_tokens' | 'max_output_tokens';
  /** Takes `stream_options.include_usage` (chat and text completions; the Responses API reports usage in its last event). */
  readonly usageChunk: boolean;
}

interface Kind {
  generates?: boolean;
  metered?: boolean;
  streams?: boolean;
  outputLimit?: Operation['outputLimit'];
  usageChunk?: boolean;
}

const op = (name: string, genAi: string | undefined, upstreamPath: string, kind: Kind = {}): Operation =>
  Object.freeze({
    name,
    genAi,
    upstreamPath,
    generates: kind.generates ?? false,
    metered: kind.metered ?? false,
    streams: kind.streams ?? false,
    outputLimit: kind.outputLimit ?? 'max_tokens',
    usageChunk: kind.usageChunk ?? false,
  });

export const RESPONSES = op('responses', 'chat', '/v1/responses', { generates: true, metered: true, streams: true, outputLimit: 'max_output_tokens' });

/** POST endpoints, by path under the mount. Every one names a model in its body. */
export const POST_OPERATIONS: ReadonlyMap<string, Operation> = new Map([
  ['/chat/completions', op('chat.completions', 'chat', '/v1/chat/completions', { generates: true, metered: true, streams: true, usageChunk: true })],
  ['/completions', op('completions', 'text_completion', '/v1/completions', { generates: true, metered: true, streams: true, usageChunk: true })],
  ['/embeddings', op('embeddings', 'embeddings', '/v1/embeddings', { metered: true })],
  ['/responses', RESPONSES],
  ['/rerank', op('rerank', 'rerank', '/rerank', { metered: true })],
  ['/score', op('score', 'score', '/score', { metered: true })],
  ['/pooling', op('pooling', 'pooling', '/pooling', { metered: true })],
  ['/classify', op('classify', 'classify', '/classify', { metered: true })],
  ['/tokenize', op('tokenize', undefined, '/tokenize')],
  ['/detokenize', op('detokenize', undefined, '/detokenize')],
]);

export const MODELS_LIST = op('models.list', undefined, '/v1/models');
export const MODELS_RETRIEVE = op('models.retrieve', undefined, '/v1/models');
