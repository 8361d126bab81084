/**
 * The authenticated extended agent card through the gateway: a real @a2a-js/sdk agent with an extended card (one
 * skill more than its public card, and its own loopback URLs), asked over JSON-RPC (1.0 `GetExtendedAgentCard`, 0.3
 * `agent/getAuthenticatedExtendedCard`), HTTP+JSON (`GET /extendedAgentCard`) and the SDK client, and through the
 * 0.3 -> 1.0 translation: every URL points at the gateway, the agent's signature is gone, and each caller sees only
 * the skills its policy lets it use (a skill absent from its card is refused when asked for).
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestAgent } from '../helpers/a2a-agent.ts';
import { ADMIN, ALICE, startA2a, type A2aSetup } from '../helpers/a2a-gateway.ts';

let both: A2aSetup;
let v1only: A2aSetup;

beforeAll(async () => {
  both = await startA2a({ agent: await startTestAgent({ extendedCard: true }) });
  v1only = await startA2a({ agent: await startTestAgent({ versions: '1.0', extendedCard: true }) });
}, 60_000);

afterAll(async () => {
  for (const s of [both, v1only]) {
    await s?.gw.stop();
    await s?.agent.close();
  }
});

type Card = Record<string, unknown> & { skills: { id: string }[]; description: string };

async function rpc(s: A2aSetup, as: string, method: string, headers: Record<string, string> = {}): Promise<Record<string, unknown>> {
  const res = await s.fetchAs(as)(s.url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ jsonrpc: '2.0', id: 3, method, params: {} }) });
  expect(res.status).toBe(200);
  return (await res.json()) as Record<string, unknown>;
}

function expectRewritten(s: A2aSetup, card: Card): void {
  expect(card.description).toBe('A test agent (extended card)');
  const text = JSON.stringify(card);
  expect(text).not.toContain(new URL(s.agent.url).origin);
  expect(card.signatures).toBeUndefined();
  const urls = [...((card.supportedInterfaces as { url: string }[] | undefined) ?? []).map((i) => i.url), ...(typeof card.url === 'string' ? [card.url] : [])];
  expect(urls.length).toBeGreaterThan(0);
  for (const u of urls) expect(u).toBe(s.url);
}

describe('an agent that serves both versions', () => {
  test('the agent itself serves the extended card with its own URLs and the extra skill', async () => {
    const res = await fetch(`${both.agent.url}/rpc`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'a2a-version': '1.0' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'GetExtendedAgentCard', params: {} }),
    });
    const direct = ((await res.json()) as { result: Card }).result;
    expect(direct.skills.map((k) => k.id)).toEqual(['echo', 'secret-ops', 'vip']);
    expect(JSON.stringify(direct)).toContain(new URL(both.agent.url).origin);
  });

  test('JSON-RPC 1.0: rewritten, signatures gone, skills filtered per caller', async () => {
    const alice = (await rpc(both, ALICE, 'GetExtendedAgentCard', { 'a2a-version': '1.0' })).result as Card;
    expectRewritten(both, alice);
    expect(alice.skills.map((k) => k.id)).toEqual(['echo']);
    expect(Object.keys(alice.securitySchemes as object)).toEqual(['tollgate']);
    const admin = (await rpc(both, ADMIN, 'GetExtendedAgentCard', { 'a2a-version': '1.0' })).result as Card;
    expectRewritten(both, admin);
    expect(admin.skills.map((k) => k.id)).toEqual(['echo', 'secret-ops', 'vip']);
  });

  test('JSON-RPC 0.3 and HTTP+JSON: rewritten and filtered the same way', async () => {
    const legacy = (await rpc(both, ALICE, 'agent/getAuthenticatedExtendedCard')).result as Card;
    expectRewritten(both, legacy);
    expect(legacy.skills.map((k) => k.id)).toEqual(['echo']);
    const res = await both.fetchAs(ALICE)(`${both.url}/extendedAgentCard`, { headers: { 'a2a-version': '1.0' } });
    expect(res.status).toBe(200);
    const rest = (await res.json()) as Card;
    expectRewritten(both, rest);
    expect(rest.skills.map((k) => k.id)).toEqual(['echo']);
  });

  test('the SDK client gets the rewritten card; a skill absent from the caller card is refused when asked for', async () => {
    const client = await both.client(ALICE, 'JSONRPC');
    const card = (await client.getAgentCard()) as unknown as Card;
    expect(card.description).toBe('A test agent (extended card)');
    expect(card.skills.map((k) => k.id)).toEqual(['echo']);
    for (const i of card.supportedInterfaces as { url: string }[]) expect(i.url).toBe(both.url);
    const before = both.agent.seen.length;
    const r = await both.fetchAs(ALICE)(both.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'a2a-version': '1.0' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 4, method: 'SendMessage', params: { message: { messageId: 'v', role: 'ROLE_USER', parts: [{ text: 'hi' }], metadata: { skill: 'vip' } } } }),
    });
    expect(((await r.json()) as { error: unknown }).error).toMatchObject({ code: -32062, data: { code: 'TG_POLICY_DENIED' } });
    expect(both.agent.seen.length).toBe(before);
  });
});

test('through the translation (a 0.3 client, a 1.0-only agent): a 0.3 card, rewritten and filtered', async () => {
  const alice = (await rpc(v1only, ALICE, 'agent/getAuthenticatedExtendedCard')).result as Card;
  expectRewritten(v1only, alice);
  expect(alice.protocolVersion).toMatch(/^0\.3/);
  expect(alice.skills.map((k) => k.id)).toEqual(['echo']);
  const admin = (await rpc(v1only, ADMIN, 'agent/getAuthenticatedExtendedCard')).result as Card;
  expect(admin.skills.map((k) => k.id)).toEqual(['echo', 'secret-ops', 'vip']);
});
