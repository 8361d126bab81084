/**
 * Relaying Triton's answers while reading what the gateway records of them, without changing a byte the client
 * would have received directly:
 *
 * - GenerateStream (generate_stream, SSE): whole events passed on as they arrive; each is read for the model that
 *   answered, an `error` event (Triton reports a failing model inside the stream), and, when the route counts
 *   stream events, one output token per event carrying output (Triton reports no usage). When the backend breaks
 *   mid-stream the client gets a well-formed `data: {"error": ...}` event (KServe's error shape) and a clean end.
 * - KServeAnswer (a whole JSON answer: infer, generate, metadata): passed on chunk by chunk, a small copy kept to
 *   read `model_name` and a Triton error inside a 200 (generate on a model that answers more than once); an answer
 *   Triton compressed (the client's Accept-Encoding) is decoded for that reading only, and relayed as it came.
 */
import type { OutgoingHttpHeaders } from 'node:http';
import { gunzipSync, inflateSync } from 'node:zlib';
import { modelOf, type Call } from '../../core/call.ts';
import { Errors, type GatewayError } from '../../core/errors.ts';
import type { ChunkFilter } from '../../upstream/forwarder.ts';
import { kserveErrorBody } from '../../wire/errors.ts';
import { eventData, mapFrames, SseFramer } from '../../wire/sse-frames.ts';
import { renameEvent } from '../../upstream/rename.ts';

/** Reads one answer object: the model that answered, and whether it is an error. True when it carries output. */
function note(call: Call, body: unknown): boolean {
  if (typeof body !== 'object' || body === null) return false;
  const b = body as { model_name?: unknown; error?: unknown; text_output?: unknown; outputs?: unknown };
  const m = modelOf(call);
  if (m.response === undefined && typeof b.model_name === 'string') m.response = b.model_name;
  if (b.error !== undefined) {
    m.streamError = true;
    return false;
  }
  return (typeof b.text_output === 'string' ? b.text_output !== '' : b.text_output !== undefined) || b.outputs !== undefined;
}

export class GenerateStream implements ChunkFilter {
  readonly sameBytes = false;
  private readonly call: Call;
  private readonly count: boolean;
  private readonly framer = new SseFramer();
  private readonly frames: Buffer[] = [];
  private events = 0;
  private readonly rename: Buffer | undefined;

  /**
   * `count`: one output token per event carrying output (route `kserve.countStreamEvents`); `rename`: the route's
   * name for the model, when it is not Triton's (each event's `model_name` then says it; see upstream/rename.ts).
   */
  constructor(call: Call, count: boolean, rename?: string) {
    this.call = call;
    this.count = count;
    this.rename = rename === undefined ? undefined : Buffer.from(JSON.stringify(rename));
    modelOf(call).metering = count ? 'counted' : 'unmetered';
  }

  chunk(data: Buffer): Buffer | undefined {
    const frames = this.frames;
    frames.length = 0;
    const whole = this.framer.push(data, frames);
    for (const f of frames) this.read(f);
    const rename = this.rename;
    if (rename === undefined || whole === undefined) return whole;
    return mapFrames(whole, frames, (f) => renameEvent(f, 'model_name', rename));
  }

  private read(frame: Buffer): void {
    const data = eventData(frame);
    if (data === undefined) return;
    let body: unknown;
    try {
      body = JSON.parse(data);
    } catch {
      return;
    }
    if (note(this.call, body) && this.count) {
      this.events++;
      this.call.usage = { ...this.call.usage, outputTokens: this.events };
    }
  }

  end(): Buffer | undefined {
    return this.framer.take();
  }

  fail(err: GatewayError): Buffer | undefined {
    if (err.def === Errors.REQUEST_CANCELLED) return undefined;
    // What the broken event had sent is dropped: the error event starts on an event boundary.
    this.framer.take();
    modelOf(this.call).streamError = true;
    return Buffer.from(`data: ${kserveErrorBody(err)}\n\n`);
  }
}

/** Bytes of a whole JSON answer kept to read it (a larger one, e.g. big output tensors, is relayed unread). */
const READ_LIMIT = 64 * 1024;

export class KServeAnswer implements ChunkFilter {
  readonly sameBytes = true;
  private readonly call: Call;
  private readonly chunks: Buffer[] = [];
  private bytes = 0;
  /** The answer's Content-Encoding (set by the adapter when the answer's headers arrive). */
  coding: string | string[] | undefined;

  constructor(call: Call) {
    this.call = call;
  }

  chunk(data: Buffer): Buffer {
    this.bytes += data.length;
    if (this.bytes <= READ_LIMIT) this.chunks.push(data);
    return data;
  }

  end(): undefined {
    if (this.bytes > READ_LIMIT) return undefined;
    try {
      let body = Buffer.concat(this.chunks);
      // Decoded within the same bound as an uncompressed answer; a larger one is left unread.
      if (this.coding === 'gzip') body = gunzipSync(body, { maxOutputLength: READ_LIMIT });
      else if (this.coding === 'deflate') body = inflateSync(body, { maxOutputLength: READ_LIMIT });
      note(this.call, JSON.parse(body.toString('utf8')));
    } catch {
      // Not JSON (an empty ready answer, a binary answer) or past the bound: nothing to read.
    }
    return undefined;
  }

  fail(): undefined {
    return undefined;
  }
}

/**
 * The extensions Triton lists for its administrative APIs (repository, statistics, trace, logging, shared memory),
 * which the gateway does not expose (operations.ts): a server-metadata answer through the gateway leaves them out, so
 * a client negotiating on `extensions` sees what this endpoint serves.
 */
const UNEXPOSED_EXTENSIONS = ['model_repository', 'statistics', 'trace', 'logging', 'system_shared_memory', 'cuda_shared_memory'];

function exposed(extension: unknown): boolean {
  if (typeof extension !== 'string') return true;
  return !UNEXPOSED_EXTENSIONS.some((x) => extension === x || extension.startsWith(`${x}(`));
}

/** Bytes of a server-metadata answer held to edit it (Triton's is ~300); a larger one is relayed as it is. */
const METADATA_LIMIT = 64 * 1024;

/** The server metadata (`GET /v2`) with `extensions` limited to what the gateway serves; anything else as it came. */
export class ServerMetadata implements ChunkFilter {
  readonly sameBytes = false;
  private held: Buffer[] = [];
  private bytes = 0;
  private passing = false;
  private delta = 0;

  chunk(data: Buffer): Buffer | undefined {
    if (this.passing) return data;
    this.held.push(data);
    this.bytes += data.length;
    if (this.bytes <= METADATA_LIMIT) return undefined;
    this.passing = true;
    return this.take();
  }

  private take(): Buffer {
    const all = Buffer.concat(this.held, this.bytes);
    this.held = [];
    return all;
  }

  end(): Buffer | undefined {
    if (this.passing) return undefined;
    const all = this.take();
    let body: unknown;
    try {
      body = JSON.parse(all.toString('utf8'));
    } catch {
      return all;
    }
    const extensions = (body as { extensions?: unknown } | null)?.extensions;
    if (!Array.isArray(extensions) || extensions.every(exposed)) return all;
    const out = Buffer.from(JSON.stringify({ ...(body as object), extensions: extensions.filter(exposed) }));
    this.delta = out.length - all.length;
    return out;
  }

  head(headers: OutgoingHttpHeaders): void {
    const v = Number(headers['content-length']);
    if (this.delta !== 0 && headers['content-length'] !== undefined && Number.isInteger(v)) headers['content-length'] = String(v + this.delta);
  }

  fail(): undefined {
    return undefined;
  }
}
