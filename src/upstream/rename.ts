/**
 * A model answered under the name the caller knows it by, not the backend's: when a route exposes a model under
 * another name (KServe `models: [{name: sum, model: add}]`, an OpenAI-compatible alias or rewrite), the answer's one
 * member that names the model (KServe `model_name` / metadata `name`, OpenAI `model`) gets the caller's name. Only
 * that value changes, in the answer's own bytes (everything else, number spellings included, reaches the caller as
 * the backend wrote it), and the lengths that frame it follow: Content-Length, and for a KServe binary-tensor answer
 * its Inference-Header-Content-Length (the name is in its JSON header). Errors (`{"error": ...}`) carry no such
 * member and pass unchanged. The filter it wraps (the protocol's reader: usage, the response model) sees the
 * backend's bytes.
 */
import type { OutgoingHttpHeaders } from 'node:http';
import type { GatewayError } from '../core/errors.ts';
import { prefixMember } from '../wire/json-edit.ts';
import type { ChunkFilter } from './forwarder.ts';

/** Bytes of an answer held to find the member (it comes first in Triton's answers); past this it is relayed as is. */
const HOLD_LIMIT = 64 * 1024;

/** `bytes` with the string value of top-level member `key` set to `value`, or undefined if there is none (yet). */
function renamed(bytes: Buffer, key: string, value: Buffer): { out: Buffer; delta: number } | 'absent' | undefined {
  const at = prefixMember(bytes.toString('latin1'), key);
  if (at === undefined || at === 'absent') return at;
  if (bytes[at.start] !== 0x22) return 'absent';
  return { out: Buffer.concat([bytes.subarray(0, at.start), value, bytes.subarray(at.end)]), delta: value.length - (at.end - at.start) };
}

/** A whole JSON answer with its model's name rewritten; wraps the filter that reads it. */
export class RenamedAnswer implements ChunkFilter {
  readonly sameBytes = false;
  private readonly inner: ChunkFilter;
  private readonly key: string;
  private readonly value: Buffer;
  private readonly lengths: readonly string[];
  private held: Buffer[] = [];
  private heldBytes = 0;
  /** The member was found (and renamed) or will not be: bytes pass from now on. */
  private settled = false;
  private delta = 0;

  /**
   * `key`: the top-level member naming the model (KServe `model_name` or `name`, OpenAI `model`); `name`: the
   * caller's name for the model; `lengths`: the response headers that count bytes including the member.
   */
  constructor(inner: ChunkFilter, key: string, name: string, lengths: readonly string[] = ['content-length']) {
    this.inner = inner;
    this.key = key;
    this.value = Buffer.from(JSON.stringify(name));
    this.lengths = lengths;
  }

  chunk(data: Buffer): Buffer | undefined {
    const seen = this.inner.chunk(data) ?? data;
    if (this.settled) return seen;
    this.held.push(seen);
    this.heldBytes += seen.length;
    const bytes = this.held.length === 1 ? seen : Buffer.concat(this.held, this.heldBytes);
    this.held = [bytes];
    const r = renamed(bytes, this.key, this.value);
    if (r === undefined && this.heldBytes <= HOLD_LIMIT) return undefined;
    return this.release(typeof r === 'object' ? r : undefined, bytes);
  }

  private release(r: { out: Buffer; delta: number } | undefined, bytes: Buffer): Buffer {
    this.settled = true;
    this.held = [];
    if (r === undefined) return bytes;
    this.delta = r.delta;
    return r.out;
  }

  head(headers: OutgoingHttpHeaders): void {
    if (this.delta === 0) return;
    for (const name of this.lengths) {
      const v = Number(headers[name]);
      if (headers[name] !== undefined && Number.isInteger(v)) headers[name] = String(v + this.delta);
    }
  }

  end(): Buffer | undefined {
    const tail = this.inner.end();
    if (this.settled) return tail;
    // The answer ended before the member could be found (an empty ready answer, a short error): as it was.
    const bytes = Buffer.concat(this.held, this.heldBytes);
    const r = renamed(bytes, this.key, this.value);
    const out = this.release(typeof r === 'object' ? r : undefined, bytes);
    return tail === undefined ? out : Buffer.concat([out, tail]);
  }

  fail(err: GatewayError): Buffer | undefined {
    return this.inner.fail(err);
  }
}

/**
 * One SSE event (`data: {...}` and its line breaks: a KServe generate_stream event, an OpenAI completion chunk) with
 * the string value of its top-level member `key` set to `value` (JSON text); any other event as it is.
 */
export function renameEvent(frame: Buffer, key: string, value: Buffer): Buffer {
  const text = frame.toString('latin1');
  const data = text.indexOf('data:');
  if (data === -1) return frame;
  let brace = data + 5;
  while (text.charCodeAt(brace) === 0x20) brace++;
  if (text.charCodeAt(brace) !== 0x7b) return frame;
  const r = renamed(frame.subarray(brace), key, value);
  return typeof r === 'object' ? Buffer.concat([frame.subarray(0, brace), r.out]) : frame;
}
