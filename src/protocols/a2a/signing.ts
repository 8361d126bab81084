/**
 * Re-signing the cards the gateway serves (route `a2a.cardSigning`): a JWS (flattened, detached) over the RFC 8785
 * canonical form of the rewritten 1.0 card, made with the A2A SDK's own signer so that its verifier
 * (`verifyAgentCardSignature`) and every SDK that follows the specification accepts it. 0.3-shaped cards are served
 * without signatures (their canonical form differs and 0.3 clients do not verify them).
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import type { AgentCard } from '@a2a-js/sdk';
import type { A2aRouteSpec } from '../../config/a2a.ts';
import { resolveSecret } from '../../config/load.ts';
import type { Card } from './card.ts';

type Signing = NonNullable<A2aRouteSpec['cardSigning']>;

export class CardSigner {
  private readonly signing: Signing;
  private readonly key: KeyObject;
  /** The SDK's signer, made on the first card: the A2A SDK is loaded only by a gateway that signs (bench/NOTES.md, cold start). */
  private sign: Promise<(card: AgentCard) => Promise<AgentCard>> | undefined;

  constructor(signing: Signing, key: KeyObject) {
    this.signing = signing;
    this.key = key;
  }

  /** Loads the route's key (validated at config load; a key that vanished since is an error here). */
  static load(signing: Signing, configDir: string): CardSigner {
    const r = resolveSecret(signing.key.valueFrom, configDir, process.env);
    if ('error' in r) throw new Error(`a2a.cardSigning: ${r.error}`);
    return new CardSigner(signing, createPrivateKey(r.value));
  }

  /** The card with the gateway's signature (1.0 cards); 0.3-shaped cards unchanged (no signature). */
  async signed(card: Card): Promise<Card> {
    if (typeof card.url === 'string' || !Array.isArray(card.supportedInterfaces)) return card;
    this.sign ??= import('@a2a-js/sdk').then(({ generateAgentCardSignature }) => {
      const alg = this.key.asymmetricKeyType === 'ed25519' ? 'EdDSA' : 'ES256';
      const { keyId, jku } = this.signing;
      return generateAgentCardSignature(this.key, { alg, kid: keyId, typ: 'JOSE', ...(jku !== undefined ? { jku } : {}) });
    });
    return (await (await this.sign)(card as unknown as AgentCard)) as unknown as Card;
  }
}
