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
import { Errors, GatewayError } from '../../core/errors.ts';
import { topLevelMembers, type MemberRange } from '../../wire/json-edit.ts';

/**
 * The caller's sequence id as it reaches Triton: 1..2^53-1 for a number, `tg-<hex>` for a string. A number is taken
 * as written (a bigint for one past 2^53, which JSON.parse would round: Triton reads a uint64 exactly).
 */
export function callerSequence(principal: string, id: number | string | bigint): number | string {
  const digest = createHash('sha256').update(`${principal}\n${typeof id === 'string' ? 'string' : 'number'}\n${String(id)}`).digest();
  if (typeof id === 'string') return `tg-${digest.subarray(0, 16).toString('hex')}`;
  // 53 bits, never 0 (0 means "no sequence"): exact as a JSON number in every parser.
  const n = digest.readUIntBE(0, 6) * 32 + (digest[6]! >>> 3);
  return n === 0 ? 1 : n;
}

/**
 * Where a body names its sequence, and what Triton makes of it:
 * - `correlation`: infer's `parameters.sequence_id`, the request's correlation id: a uint64 as written, or a string
 *   (Triton refuses anything else: "Unable to parse 'sequence_id'");
 * - `parameters`, `top`: a generate body's `parameters.sequence_id` or top-level `sequence_id`, a request parameter
 *   the model reads (Triton passes every top-level member that is not a model input as one): any number or string.
 */
export type SequencePlace = 'correlation' | 'parameters' | 'top';

const UINT64_MAX = 2n ** 64n - 1n;

/** Where the value of the sequence id at `place` is in `text` (a JSON object JSON.parse accepted, read as latin1). */
function idRange(text: string, place: SequencePlace): MemberRange | undefined {
  if (place === 'top') return topLevelMembers(text).get('sequence_id');
  const params = topLevelMembers(text).get('parameters');
  if (params === undefined || text.charCodeAt(params.start) !== 0x7b) return undefined;
  const id = topLevelMembers(text.slice(params.start, params.end)).get('sequence_id');
  return id === undefined ? undefined : { start: params.start + id.start, end: params.start + id.end };
}

/** The id as written (`token`, its JSON text): a number's own digits; a correlation id must be a uint64 or a string. */
function written(id: number | string, token: string, place: SequencePlace): number | string | bigint {
  if (typeof id === 'string') return id;
  const integer = /^-?[0-9]+$/.test(token);
  if (place === 'correlation' && (!integer || token.startsWith('-') || BigInt(token) > UINT64_MAX)) {
    throw new GatewayError(Errors.INVALID_REQUEST, `parameters.sequence_id ${token} is not an unsigned 64-bit integer or a string (Triton's sequence extension)`);
  }
  return integer ? BigInt(token) : id;
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
 * the caller's sequence id `id` (at `place`, as JSON.parse read it) replaced by the one Triton sees for `principal`.
 * An infer id Triton could not read (`correlation`: not a uint64 or a string) is refused, TG_INVALID_REQUEST.
 */
export function namespaced(body: Buffer, headerLength: number | undefined, id: number | string, principal: string, place: SequencePlace = 'correlation'): NamespacedBody {
  const json = headerLength === undefined ? body : body.subarray(0, headerLength);
  // latin1: one character per byte, so offsets are byte offsets (the members scanned are ASCII).
  const text = json.toString('latin1');
  const r = idRange(text, place);
  const sequence = callerSequence(principal, r === undefined ? id : written(id, text.slice(r.start, r.end), place));
  // The body JSON.parse read names the id there (duplicate members are refused before): not finding it is a bug, and
  // forwarding the caller's own id would leave its sequence shared with every other caller's.
  if (r === undefined) throw new GatewayError(Errors.INTERNAL, 'sequence_id could not be located in the request body');
  const edited = Buffer.concat([json.subarray(0, r.start), Buffer.from(JSON.stringify(sequence)), json.subarray(r.end)]);
  if (headerLength === undefined) return { data: edited, sequence };
  return { data: Buffer.concat([edited, body.subarray(headerLength)]), headerLength: edited.length, sequence };
}
