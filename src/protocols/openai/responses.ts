/**
 * Relaying a Responses API stream (POST /v1/responses with `stream: true`) while reading what the gateway needs from
 * it, without changing a byte the client would have received from the backend directly (but for the model's name
 * when the route rewrites it).
 *
 * The stream is typed SSE events, `event: <type>` then `data: {"type": <type>, ..., "sequence_number": n}` (OpenAI's
 * streaming responses reference; vLLM's responses/api_router.py writes them so): `response.created`,
 * `response.in_progress`, output item and content part events with `response.output_text.delta` (and reasoning and
 * function-call argument deltas) in between, and one last event: `response.completed`, `response.incomplete` or
 * `response.failed`, whose `response` carries `usage` (`input_tokens`, `output_tokens`). The Responses API takes no
 * `stream_options`: nothing is added to the request, usage is read from that last event. Until it arrives output is
 * counted one token per delta, so a stream that breaks is charged what was streamed.
 *
 * Events are passed on whole as they arrive and read after they were written (CompletionStream's order: the first
 * token is not delayed by the gateway's parsing). When the backend breaks mid-stream the client gets OpenAI's
 * `error` event (`{"type":"error","code","message","param","sequence_number"}`) and the stream ends cleanly.
 */
import { modelOf, type Call } from '../../core/call.ts';
import { Errors, type GatewayError } from '../../core/errors.ts';
import type { ChunkFilter } from '../../upstream/forwarder.ts';
import { renameEvent } from '../../upstream/rename.ts';
import { prefixMember } from '../../wire/json-edit.ts';
import { eventData, LateReader, mapFrames, SseFramer } from '../../wire/sse-frames.ts';
import { noteResponse, reportUsage, type UsageReport } from './stream.ts';

/** Events that carry generated output (one token each, for the count of a stream that breaks). */
const DELTAS = new Set(['response.output_text.delta', 'response.reasoning_text.delta', 'response.function_call_arguments.delta', 'response.refusal.delta']);
/** The events that end a response, with its usage. */
const FINAL = new Set(['response.completed', 'response.incomplete', 'response.failed']);

interface ResponseEvent {
  readonly type?: unknown;
  readonly sequence_number?: unknown;
  readonly response?: { readonly id?: unknown; readonly model?: unknown; readonly status?: unknown; readonly usage?: UsageReport | null; readonly object?: unknown } | null;
}

/**
 * One event with its response's model named `value` (JSON text): the `model` member of the event's `response`
 * object (response.created, response.in_progress and the final events carry the whole response). Others as they are.
 */
export function renameResponseEvent(frame: Buffer, value: Buffer): Buffer {
  const text = frame.toString('latin1');
  const data = text.indexOf('data:');
  if (data === -1) return frame;
  let brace = data + 5;
  while (text.charCodeAt(brace) === 0x20) brace++;
  const at = prefixMember(text.slice(brace), 'response');
  if (at === undefined || at === 'absent' || text.charCodeAt(brace + at.start) !== 0x7b) return frame;
  const start = brace + at.start;
  const inner = renameEvent(Buffer.concat([Buffer.from('data: '), frame.subarray(start, brace + at.end)]), 'model', value);
  return Buffer.concat([frame.subarray(0, start), inner.subarray(6), frame.subarray(brace + at.end)]);
}

export class ResponsesStream implements ChunkFilter {
  readonly sameBytes = false;
  private readonly call: Call;
  private readonly framer = new SseFramer();
  private readonly frames: Buffer[] = [];
  /** Events passed on but not read yet: read once their bytes were written. */
  private readonly late = new LateReader((f) => this.read(f));
  private counted = 0;
  private reported = false;
  private sequence = -1;
  private readonly rename: Buffer | undefined;
  private readonly meter: boolean;
  private readonly countDeltas: boolean;

  /**
   * `rename`: the model name the client asked for, when the route sent another to the backend; `meter`: read the
   * events for usage (false for a stored response replayed by GET /responses/{id}?stream=true: nothing is generated);
   * `countDeltas`: count output deltas until the final usage (false for a background response, whose usage is its
   * reservation until the backend reports it: it goes on generating when the client leaves).
   */
  constructor(call: Call, rename?: string, meter = true, countDeltas = true) {
    this.call = call;
    this.countDeltas = countDeltas;
    this.rename = rename === undefined ? undefined : Buffer.from(JSON.stringify(rename));
    this.meter = meter;
    if (meter) modelOf(call).metering = 'counted';
  }

  chunk(data: Buffer): Buffer | undefined {
    const frames = this.frames;
    frames.length = 0;
    const whole = this.framer.push(data, frames);
    if (whole === undefined) return undefined;
    if (this.meter) {
      for (const f of frames) this.late.push(f);
    }
    const rename = this.rename;
    return rename === undefined ? whole : mapFrames(whole, frames, (f) => renameResponseEvent(f, rename));
  }

  private read(frame: Buffer): void {
    const data = eventData(frame);
    if (data === undefined) return;
    let body: ResponseEvent;
    try {
      body = JSON.parse(data) as ResponseEvent;
    } catch {
      return;
    }
    if (typeof body !== 'object' || body === null) return;
    if (typeof body.sequence_number === 'number') this.sequence = body.sequence_number;
    const type = typeof body.type === 'string' ? body.type : '';
    if (type === 'error' || type === 'response.failed') modelOf(this.call).streamError = true;
    if (DELTAS.has(type) && !this.reported) {
      if (!this.countDeltas) return;
      this.counted++;
      this.call.usage = { ...this.call.usage, outputTokens: this.counted };
      return;
    }
    const response = body.response;
    if (typeof response !== 'object' || response === null) return;
    if (type === 'response.created') noteResponse(this.call, { id: response.id, model: response.model });
    if (!FINAL.has(type)) return;
    noteResponse(this.call, { ...response, object: 'response' });
    if (typeof response.usage === 'object' && response.usage !== null) {
      reportUsage(this.call, response.usage);
      this.reported = true;
    }
  }

  end(): Buffer | undefined {
    this.late.catchUp();
    const last = this.framer.take();
    return last === undefined || this.rename === undefined ? last : renameResponseEvent(last, this.rename);
  }

  fail(err: GatewayError): Buffer | undefined {
    this.late.catchUp();
    if (err.def === Errors.REQUEST_CANCELLED) return undefined;
    this.framer.take();
    const event = { type: 'error', code: err.def.code, message: err.message, param: null, sequence_number: this.sequence + 1 };
    return Buffer.from(`event: error\ndata: ${JSON.stringify(event)}\n\n`);
  }
}
