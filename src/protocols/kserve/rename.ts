/**
 * A route that exposes a Triton model under another name (`models: [{name: sum, model: add}]`, or a pattern's
 * rewrite) answers with that name, not Triton's: the infer and generate answers' `model_name`, the model metadata's
 * `name`, and each generate_stream event's `model_name`. Only that one value changes, in the answer's own bytes
 * (everything else, number spellings included, reaches the caller as Triton wrote it), and the lengths that frame it
 * follow: Content-Length, and for a binary-tensor answer its Inference-Header-Content-Length (the name is in its JSON
 * header). Errors (`{"error": ...}`) carry no such member and pass unchanged.
 */
import type { OutgoingHttpHeaders } from 'node:http';
import type { GatewayError } from '../../core/errors.ts';
import type { ChunkFilter } from '../../upstream/forwarder.ts';
import { prefixMember } from '../../wire/json-edit.ts';

/** Bytes of an answer held to find the member (it comes first in Triton's answers); past this it is relayed as is. */
const HOLD_LIMIT = 64 * 1024;

/** `bytes` with the string value of top-level member `key` set to `value`, or undefined if there is none (yet). */
function renamed(bytes: Buffer, key: string, value: Buffer): { out: Buffer; delta: number } | 'absent' | undefined {
  const at = prefixMember(bytes.toString('latin1'), key);
  if (at === undefined || at === 'absent') return at;
  if (bytes[at.start] !== 0x22) return 'absent';
  return { out: Buffer.concat([bytes.subarray(0, at.start), value, bytes.subarray(at.end)]), delta: value.length - (at.end - at.start) };
}

/** A whole answer (infer, generate, model metadata) with its model's name rewritten; wraps the filter that reads it. */
export class RenamedAnswer implements ChunkFilter {
  readonly sameBytes = false;
  private readonly inner: ChunkFilter;
  private readonly key: string;
  private readonly value: Buffer;
  private held: Buffer[] = [];
  private heldBytes = 0;
  /** The member was found (and renamed) or will not be: bytes pass from now on. */
  private settled = false;
  private delta = 0;

  /** `key`: `model_name` (infer, generate) or `name` (model metadata); `name`: the route's name for the model. */
  constructor(inner: ChunkFilter, key: string, name: string) {
    this.inner = inner;
    this.key = key;
    this.value = Buffer.from(JSON.stringify(name));
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
    for (const name of ['content-length', 'inference-header-content-length']) {
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

/** One generate_stream event (`data: {...}` and its line breaks) with its `model_name` rewritten. */
export function renameEvent(frame: Buffer, value: Buffer): Buffer {
  const text = frame.toString('latin1');
  const data = text.indexOf('data:');
  if (data === -1) return frame;
  let brace = data + 5;
  while (text.charCodeAt(brace) === 0x20) brace++;
  if (text.charCodeAt(brace) !== 0x7b) return frame;
  const r = renamed(frame.subarray(brace), 'model_name', value);
  return typeof r === 'object' ? Buffer.concat([frame.subarray(0, brace), r.out]) : frame;
}
