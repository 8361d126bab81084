/**
 * Triton's sequence extension (docs/protocol/extension_sequence.md) through a shared gateway. A stateful model keeps
 * a sequence's state under its `sequence_id`, one namespace per model for everyone who reaches the server: through
 * the gateway, a caller naming another caller's id would feed, read or end that caller's sequence. So each caller's
 * ids are mapped into its own: the id Triton sees is derived from the caller's identity and the id it sent (a uint64
 * for a number, a string for a string, as the model's sequence batcher expects), the same for every request of that
 * caller and sequence and on every gateway replica, and another caller cannot name it. Only that value changes, in
 * the body's own bytes (a binary request's JSON header grows or shrinks, and its Inference-Header-Content-Length with
 * it); everything else reaches Triton as the client sent it.
 *
 * Generate bodies (generate, generate_stream) are mapped the same way, to the same id: Triton does not make their
 * `sequence_id` a correlation id but hands it to the model as the request parameter `sequence_id`, from `parameters`
 * or from the top level (server src/http_server.cc: HandleGenerate converts the body with ConvertGenerateRequest,
 * whose ExactMappingInput sets every member that is not a model input with SetTritonParameterFromJsonParameter; only
 * infer's ParseJsonTritonParams calls TRITONSERVER_InferenceRequestSetCorrelationId). A model that keeps state by
 * that parameter would otherwise let one caller feed or read another's.
 */
import { createHash } from 'node:crypto';
import { topLevelMembers } from '../../wire/json-edit.ts';

/** The caller's sequence id as it reaches Triton: 1..2^53-1 for a number, `tg-<hex>` for a string. */
export function callerSequence(principal: string, id: number | string): number | string {
  const digest = createHash('sha256').update(`${principal}\n${typeof id}\n${String(id)}`).digest();
  if (typeof id === 'string') return `tg-${digest.subarray(0, 16).toString('hex')}`;
  // 53 bits, never 0 (0 means "no sequence"): exact as a JSON number in every parser.
  const n = digest.readUIntBE(0, 6) * 32 + (digest[6]! >>> 3);
  return n === 0 ? 1 : n;
}

/**
 * Where a body names its sequence: `parameters.sequence_id` (infer, generate), or a top-level `sequence_id` (generate
 * only: Triton passes every top-level member that is not a model input to the model as a request parameter).
 */
export type SequencePlace = 'parameters' | 'top';

/**
 * `json` (a JSON object's bytes: a body or a binary request's header, which JSON.parse accepted) with the value of
 * its sequence id at `place` replaced by `value`; undefined when it has none there.
 */
export function withSequenceId(json: Buffer, value: number | string, place: SequencePlace = 'parameters'): Buffer | undefined {
  // latin1: one character per byte, so offsets are byte offsets (the members scanned are ASCII).
  const text = json.toString('latin1');
  let offset = 0;
  let object = text;
  if (place === 'parameters') {
    const params = topLevelMembers(text).get('parameters');
    if (params === undefined || text.charCodeAt(params.start) !== 0x7b) return undefined;
    offset = params.start;
    object = text.slice(params.start, params.end);
  }
  const id = topLevelMembers(object).get('sequence_id');
  if (id === undefined) return undefined;
  return Buffer.concat([json.subarray(0, offset + id.start), Buffer.from(JSON.stringify(value)), json.subarray(offset + id.end)]);
}

/** A body to forward with its sequence id mapped into the caller's namespace. */
export interface NamespacedBody {
  readonly data: Buffer;
  /** The new Inference-Header-Content-Length of a binary request (its header changed length). */
  readonly headerLength?: number;
  /** The id Triton sees. */
  readonly sequence: number | string;
}

/**
 * `body` (uncompressed: a JSON body, or a binary request whose JSON header is its first `headerLength` bytes) with
 * the caller's sequence id `id` (at `place`) replaced by the one Triton sees for `principal`.
 */
export function namespaced(body: Buffer, headerLength: number | undefined, id: number | string, principal: string, place: SequencePlace = 'parameters'): NamespacedBody {
  const sequence = callerSequence(principal, id);
  if (headerLength === undefined) return { data: withSequenceId(body, sequence, place) ?? body, sequence };
  const header = withSequenceId(body.subarray(0, headerLength), sequence);
  if (header === undefined) return { data: body, headerLength, sequence };
  return { data: Buffer.concat([header, body.subarray(headerLength)]), headerLength: header.length, sequence };
}
