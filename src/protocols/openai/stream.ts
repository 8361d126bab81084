/**
 * Relaying a model's answer while reading what the gateway needs from it, without changing a byte the client would
 * have received from the backend directly:
 *
 * - CompletionStream (SSE, `stream: true`): whole events are passed on as they arrive (usually the whole chunk, as
 *   is) and read after they were written (the first token is not delayed by the gateway's parsing); each is read for
 *   the model that answered, the output so far (one token per content delta, so a stream that
 *   breaks is charged what was streamed) and the backend's final `usage`. When the gateway asked for that usage
 *   chunk itself (the client did not set stream_options.include_usage) the chunk is dropped. When the backend breaks
 *   mid-stream the client gets a well-formed error event and `[DONE]`, and the stream ends cleanly.
 * - JsonAnswer (a whole JSON answer): passed on chunk by chunk, a copy kept to read `usage` and `model` at the end.
 *
 * When the route maps the caller's model name to another one at the backend, the client sees the name it asked for:
 * each chunk's `model` (CompletionStream `rename`) and a whole answer's (upstream/rename.ts around JsonAnswer) are
 * rewritten in the bytes passed on, event by event; what the gateway reads (the response model of telemetry and
 * audit, usage) is the backend's own bytes.
 */
import { modelOf, type Call } from '../../core/call.ts';
import { Errors, type GatewayError } from '../../core/errors.ts';
import type { ChunkFilter } from '../../upstream/forwarder.ts';
import { renameEvent } from '../../upstream/rename.ts';
import { openAiErrorBody } from '../../wire/errors.ts';
import { eventData, LateReader, mapFrames, SseFramer } from '../../wire/sse-frames.ts';

/** `usage` as the completions, embeddings and pooling answers give it, or as the Responses API does (input/output). */
export interface UsageReport {
  readonly prompt_tokens?: unknown;
  readonly completion_tokens?: unknown;
  readonly input_tokens?: unknown;
  readonly output_tokens?: unknown;
  /** All a pooling answer of an older vLLM reports (RerankUsage `{total_tokens}`): all of it input. */
  readonly total_tokens?: unknown;
}

function count(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined;
}

/** Sets the call's usage from the backend's report (replacing what was counted). */
export function reportUsage(call: Call, usage: UsageReport): void {
  const output = count(usage.completion_tokens) ?? count(usage.output_tokens);
  const input = count(usage.prompt_tokens) ?? count(usage.input_tokens) ?? (output === undefined ? count(usage.total_tokens) : undefined);
  if (input === undefined && output === undefined) return;
  call.usage = { ...call.usage, inputTokens: input ?? 0, outputTokens: output ?? 0, reported: true };
  modelOf(call).metering = 'reported';
}


/** What an answer says of itself: completions' choices' finish reasons, a Responses API object's status. */
interface AnswerBody {
  readonly id?: unknown;
  readonly model?: unknown;
  readonly choices?: unknown;
  readonly object?: unknown;
  readonly status?: unknown;
  readonly incomplete_details?: { readonly reason?: unknown } | null;
}

export function noteResponse(call: Call, body: AnswerBody): void {
  const m = modelOf(call);
  if (m.response === undefined && typeof body.model === 'string') m.response = body.model;
  if (m.responseId === undefined && typeof body.id === 'string') m.responseId = body.id;
  // A response object (the Responses API): why it stopped is its status, or the reason it is incomplete.
  if (body.object === 'response' && typeof body.status === 'string') {
    const reason = body.incomplete_details?.reason;
    (m.finishReasons ??= []).push(typeof reason === 'string' ? reason : body.status);
  }
  if (!Array.isArray(body.choices)) return;
  for (const c of body.choices as unknown[]) {
    const reason = (c as { finish_reason?: unknown } | null)?.finish_reason;
    if (typeof reason === 'string') (m.finishReasons ??= []).push(reason);
  }
}

/** True when a streamed choice delta carries output (text, a tool call, reasoning). */
function producedOutput(choice: unknown): boolean {
  if (typeof choice !== 'object' || choice === null) return false;
  const c = choice as { delta?: Record<string, unknown>; text?: unknown };
  if (typeof c.text === 'string' && c.text !== '') return true;
  const d = c.delta;
  if (d === undefined || d === null) return false;
  return (
    (typeof d.content === 'string' && d.content !== '') ||
    (Array.isArray(d.tool_calls) && d.tool_calls.length > 0) ||
    (typeof d.reasoning_content === 'string' && d.reasoning_content !== '')
  );
}

const DONE = Buffer.from('data: [DONE]\n\n');

/** Bytes that any event carrying usage contains (the usage-only chunk among them). */
const USAGE_KEY = '"usage"';

export class CompletionStream implements ChunkFilter {
  readonly sameBytes = false;
  private readonly call: Call;
  private readonly strip: boolean;
  private readonly framer = new SseFramer();
  private readonly frames: Buffer[] = [];
  /** Events passed on but not read yet: read once their bytes were written (see `chunk`). */
  private readonly late = new LateReader((f) => this.read(f));
  private counted = 0;
  private reported = false;
  /** The caller's name for the model (JSON text), when the backend knows it by another. */
  private readonly rename: Buffer | undefined;

  /**
   * `strip`: the gateway added include_usage, so the usage-only chunk is not the client's; `rename`: the model name
   * the client asked for, when the route sent another to the backend (each chunk's `model` then says it).
   */
  constructor(call: Call, strip: boolean, rename?: string) {
    this.call = call;
    this.strip = strip;
    this.rename = rename === undefined ? undefined : Buffer.from(JSON.stringify(rename));
    modelOf(call).metering = 'counted';
  }

  /**
   * Passes whole events on at once and reads them after: parsing an event's JSON is the gateway's business, not the
   * client's, so it waits until the bytes were handed to the socket (a microtask runs after the response's corked
   * write is flushed on the tick queue). Only an event that may be the usage-only chunk the client did not ask for
   * is read before it is passed on, so it can be dropped.
   */
  chunk(data: Buffer): Buffer | undefined {
    const frames = this.frames;
    frames.length = 0;
    const whole = this.framer.push(data, frames);
    if (whole === undefined) return undefined;
    let drop: Buffer | undefined;
    for (const f of frames) {
      if (this.strip && f.includes(USAGE_KEY)) {
        // In order: what came before it is read first.
        this.late.catchUp();
        if (this.read(f)) drop = f;
        continue;
      }
      this.late.push(f);
    }
    const rename = this.rename;
    if (drop === undefined && rename === undefined) return whole;
    return mapFrames(whole, frames, (f) => (f === drop ? undefined : rename === undefined ? f : renameEvent(f, 'model', rename)));
  }

  /** Reads one event; true when it is the usage-only chunk (empty choices, usage set). */
  private read(frame: Buffer): boolean {
    const data = eventData(frame);
    if (data === undefined || data === '[DONE]') return false;
    let body: AnswerBody & { usage?: UsageReport | null; error?: unknown };
    try {
      body = JSON.parse(data) as typeof body;
    } catch {
      return false;
    }
    if (typeof body !== 'object' || body === null) return false;
    noteResponse(this.call, body);
    if (body.error !== undefined) modelOf(this.call).streamError = true;
    const choices = Array.isArray(body.choices) ? (body.choices as unknown[]) : undefined;
    if (choices !== undefined && !this.reported) {
      for (const c of choices) if (producedOutput(c)) this.counted++;
      if (this.counted > 0) this.call.usage = { ...this.call.usage, outputTokens: this.counted };
    }
    if (body.usage !== undefined && body.usage !== null && typeof body.usage === 'object') {
      reportUsage(this.call, body.usage);
      this.reported = true;
      return choices !== undefined && choices.length === 0;
    }
    return false;
  }

  end(): Buffer | undefined {
    this.late.catchUp();
    // A last event without its blank line is still the client's bytes.
    const last = this.framer.take();
    return last === undefined || this.rename === undefined ? last : renameEvent(last, 'model', this.rename);
  }

  fail(err: GatewayError): Buffer | undefined {
    this.late.catchUp();
    if (err.def === Errors.REQUEST_CANCELLED) return undefined;
    // What the broken event had sent is dropped: the error starts on an event boundary.
    this.framer.take();
    return Buffer.concat([Buffer.from(`data: ${openAiErrorBody(err)}\n\n`), DONE]);
  }
}

/**
 * A whole JSON answer: relayed as it arrives, read at the end (up to `limit` bytes kept). `metered`: the call is
 * budgeted, so an answer without usage (a pooling plugin's, a background response's) is marked `unmetered` and the
 * budget charges its whole reservation.
 */
export class JsonAnswer implements ChunkFilter {
  readonly sameBytes = true;
  private readonly call: Call;
  private readonly limit: number;
  private readonly metered: boolean;
  private readonly chunks: Buffer[] = [];
  private bytes = 0;

  constructor(call: Call, limit: number, metered = false) {
    this.call = call;
    this.limit = limit;
    this.metered = metered;
  }

  chunk(data: Buffer): Buffer {
    this.bytes += data.length;
    if (this.bytes <= this.limit) this.chunks.push(data);
    return data;
  }

  end(): undefined {
    if (this.bytes <= this.limit) {
      try {
        const body = JSON.parse(Buffer.concat(this.chunks).toString('utf8')) as AnswerBody & { usage?: UsageReport };
        if (typeof body === 'object' && body !== null) {
          noteResponse(this.call, body);
          if (typeof body.usage === 'object' && body.usage !== null) reportUsage(this.call, body.usage);
        }
      } catch {
        // Not JSON (vLLM's pooling `encoding_format: "bytes"`): nothing to read.
      }
    }
    // No usage report: the budget charges the whole reservation, and the audit record says the call was not metered.
    if (this.metered && this.call.model?.metering === undefined) modelOf(this.call).metering = 'unmetered';
    return undefined;
  }

  fail(): undefined {
    return undefined;
  }
}
