/**
 * Messages and raw calls the A2A end-to-end tests share (JSON-RPC and HTTP+JSON through a gateway of
 * test/helpers/a2a-gateway.ts).
 */
import { expect } from 'vitest';
import type { A2aSetup } from './a2a-gateway.ts';

/** A SendMessage request (the SDK's 1.0 object shape) with one text part. */
export function message(value: string, extra: Record<string, unknown> = {}): never {
  return { message: { messageId: crypto.randomUUID(), role: 1, parts: [{ content: { $case: 'text', value } }] }, ...extra } as never;
}

/** Answer at once (a `slow` task stays working). */
export const SLOW = { configuration: { returnImmediately: true, acceptedOutputModes: [] } };

/** The text of a task's artifacts (the SDK's 1.0 objects). */
export function artifactText(task: { artifacts?: { parts: { content?: { value?: unknown } }[] }[] }): string {
  return (task.artifacts ?? []).flatMap((a) => a.parts.map((p) => String(p.content?.value ?? ''))).join('');
}

/** A JSON-RPC call (HTTP 200 expected), its response object. */
export async function rpc(s: A2aSetup, as: string, method: string, params: unknown, headers: Record<string, string> = {}): Promise<Record<string, unknown>> {
  const res = await s.fetchAs(as)(s.url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ jsonrpc: '2.0', id: 5, method, params }) });
  expect(res.status).toBe(200);
  return (await res.json()) as Record<string, unknown>;
}

/** An HTTP+JSON call: status, JSON body ({} when empty) and content type. */
export async function rest(s: A2aSetup, as: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown>; type: string | null }> {
  const res = await s.fetchAs(as)(`${s.url}${path}`, { method, headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>), type: res.headers.get('content-type') };
}

/**
 * The gateway's stable error code (`TG_...`) in a REST error body: the ErrorInfo's `metadata.code` for an error of
 * the A2A specification (whose reason is the spec's, `TASK_NOT_FOUND`...), else the ErrorInfo's reason.
 */
export function reason(body: Record<string, unknown>): string | undefined {
  const info = ((body.error as { details?: { reason?: string; metadata?: { code?: string } }[] } | undefined)?.details ?? [])[0];
  return info?.metadata?.code ?? info?.reason;
}

/**
 * The gateway's stable error code in a JSON-RPC error object: `data.code`, or for an error of the A2A specification
 * (whose `data` is the array of its google.rpc.ErrorInfo) the ErrorInfo's `metadata.code`.
 */
export function rpcCode(error: unknown): string | undefined {
  const data = (error as { data?: unknown } | undefined)?.data;
  if (Array.isArray(data)) return (data[0] as { metadata?: { code?: string } } | undefined)?.metadata?.code;
  return (data as { code?: string } | undefined)?.code;
}

/** The payload kinds of a stream the SDK client yields (`task`, `statusUpdate`, ...), read to its end. */
export async function streamKinds(events: AsyncIterable<unknown>): Promise<string[]> {
  const kinds: string[] = [];
  for await (const e of events) kinds.push((e as { payload?: { $case: string } }).payload?.$case ?? 'none');
  return kinds;
}
