/**
 * KServe v2 request bodies as the gateway reads them, for policy and the budget reservation only (the bytes sent
 * upstream are always the client's own):
 *
 * - infer with JSON tensors: the whole body (bounded by the route), parsed; policies see the tensors' names,
 *   datatypes and shapes, never their data.
 * - infer with the binary tensor extension: only the JSON inference header, `Inference-Header-Content-Length` bytes
 *   from the start of the body (bounded by `kserve.maxHeaderBytes`), is read; those bytes are put back and the whole
 *   body streams upstream, its tensor bytes never parsed. A header length that does not frame a JSON object (too
 *   long, too short, not a number), or a Content-Length that disagrees with the sizes the header declares, is refused.
 * - infer compressed with gzip or deflate (coding.ts): the whole body read and decoded (both bounded by the route),
 *   then read as above, lengths counted in decoded bytes as Triton counts them; the compressed bytes are forwarded.
 * - generate / generate_stream: the JSON body; `text_input` reaches policies as its size unless the route asks; its
 *   sequence id may be in `parameters` or at the top level (`generateSequence`).
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { Errors, GatewayError } from '../../core/errors.ts';
import { duplicateMember } from '../../wire/json-duplicates.ts';
import type { SequencePlace } from './sequence.ts';

export const HEADER_LENGTH = 'inference-header-content-length';

function invalid(message: string): GatewayError {
  return new GatewayError(Errors.INVALID_REQUEST, message);
}

/**
 * Parses a JSON object body (TG_PARSE_ERROR / TG_INVALID_REQUEST otherwise). A member named twice in one object is
 * refused: Triton's parser reads the first, JSON.parse the last, so policies would judge another request than the
 * one Triton runs (wire/json-duplicates.ts).
 */
export function parseObject(raw: Buffer | string, what = 'request body'): Record<string, unknown> {
  const text = typeof raw === 'string' ? raw : raw.toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new GatewayError(Errors.PARSE_ERROR, `The ${what} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw invalid(`The ${what} must be a JSON object`);
  const twice = duplicateMember(text);
  if (twice !== undefined) throw invalid(`The ${what} names member ${JSON.stringify(twice)} twice in one object: name each member once`);
  return json as Record<string, unknown>;
}

/** A member larger than this (JSON text) reaches the policy as its size only. */
const LARGE_MEMBER = 2048;

function small(value: unknown): unknown {
  const text = JSON.stringify(value) ?? '';
  return text.length > LARGE_MEMBER ? { omitted_bytes: Buffer.byteLength(text) } : value;
}

interface TensorSummary {
  name: unknown;
  datatype: unknown;
  shape: unknown;
  binary_data_size?: number;
}

function tensors(v: unknown): TensorSummary[] {
  if (!Array.isArray(v)) return [];
  return v.map((t: unknown) => {
    const o = (typeof t === 'object' && t !== null ? t : {}) as { name?: unknown; datatype?: unknown; shape?: unknown; parameters?: { binary_data_size?: unknown } };
    const size = o.parameters?.binary_data_size;
    return { name: o.name, datatype: o.datatype, shape: small(o.shape), ...(typeof size === 'number' ? { binary_data_size: size } : {}) };
  });
}

/** What an inference request shows policies: tensors' names, datatypes and shapes, requested outputs, parameters. */
export function inferArguments(header: Record<string, unknown>, bodyBytes: number | undefined, binary: boolean): Record<string, unknown> {
  const outputs = Array.isArray(header.outputs) ? (header.outputs as unknown[]).map((o) => (o as { name?: unknown } | null)?.name).filter((n) => typeof n === 'string') : [];
  const args: Record<string, unknown> = { inputs: tensors(header.inputs), outputs, binary };
  if (header.parameters !== undefined) args.parameters = small(header.parameters);
  if (bodyBytes !== undefined) args.body_bytes = bodyBytes;
  return args;
}

/** The inputs' declared binary sizes, summed; undefined when an input declares none (its data is in the JSON). */
export function declaredBinaryBytes(header: Record<string, unknown>): number | undefined {
  if (!Array.isArray(header.inputs)) return undefined;
  let sum = 0;
  for (const t of header.inputs as unknown[]) {
    const size = (t as { parameters?: { binary_data_size?: unknown } } | null)?.parameters?.binary_data_size;
    if (typeof size !== 'number' || !Number.isInteger(size) || size < 0) return undefined;
    sum += size;
  }
  return sum;
}

/** A sequence id: a non-zero number or a non-empty string (0 and "" mean none). */
function sequenceValue(id: unknown): number | string | undefined {
  return (typeof id === 'number' && id !== 0) || (typeof id === 'string' && id !== '') ? id : undefined;
}

/**
 * The sequence an infer request belongs to (Triton's sequence extension, docs/protocol/extension_sequence.md:
 * `parameters.sequence_id`, a uint64 or a string; 0 and "" mean none). A stateful model keeps a sequence's state in
 * the one server that saw its start, under that id (sequence.ts).
 */
export function sequenceId(header: Record<string, unknown>): number | string | undefined {
  const params = header.parameters;
  if (typeof params !== 'object' || params === null) return undefined;
  return sequenceValue((params as { sequence_id?: unknown }).sequence_id);
}

/**
 * The sequence a generate or generate_stream body names, and where: `parameters.sequence_id` or a top-level
 * `sequence_id`. Triton hands either to the model as the request parameter `sequence_id` (sequence.ts); naming it in
 * both places is refused (TG_INVALID_REQUEST): Triton would set that parameter twice and the model would see
 * whichever comes last in the body, so neither policies nor the endpoint affinity could tell which one it is.
 */
export function generateSequence(body: Record<string, unknown>): { id: number | string; place: Exclude<SequencePlace, 'correlation'> } | undefined {
  const params = body.parameters;
  const inParams = typeof params === 'object' && params !== null && Object.hasOwn(params, 'sequence_id');
  if (inParams && Object.hasOwn(body, 'sequence_id')) {
    throw invalid('The request body names sequence_id both at the top level and in parameters (Triton would hand the model whichever comes last): name it once');
  }
  // A parameter the model reads, not Triton's correlation id: 0 and "" are ids like any other there (infer's "no
  // sequence" means nothing to the model), so they are mapped too; a boolean cannot be mapped into an id and is refused.
  const id: unknown = inParams ? (params as { sequence_id?: unknown }).sequence_id : body.sequence_id;
  if (typeof id === 'boolean') throw invalid('sequence_id must be a number or a string');
  return typeof id === 'number' || typeof id === 'string' ? { id, place: inParams ? 'parameters' : 'top' } : undefined;
}

/** What a generate request shows policies: every parameter, `text_input` as its size (itself only with `content`). */
export function generateArguments(body: Record<string, unknown>, content: boolean): Record<string, unknown> {
  const args: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(body)) {
    if (key === 'text_input') {
      args.text_input_bytes = typeof value === 'string' ? Buffer.byteLength(value) : Buffer.byteLength(JSON.stringify(value) ?? '');
      if (content) args.text_input = value;
      continue;
    }
    args[key] = small(value);
  }
  // Generation limits as tools commonly name them, lifted from `parameters` so a policy finds them in one place.
  const params = body.parameters;
  if (typeof params === 'object' && params !== null) {
    for (const k of ['max_tokens', 'temperature']) {
      const v = (params as Record<string, unknown>)[k];
      if (v !== undefined && args[k] === undefined) args[k] = v;
    }
  }
  return args;
}

/** The declared output limit of a generate request (`max_tokens`, top level or in `parameters`), if any. */
export function generateMaxTokens(body: Record<string, unknown>): number | undefined {
  const params = body.parameters as Record<string, unknown> | undefined;
  const v = body.max_tokens ?? (typeof params === 'object' && params !== null ? params.max_tokens : undefined);
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : undefined;
}

/** Bytes of `text_input` (the prompt of a generate request). */
export function textInputBytes(body: Record<string, unknown>): number {
  const v = body.text_input;
  if (v === undefined) return 0;
  return typeof v === 'string' ? Buffer.byteLength(v) : Buffer.byteLength(JSON.stringify(v) ?? '');
}

/**
 * The inference header length a binary request declares: undefined when the header is absent (JSON tensors), else a
 * positive integer no larger than `max` and than the body (TG_INVALID_TENSOR_HEADER otherwise). `total`: the body's
 * length as the header counts it (a compressed body's decoded length); by default its declared Content-Length.
 */
export function headerLength(headers: IncomingHttpHeaders, max: number, total: number | undefined = declaredLength(headers)): number | undefined {
  const raw = headers[HEADER_LENGTH];
  if (raw === undefined) return undefined;
  const text = Array.isArray(raw) ? raw.join(',') : raw;
  if (!/^[0-9]{1,15}$/.test(text.trim())) throw tensorHeader(`Inference-Header-Content-Length "${text}" is not a byte count`);
  const n = Number(text.trim());
  if (n === 0) throw tensorHeader('Inference-Header-Content-Length is 0: the inference header is missing');
  if (n > max) throw tensorHeader(`Inference-Header-Content-Length ${n} is over the ${max} bytes this route reads`);
  if (total !== undefined && n > total) throw tensorHeader(`Inference-Header-Content-Length ${n} is larger than the whole body (${total} bytes)`);
  return n;
}

/** The body's declared Content-Length, if any. */
export function declaredLength(headers: IncomingHttpHeaders): number | undefined {
  return headers['content-length'] === undefined ? undefined : Number(headers['content-length']);
}

/**
 * The JSON inference header of a binary request (its first `n` bytes, `raw`), checked against the body's `total`
 * length: the header plus the `binary_data_size` of its inputs must make the body (TG_INVALID_TENSOR_HEADER).
 */
export function inferenceHeader(raw: Buffer, n: number, total: number | undefined): Record<string, unknown> {
  let header: Record<string, unknown>;
  try {
    header = parseObject(raw, 'inference header');
  } catch (err) {
    throw tensorHeader(`Inference-Header-Content-Length ${n} does not frame a JSON inference header: ${(err as Error).message}`);
  }
  const binary = declaredBinaryBytes(header);
  if (total !== undefined && binary !== undefined && n + binary !== total) {
    throw tensorHeader(`The body is ${total} bytes; the ${n}-byte inference header and the ${binary} bytes of tensor data it declares make ${n + binary}`);
  }
  return header;
}

export function tensorHeader(message: string): GatewayError {
  return new GatewayError(Errors.INVALID_TENSOR_HEADER, message);
}

/**
 * Reads the first `n` bytes of `body` (the inference header) and puts everything read back in front of the stream,
 * so the stream still yields the whole body from its first byte. The stream is left paused.
 */
export function peekHeader(body: Readable, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = (): void => {
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('error', onError);
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      size += chunk.length;
      if (size < n) return;
      body.pause();
      cleanup();
      const all = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
      body.unshift(all);
      resolve(all.subarray(0, n));
    };
    const onEnd = (): void => {
      cleanup();
      reject(tensorHeader(`The body ended after ${size} bytes, before the ${n}-byte inference header Inference-Header-Content-Length announced`));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    body.on('data', onData);
    body.once('end', onEnd);
    body.once('error', onError);
  });
}

/**
 * Binary bodies up to this size are gathered and forwarded in one write instead of piece by piece as they arrive.
 * Triton's answer time has a tail that grows when a request reaches it in several pieces (measured directly, 600
 * binary infers of 128 KiB each: p99 13.9 ms sent in one write, 23.6 ms sent in three; through the gateway p98 8 ->
 * 20 ms, bench/NOTES.md "Binary infer bodies in one write"). Nothing is parsed beyond the inference header either way.
 */
export const COALESCE_BODY_BYTES = 1024 * 1024;
/** Bytes of gathered bodies held at once across the process; past it, bodies stream as they arrive. */
export const COALESCE_TOTAL_BYTES = 64 * 1024 * 1024;
let coalescing = 0;

/**
 * The whole of a body of `length` declared bytes, in one buffer, when it is small enough and the process-wide
 * allowance has room; otherwise undefined (the caller streams it). The allowance stays taken until `release` (the
 * caller's call ended: the buffer was sent or refused). Fails as the stream fails (client gone, limit).
 */
export async function gather(body: Readable, length: number | undefined): Promise<{ data: Buffer; release: () => void } | undefined> {
  if (length === undefined || length > COALESCE_BODY_BYTES || coalescing + length > COALESCE_TOTAL_BYTES) return undefined;
  coalescing += length;
  let held = true;
  const release = (): void => {
    if (held) coalescing -= length;
    held = false;
  };
  try {
    return { data: await collect(body), release };
  } catch (err) {
    release();
    throw err;
  }
}

/** The rest of a (bounded) body stream, in one buffer. */
export function collect(body: Readable): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    body.on('data', (c: Buffer) => {
      chunks.push(c);
      size += c.length;
    });
    body.once('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)));
    body.once('error', reject);
    body.resume();
  });
}
