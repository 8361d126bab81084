/**
 * An OpenAI-compatible request body as the gateway reads it: parsed once, its top-level members located in the
 * original text (so edits leave everything else byte for byte: vLLM's extra sampling parameters, guided_* and
 * structured-output fields pass untouched), summarised for policy, and estimated for the budget reservation.
 */
import { Errors, GatewayError } from '../../core/errors.ts';
import { editMembers, topLevelMembers, type MemberEdit, type MemberRange } from '../../wire/json-edit.ts';
import type { Operation } from './operations.ts';

export interface ParsedBody {
  readonly text: string;
  readonly json: Readonly<Record<string, unknown>>;
  readonly members: ReadonlyMap<string, MemberRange>;
  readonly model: string;
}

function invalid(message: string, param: string | null = null): GatewayError {
  return new GatewayError(Errors.INVALID_REQUEST, message, param === null ? undefined : { data: { param } });
}

/** Parses a request body: a JSON object with a string `model` (400 otherwise, in OpenAI's terms). */
export function parseBody(raw: Buffer): ParsedBody {
  const text = raw.toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new GatewayError(Errors.PARSE_ERROR, `We could not parse the JSON body of your request: ${(err as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw invalid('The request body must be a JSON object');
  const body = json as Record<string, unknown>;
  if (body.model === undefined) throw invalid('you must provide a model parameter', 'model');
  if (typeof body.model !== 'string' || body.model === '') throw invalid('model must be a non-empty string', 'model');
  return { text, json: body, members: topLevelMembers(text), model: body.model };
}

/** Bytes of a top-level member's value as the client sent it (0 when absent). */
export function memberBytes(p: ParsedBody, key: string): number {
  const r = p.members.get(key);
  return r === undefined ? 0 : Buffer.byteLength(p.text.slice(r.start, r.end));
}

/**
 * The request fields whose content is the prompt: left out of the policy input unless the route asks. Besides
 * messages, prompt and input: the Responses API's instructions, and what vLLM's rerank and score requests compare
 * (query and documents; text_1 and text_2, or their other spellings queries/documents, queries/items, data_1/data_2).
 */
const CONTENT_FIELDS: Readonly<Record<string, string>> = {
  messages: 'message',
  prompt: 'prompt',
  input: 'input',
  instructions: 'instructions',
  query: 'query',
  documents: 'document',
  queries: 'queries',
  items: 'item',
  text_1: 'text_1',
  text_2: 'text_2',
  data_1: 'data_1',
  data_2: 'data_2',
};

/** A member larger than this reaches the policy as its size only (its copy into WASM memory is the policy's cost). */
const LARGE_MEMBER = 2048;

/**
 * The call's arguments as policies see them (policies/README.md): every request parameter (model, max_tokens,
 * temperature, tool_choice, vLLM's extras...), the names of the tools requested, and the prompt's shape (count and
 * bytes of messages, prompts or inputs; roles of messages); the content itself only with `content`. A parameter
 * over 2 KiB (a large JSON schema) is given as `{"omitted_bytes": N}`.
 */
export function policyArguments(p: ParsedBody, content: boolean): Record<string, unknown> {
  // No prototype: a member the caller names `__proto__` stays a member the policy sees (on a plain object the
  // assignment below would set the prototype and the member would vanish from the input).
  const args: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const [key, range] of p.members) {
    const value = p.json[key];
    const label = Object.hasOwn(CONTENT_FIELDS, key) ? CONTENT_FIELDS[key] : undefined;
    if (label !== undefined) {
      const items = Array.isArray(value) ? value : [value];
      args[`${label}_count`] = items.length;
      args[`${label}_bytes`] = Buffer.byteLength(p.text.slice(range.start, range.end));
      if (key === 'messages') args.message_roles = rolesOf(items);
      if (content) args[key] = value;
      continue;
    }
    if ((key === 'tools' || key === 'functions') && Array.isArray(value)) {
      args[key] = value.map(toolName).filter((n): n is string => n !== undefined);
      continue;
    }
    const bytes = range.end - range.start;
    args[key] = bytes > LARGE_MEMBER ? { omitted_bytes: Buffer.byteLength(p.text.slice(range.start, range.end)) } : value;
  }
  return args;
}

function rolesOf(messages: readonly unknown[]): Record<string, number> {
  const roles: Record<string, number> = Object.create(null) as Record<string, number>;
  for (const m of messages) {
    const role = typeof m === 'object' && m !== null ? (m as { role?: unknown }).role : undefined;
    const r = typeof role === 'string' ? role : 'unknown';
    roles[r] = (roles[r] ?? 0) + 1;
  }
  return roles;
}

/**
 * `tools: [{type: "function", function: {name}}]`, legacy `functions: [{name}]`, the Responses API's
 * `{type: "function", name}`; its built-in tools by their type (`web_search_preview`, `code_interpreter`...) and an
 * MCP tool as `mcp:<server_label>`, so a policy can refuse a tool the backend would run itself.
 */
function toolName(t: unknown): string | undefined {
  if (typeof t !== 'object' || t === null) return undefined;
  const tool = t as { function?: { name?: unknown }; name?: unknown; type?: unknown; server_label?: unknown };
  const name = tool.function?.name ?? tool.name;
  if (typeof name === 'string') return name;
  if (tool.type === 'mcp' && typeof tool.server_label === 'string') return `mcp:${tool.server_label}`;
  return typeof tool.type === 'string' && tool.type !== 'function' ? tool.type : undefined;
}

function positiveInt(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : undefined;
}

/** How many sequences the request makes the backend produce (each up to max_tokens). */
function sequences(p: ParsedBody, op: Operation): number {
  let n = positiveInt(p.json.n) ?? 1;
  if (n < 1) n = 1;
  if (op.name === 'completions') {
    // One prompt, a list of prompts, or a list of token lists: each is completed n times.
    const prompt = p.json.prompt;
    if (Array.isArray(prompt) && prompt.length > 0 && (typeof prompt[0] === 'string' || Array.isArray(prompt[0]))) n *= prompt.length;
  }
  return n;
}

/** The output limit the client set (per sequence), if any. */
export function clientMaxTokens(p: ParsedBody, op: Operation): number | undefined {
  if (op.outputLimit === 'max_output_tokens') return positiveInt(p.json.max_output_tokens);
  return positiveInt(p.json.max_completion_tokens) ?? positiveInt(p.json.max_tokens);
}

/** OpenAI's (and vLLM's) legacy completions default when max_tokens is not set. */
const COMPLETIONS_DEFAULT_MAX_TOKENS = 16;

/**
 * The output tokens to reserve: max_tokens (or max_completion_tokens) times the sequences asked for; undefined when
 * the client set no limit on a chat completion (the limits guard reserves its default and the gateway then caps the
 * request to it).
 */
export function maxOutputTokens(p: ParsedBody, op: Operation): number | undefined {
  if (!op.generates) return 0;
  const max = clientMaxTokens(p, op) ?? (op.name === 'completions' ? COMPLETIONS_DEFAULT_MAX_TOKENS : undefined);
  return max === undefined ? undefined : max * sequences(p, op);
}

/**
 * The prompt's tokens estimated from its bytes: the JSON text of the prompt members as sent (messages, prompt, input,
 * tools and functions: tool definitions are part of the prompt) divided by `bytesPerToken`, and token-id arrays
 * counted exactly. The JSON structure around the text makes this an over-estimate, which only holds budget back
 * until the call settles (an under-estimate could overshoot a budget).
 */
export function estimatePromptTokens(p: ParsedBody, bytesPerToken: number): number {
  let bytes = pairBytes(p);
  let tokens = 0;
  for (const key of ['messages', 'prompt', 'input', 'instructions', 'tools', 'functions']) {
    const value = p.json[key];
    if (value === undefined) continue;
    if ((key === 'prompt' || key === 'input') && isTokenIds(value)) {
      tokens += tokenIdCount(value);
      continue;
    }
    bytes += memberBytes(p, key);
  }
  return tokens + Math.ceil(bytes / bytesPerToken);
}

function isTokenIds(v: unknown): boolean {
  return Array.isArray(v) && v.length > 0 && (typeof v[0] === 'number' || (Array.isArray(v[0]) && typeof v[0][0] === 'number'));
}

function tokenIdCount(v: unknown): number {
  const a = v as unknown[];
  return typeof a[0] === 'number' ? a.length : a.reduce<number>((n, x) => n + (x as unknown[]).length, 0);
}

/** The spellings of the two sides a rerank or score request compares (vLLM's RerankRequest, ScoreRequest). */
const PAIRS: ReadonlyArray<readonly [string, string]> = [
  ['query', 'documents'],
  ['queries', 'documents'],
  ['queries', 'items'],
  ['text_1', 'text_2'],
  ['data_1', 'data_2'],
];

const PAIR_KEYS: readonly string[] = [...new Set(PAIRS.flat())];

/**
 * Bytes a rerank or score request makes the model read: each document is read with its query (a cross-encoder sees
 * the pair), so one query against N documents is N queries' bytes plus the documents'; lists of equal length are
 * scored pair by pair.
 */
function pairBytes(p: ParsedBody): number {
  for (const [a, b] of PAIRS) {
    const first = p.json[a];
    const second = p.json[b];
    if (first === undefined || second === undefined) continue;
    const n = Array.isArray(second) ? second.length : 1;
    const paired = Array.isArray(first) && first.length === n;
    return (paired ? memberBytes(p, a) : memberBytes(p, a) * Math.max(1, n)) + memberBytes(p, b);
  }
  return 0;
}

/**
 * Bytes of the prompt content a route may cap (`openai.maxPromptBytes`): messages, prompt, input and instructions as
 * sent, and the pairs of a rerank or score request.
 */
export function promptBytes(p: ParsedBody): number {
  let bytes = memberBytes(p, 'messages') + memberBytes(p, 'prompt') + memberBytes(p, 'input') + memberBytes(p, 'instructions');
  for (const key of PAIR_KEYS) bytes += memberBytes(p, key);
  return bytes;
}

export interface BodyChanges {
  /** The model name for the backend, when the route rewrites it. */
  readonly model?: string | undefined;
  /** Ask for the usage chunk (the client did not). */
  readonly includeUsage?: boolean | undefined;
  /** The output limit to set (the client set none and a budget capped the call), under the operation's member name. */
  readonly maxTokens?: { readonly key: string; readonly value: number } | undefined;
}

/** The body to send upstream: the client's bytes, with only the members that must change replaced or added. */
export function upstreamBody(p: ParsedBody, changes: BodyChanges): string {
  const edits: MemberEdit[] = [];
  if (changes.model !== undefined) edits.push({ key: 'model', value: JSON.stringify(changes.model) });
  if (changes.includeUsage === true) {
    const prior = p.json.stream_options;
    const options: Record<string, unknown> = typeof prior === 'object' && prior !== null && !Array.isArray(prior) ? { ...(prior as Record<string, unknown>) } : {};
    options.include_usage = true;
    // Continuous usage stats follow include_usage in vLLM: the client did not get them before, it does not now.
    if (options.continuous_usage_stats === true) options.continuous_usage_stats = false;
    edits.push({ key: 'stream_options', value: JSON.stringify(options) });
  }
  if (changes.maxTokens !== undefined) edits.push({ key: changes.maxTokens.key, value: String(changes.maxTokens.value) });
  return edits.length === 0 ? p.text : editMembers(p.text, p.members, edits);
}

/** The max_tokens that keeps a call within `cap` output tokens in all (per sequence, at least 1). */
export function cappedMaxTokens(p: ParsedBody, op: Operation, cap: number): number {
  return Math.max(1, Math.floor(cap / sequences(p, op)));
}
