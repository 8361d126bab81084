/**
 * Cards re-signed by the gateway (route a2a.cardSigning): the served 1.0 card carries one signature, the gateway's,
 * which the A2A SDK's own verifier accepts with the gateway's public key and rejects once the card is changed; the
 * agent's signature is gone. A key that is not a usable private key is refused at config load.
 */
import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { verifyAgentCardSignature, type AgentCard } from '@a2a-js/sdk';
import { ALICE, startA2a, type A2aSetup } from '../helpers/a2a-gateway.ts';

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
let s: A2aSetup;

beforeAll(async () => {
  s = await startA2a({
    a2a: { cardSigning: { key: { valueFrom: { file: 'card-key.pem' } }, keyId: 'tollgate-cards-1' } },
    files: { 'card-key.pem': privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() },
  });
}, 60_000);

afterAll(async () => {
  await s?.close();
});

test('the served card carries the gateway signature, which the SDK verifier accepts, and nothing else', async () => {
  const card = (await (await s.fetchAs(ALICE)(`${s.url}/.well-known/agent-card.json`, { headers: { 'a2a-version': '1.0' } })).json()) as AgentCard & {
    signatures: { protected: string; signature: string }[];
  };
  expect(card.signatures).toHaveLength(1);
  expect(JSON.stringify(card.signatures)).not.toContain('upstream-signature');
  const header = JSON.parse(Buffer.from(card.signatures[0]!.protected, 'base64url').toString()) as Record<string, string>;
  expect(header).toMatchObject({ alg: 'ES256', kid: 'tollgate-cards-1', typ: 'JOSE' });
  const keys: string[] = [];
  const verify = verifyAgentCardSignature(async (kid) => {
    keys.push(kid);
    return publicKey;
  });
  await verify(card);
  expect(keys).toEqual(['tollgate-cards-1']);
  // The signature covers the rewritten card: the gateway URLs and the caller's skills.
  await expect(verify({ ...card, supportedInterfaces: card.supportedInterfaces.map((i) => ({ ...i, url: s.agent.url })) })).rejects.toThrow();
  await expect(verify({ ...card, description: 'changed' })).rejects.toThrow();
});

test('a card signing key that is not a private key is refused at load, with its place', async () => {
  await expect(startA2a({ a2a: { cardSigning: { key: { valueFrom: { file: 'bad.pem' } }, keyId: 'k' } }, files: { 'bad.pem': 'not a key' } })).rejects.toThrow(/echo\.yaml:\d+:\d+: card signing key is not a PEM private key/);
});
