/**
 * Real keys and signed JWTs for identity tests: EC/RSA key pairs, JWS compact signing with any header (including
 * the malicious ones of the attack corpus), JWKS / SPIFFE bundle documents.
 */
import { createHmac, generateKeyPairSync, randomBytes, sign, constants, type KeyObject } from 'node:crypto';

export type SigningAlg = 'ES256' | 'ES384' | 'RS256' | 'PS256';

export interface Signer {
  readonly alg: SigningAlg;
  readonly kid: string;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  /** Public JWK with kid (no use/alg). */
  readonly jwk: Record<string, string>;
}

export function newSigner(alg: SigningAlg = 'ES256', kid = randomBytes(8).toString('hex')): Signer {
  const pair =
    alg === 'ES256'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : alg === 'ES384'
        ? generateKeyPairSync('ec', { namedCurve: 'P-384' })
        : generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...(pair.publicKey.export({ format: 'jwk' }) as Record<string, string>), kid };
  return { alg, kid, privateKey: pair.privateKey, publicKey: pair.publicKey, jwk };
}

export function b64url(value: unknown): string {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
}

/** Signs `payload` with `signer` under `header` (defaults: the signer's alg and kid, typ JWT). */
export function signJwt(signer: Signer, payload: Record<string, unknown>, header: Record<string, unknown> = {}): string {
  const h = { alg: signer.alg, kid: signer.kid, typ: 'JWT', ...header };
  for (const k of Object.keys(h)) if ((h as Record<string, unknown>)[k] === undefined) delete (h as Record<string, unknown>)[k];
  const input = `${b64url(h)}.${b64url(payload)}`;
  const data = Buffer.from(input);
  let sig: Buffer;
  // Signed as the header says (an RSA key can sign RS256 or PS256); a header naming another family is signed
  // with the key's own algorithm (the corpus uses that for "alg of another key type").
  const alg = String(h.alg).slice(0, 2) === signer.alg.slice(0, 2) || (String(h.alg).startsWith('PS') && signer.alg === 'RS256') ? String(h.alg) : signer.alg;
  switch (alg) {
    case 'ES256':
      sig = sign('sha256', data, { key: signer.privateKey, dsaEncoding: 'ieee-p1363' });
      break;
    case 'ES384':
      sig = sign('sha384', data, { key: signer.privateKey, dsaEncoding: 'ieee-p1363' });
      break;
    case 'RS256':
      sig = sign('sha256', data, signer.privateKey);
      break;
    case 'PS256':
      sig = sign('sha256', data, { key: signer.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
      break;
    default:
      throw new Error(`cannot sign ${alg}`);
  }
  return `${input}.${sig.toString('base64url')}`;
}

/** HS256 over arbitrary secret bytes (the algorithm-confusion attack signs with the public key's bytes). */
export function signHs256(secret: Buffer | string, payload: Record<string, unknown>, header: Record<string, unknown> = {}): string {
  const input = `${b64url({ alg: 'HS256', typ: 'JWT', ...header })}.${b64url(payload)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

/** A SPIFFE bundle document (keys marked use: jwt-svid). */
export function spiffeBundle(signers: Signer[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { keys: signers.map((s) => ({ ...s.jwk, use: 'jwt-svid' })), spiffe_sequence: 1, ...extra };
}

/** A plain JWKS document (keys marked use: sig). */
export function jwks(signers: Signer[]): Record<string, unknown> {
  return { keys: signers.map((s) => ({ ...s.jwk, use: 'sig', alg: s.alg })) };
}

export function nowS(): number {
  return Math.floor(Date.now() / 1000);
}
