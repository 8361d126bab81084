/**
 * A2A v0.3 clients through the gateway: the SDK's v0.3 transports (no A2A-Version header, 0.3 method names, `kind`
 * fields, REST under /v1), built only from the 0.3 card the gateway serves, send, stream, get and cancel over
 * JSON-RPC and REST; tasks they create are bound to them like v1.0 tasks.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { streamKinds } from '../helpers/a2a-calls.ts';
import { LegacyJsonRpcTransport, LegacyRestTransport } from '@a2a-js/sdk/compat/v0_3/client';
import { ALICE, BOB, startA2a, type A2aSetup } from '../helpers/a2a-gateway.ts';

let s: A2aSetup;
let card: { url: string; preferredTransport: string; protocolVersion: string; additionalInterfaces: { url: string; transport: string }[] };

beforeAll(async () => {
  s = await startA2a();
  // What a 0.3 client reads: the card without an A2A-Version header.
  card = (await (await s.fetchAs(ALICE)(`${s.url}/.well-known/agent-card.json`)).json()) as typeof card;
}, 60_000);

afterAll(async () => {
  await s?.close();
});

function message(value: string): never {
  return { message: { messageId: crypto.randomUUID(), role: 1, parts: [{ content: { $case: 'text', value } }] } } as never;
}

type Transport = LegacyJsonRpcTransport | LegacyRestTransport;

describe.each(['JSONRPC', 'HTTP+JSON'] as const)('v0.3 SDK transport over %s', (binding) => {
  let t: Transport;
  let bob: Transport;
  beforeAll(() => {
    expect(card.protocolVersion).toBe('0.3');
    const endpoint = binding === 'JSONRPC' ? card.url : card.additionalInterfaces.find((i) => i.transport === 'HTTP+JSON')!.url;
    expect(endpoint).toBe(s.url);
    t = binding === 'JSONRPC' ? new LegacyJsonRpcTransport({ endpoint, fetchImpl: s.fetchAs(ALICE) }) : new LegacyRestTransport({ endpoint, fetchImpl: s.fetchAs(ALICE) });
    bob = binding === 'JSONRPC' ? new LegacyJsonRpcTransport({ endpoint, fetchImpl: s.fetchAs(BOB) }) : new LegacyRestTransport({ endpoint, fetchImpl: s.fetchAs(BOB) });
  });

  test('send, get and cancel; the agent saw 0.3 requests', async () => {
    const before = s.agent.seen.length;
    const task = (await t.sendMessage(message('old client'))) as unknown as { id: string; status: { state: number } };
    expect(task.status.state).toBe(3);
    const forwarded = s.agent.seen.slice(before);
    expect(forwarded.map((r) => r.path)).toEqual([binding === 'JSONRPC' ? '/rpc' : '/rest/v1/message:send']);
    expect(forwarded[0]!.headers['a2a-version']).toBe('0.3');
    expect((await t.getTask({ id: task.id } as never)).id).toBe(task.id);
    await expect(bob.getTask({ id: task.id } as never)).rejects.toThrow();
    const slow = (await t.sendMessage({ ...(message('slow') as object), configuration: { returnImmediately: true, acceptedOutputModes: [] } } as never)) as unknown as { id: string };
    const cancelled = await t.cancelTask({ id: slow.id } as never);
    expect(cancelled.status?.state).toBe(5);
  });

  test('stream: every event arrives in order', async () => {
    expect(await streamKinds(t.sendMessageStream(message('streamed')))).toEqual(['task', 'statusUpdate', 'artifactUpdate', 'statusUpdate']);
  });
});

test('a task made by a 0.3 client is the same task for the same identity speaking 1.0, and nobody else', async () => {
  const t = new LegacyJsonRpcTransport({ endpoint: card.url, fetchImpl: s.fetchAs(ALICE) });
  const task = (await t.sendMessage(message('cross-version'))) as unknown as { id: string };
  const get = async (as: string): Promise<Record<string, unknown>> =>
    (await (
      await s.fetchAs(as)(s.url, { method: 'POST', headers: { 'content-type': 'application/json', 'a2a-version': '1.0' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'GetTask', params: { id: task.id } }) })
    ).json()) as Record<string, unknown>;
  expect((await get(ALICE)).result).toMatchObject({ id: task.id });
  expect((await get(BOB)).error).toMatchObject({ code: -32001 });
});
