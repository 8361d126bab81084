/**
 * Span names and GenAI attributes by the OpenTelemetry conventions (open-telemetry/semantic-conventions-genai:
 * docs/gen-ai/gen-ai-spans.md, mcp.md), for the tracer's server and upstream spans.
 */
import type { Span } from '@opentelemetry/api';
import type { Call } from '../core/call.ts';
import * as A from './semconv.ts';

/** Operations whose target name makes a low-cardinality span name (`tools/call get_weather`, `chat llama`). */
export const NAMED_TARGETS: ReadonlySet<string> = new Set(['tool', 'prompt', 'skill', 'model']);

/**
 * `gen_ai.provider.name` by protocol: an OpenAI-compatible backend (vLLM...) speaks the OpenAI API, which is what the
 * conventions' value `openai` names ("as identified by the client": the model's own maker is in the model names).
 * KServe has no value in the conventions: none is set.
 */
export const PROVIDERS: Readonly<Record<string, string>> = { openai: 'openai' };

/**
 * A span's name by the conventions: `{gen_ai.operation.name} {gen_ai.request.model}` for a model call (`chat llama`),
 * `{mcp.method.name} {target}` for a named MCP target (`tools/call get_weather`), the operation alone otherwise.
 */
export function spanName(call: Call, target: string | undefined): string {
  const kind = call.target?.kind;
  if (target === undefined || kind === undefined || !NAMED_TARGETS.has(kind)) return call.operation;
  const operation = kind === 'model' ? (call.model?.operation ?? call.operation) : call.operation;
  return `${operation} ${target}`;
}

export function usageTokens(span: Span, call: Call): void {
  const usage = call.usage;
  if (usage?.inputTokens !== undefined) span.setAttribute(A.ATTR_GEN_AI_USAGE_INPUT_TOKENS, usage.inputTokens);
  if (usage?.outputTokens !== undefined) span.setAttribute(A.ATTR_GEN_AI_USAGE_OUTPUT_TOKENS, usage.outputTokens);
}

/** What a model call's answer said: the response model, finish reasons and token counts (server and upstream spans). */
export function modelOutcome(span: Span, call: Call): void {
  const m = call.model;
  if (m?.response !== undefined) span.setAttribute(A.ATTR_GEN_AI_RESPONSE_MODEL, m.response);
  if (m?.responseId !== undefined) span.setAttribute(A.ATTR_GEN_AI_RESPONSE_ID, m.responseId);
  if (m?.finishReasons !== undefined) span.setAttribute(A.ATTR_GEN_AI_RESPONSE_FINISH_REASONS, m.finishReasons);
  usageTokens(span, call);
}
