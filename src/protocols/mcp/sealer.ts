/**
 * Authenticated encryption of small JSON claims (AES-256-GCM), used for MCP session ids and for the `requestState`
 * of multi round-trip requests the gateway bridges. A sealed value is `<keyId>.<base64url(iv | ciphertext | tag)>`:
 * any replica holding the key opens it, nobody else can read or forge it. Keys rotate: the first key seals, every
 * key opens. Each purpose derives its own key (HKDF), so a session id can never be replayed as a requestState.
 */
import { createCipheriv, createDecipheriv, createHmac, createSecretKey, hkdfSync, randomBytes, randomFillSync, type KeyObject } from 'node:crypto';

export interface SealKey {
  readonly id: string;
  readonly secret: string;
}

interface DerivedKey {
  readonly id: string;
  /** A KeyObject, not a Buffer: createCipheriv then skips importing the key on every call (~8x cheaper). */
  readonly key: KeyObject;
  readonly aad: Buffer;
  /** HMAC key of fingerprints of values sealed with this key (derived apart: a fingerprint reveals nothing). */
  readonly fp: KeyObject;
}

const IV_BYTES = 12;
/** IVs come from a pooled random buffer: one CSPRNG call per 341 seals instead of one each. */
const ivPool = Buffer.allocUnsafe(IV_BYTES * 341);
let ivAt = ivPool.length;

function nextIv(): Buffer {
  if (ivAt + IV_BYTES > ivPool.length) {
    randomFillSync(ivPool);
    ivAt = 0;
  }
  const iv = ivPool.subarray(ivAt, ivAt + IV_BYTES);
  ivAt += IV_BYTES;
  return iv;
}
const TAG_BYTES = 16;
/** Upper bound on what is accepted for opening (a header value); bigger input is refused before any crypto. */
const MAX_SEALED_CHARS = 8192;

export class Sealer {
  private readonly sealWith: DerivedKey;
  private readonly byId: ReadonlyMap<string, DerivedKey>;
  /** True when no key was configured and a random per-process key is in use. */
  readonly ephemeral: boolean;

  /**
   * @param purpose domain separation label (e.g. `mcp-session`); different purposes never open each other's values.
   * @param keys configured keys, first one seals; empty means a random key for this process only.
   */
  constructor(purpose: string, keys: readonly SealKey[]) {
    this.ephemeral = keys.length === 0;
    const list = this.ephemeral ? [{ id: 'p', secret: randomBytes(32).toString('base64url') }] : keys;
    const derived = list.map((k) => derive(purpose, k));
    this.sealWith = derived[0]!;
    this.byId = new Map(derived.map((d) => [d.id, d]));
  }

  /** Seals a JSON-serialisable value. */
  seal(value: unknown): string {
    const k = this.sealWith;
    const iv = nextIv();
    const cipher = createCipheriv('aes-256-gcm', k.key, iv);
    cipher.setAAD(k.aad);
    const head = cipher.update(JSON.stringify(value), 'utf8');
    const tail = cipher.final();
    const out = Buffer.concat([iv, head, tail, cipher.getAuthTag()], IV_BYTES + head.length + tail.length + TAG_BYTES);
    return `${k.id}.${out.toString('base64url')}`;
  }

  /**
   * A keyed hash of a sealed value (128 bits, base64url): what logs, spans and audit records show instead of the value
   * itself. Keyed by the key that sealed it, so every replica that can open the value computes the same fingerprint,
   * across key rotations; without the key it cannot be linked back to the value.
   */
  fingerprint(sealed: string): string {
    const dot = sealed.indexOf('.');
    const k = (dot > 0 ? this.byId.get(sealed.slice(0, dot)) : undefined) ?? this.sealWith;
    return createHmac('sha256', k.fp).update(sealed).digest('base64url').slice(0, 22);
  }

  /** Opens a sealed value; undefined when it is malformed, forged, or sealed with a key this replica lacks. */
  open(sealed: string): unknown {
    if (sealed.length > MAX_SEALED_CHARS) return undefined;
    const dot = sealed.indexOf('.');
    if (dot <= 0) return undefined;
    const k = this.byId.get(sealed.slice(0, dot));
    if (!k) return undefined;
    const raw = Buffer.from(sealed.slice(dot + 1), 'base64url');
    if (raw.length < IV_BYTES + TAG_BYTES + 2) return undefined;
    try {
      const decipher = createDecipheriv('aes-256-gcm', k.key, raw.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES });
      decipher.setAAD(k.aad);
      decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
      const plain = decipher.update(raw.subarray(IV_BYTES, raw.length - TAG_BYTES), undefined, 'utf8') + decipher.final('utf8');
      return JSON.parse(plain);
    } catch {
      return undefined;
    }
  }
}

/** What identifies a list of keys (a reconfiguration that changes nothing keeps what was sealed openable). */
export function keysFingerprint(keys: readonly SealKey[]): string {
  return keys.map((k) => `${k.id}:${k.secret}`).join('|');
}

function derive(purpose: string, k: SealKey): DerivedKey {
  const key = createSecretKey(Buffer.from(hkdfSync('sha256', k.secret, 'tollgate', `tollgate/${purpose}/v1`, 32)));
  const fp = createSecretKey(Buffer.from(hkdfSync('sha256', k.secret, 'tollgate', `tollgate/${purpose}/fingerprint/v1`, 32)));
  return { id: k.id, key, aad: Buffer.from(`tollgate/${purpose}/${k.id}`), fp };
}
