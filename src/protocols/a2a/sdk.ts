/**
 * The A2A SDK (@a2a-js/sdk) as the gateway's translator between A2A v1.0 and v0.3 (translate.ts), and the
 * conversions asked of it outside a translated call: an agent's A2A error in the caller's version, and a push
 * notification's payload in the version its webhook was registered in. The SDK's modules are loaded on first use:
 * a gateway whose agents serve their callers' versions never loads them (start-up time and memory, bench/NOTES.md).
 */
import { GatewayError } from '../../core/errors.ts';
import type { A2aVersion } from './methods.ts';

export const sdk = memo(async () => {
  const [root, client, legacyClient, legacyServer, server] = await Promise.all([
    import('@a2a-js/sdk'),
    import('@a2a-js/sdk/client'),
    import('@a2a-js/sdk/compat/v0_3/client'),
    import('@a2a-js/sdk/compat/v0_3/server'),
    import('@a2a-js/sdk/server'),
  ]);
  return { root, client, legacyClient, legacyServer, server };
});
export type Sdk = Awaited<ReturnType<typeof sdk>>;

function memo<T>(f: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined;
  return () => (p ??= f());
}

/**
 * An error of the agent the SDK client raised as one of A2A's own (TaskNotFound, UnsupportedOperation...), as the
 * JSON-RPC error object of the caller's version (the SDK server's own mapping); undefined for any other failure.
 */
export function agentError(m: Sdk, from: A2aVersion, err: unknown): { code: number; message: string } | undefined {
  // The SDK's 0.3 client raises an error event of a stream as a plain Error whose `cause` is the typed one.
  for (let e = err; e instanceof Error && !(e instanceof GatewayError); e = e.cause) {
    const mapped = (from === '1.0' ? m.server.JsonRpcTransportHandler.mapToJSONRPCError(e) : m.legacyServer.LegacyJsonRpcTransportHandler.mapToLegacyJSONRPCError(e)) as { code: number; message: string };
    if (mapped.code !== -32603) return mapped;
  }
  return undefined;
}

const V1_PAYLOADS = ['task', 'message', 'statusUpdate', 'artifactUpdate'];

/** The version whose shape a push notification's payload has: 0.3 names its `kind`, 1.0 is a StreamResponse. */
function payloadVersion(json: unknown): A2aVersion | undefined {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return undefined;
  const o = json as Record<string, unknown>;
  if (typeof o.kind === 'string') return '0.3';
  const keys = Object.keys(o);
  return keys.length === 1 && V1_PAYLOADS.includes(keys[0]!) ? '1.0' : undefined;
}

/**
 * A push notification's body in `version`, the version the caller registered its webhook in (an agent reached by
 * translation posts its own version's payload: 1.0 a StreamResponse, 0.3 a Task or event with `kind`). Converted by
 * the SDK's own push serializers (1.0 -> 0.3: V03PushNotificationSerializer; 0.3 -> 1.0: the 0.3 client's event
 * decoding, then the 1.0 StreamResponse JSON); undefined when it is in that version already or not an A2A payload.
 */
export async function pushPayloadIn(body: string, version: A2aVersion): Promise<{ body: string; contentType: string } | undefined> {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return undefined;
  }
  const from = payloadVersion(json);
  if (from === undefined || from === version) return undefined;
  const m = await sdk();
  if (version === '0.3') return new m.legacyServer.V03PushNotificationSerializer().serialize(m.root.StreamResponse.fromJSON(json), undefined);
  // The 0.3 client's decoding of one stream event (a JSON-RPC result), the one place the SDK reads 0.3 events.
  const decode = (m.legacyClient.LegacyJsonRpcTransport as unknown as { _processSseEventData(data: string, id: number): unknown })._processSseEventData;
  const event = decode(JSON.stringify({ jsonrpc: '2.0', id: 0, result: json }), 0) as Parameters<typeof m.root.StreamResponse.toJSON>[0];
  return { body: JSON.stringify(m.root.StreamResponse.toJSON(event)), contentType: 'application/a2a+json' };
}
