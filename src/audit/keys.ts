/**
 * The audit signing key: from config (PKCS#8 PEM via `valueFrom`), or generated once in the data dir for the embedded
 * default. A generated key is written with mode 0600 and never leaves the data dir (which git ignores).
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { readOrCreate } from '../config/generated-file.ts';
import type { AuditSpec } from './config.ts';

export interface SigningKey {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  /** Where the key came from, for the startup log line. */
  readonly source: string;
}

export const GENERATED_KEY_FILE = 'audit-signing-key.pem';
export const GENERATED_PUBLIC_FILE = 'audit-signing-key.pub.pem';

function fromPem(pem: string, source: string): SigningKey {
  const privateKey = createPrivateKey(pem);
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new Error(`audit signing key from ${source} is ${privateKey.asymmetricKeyType}, not Ed25519`);
  return { privateKey, publicKey: createPublicKey(privateKey), source };
}

/** Loads the configured key, or the data dir's generated one (creating it the first time). */
export function loadSigningKey(spec: AuditSpec, configDir: string, dataDir: string, env: NodeJS.ProcessEnv = process.env): SigningKey {
  const ref = spec.signingKey?.valueFrom;
  if (ref && 'env' in ref) {
    const pem = env[ref.env];
    if (pem === undefined || pem === '') throw new Error(`audit.signingKey: environment variable ${ref.env} is not set`);
    return fromPem(pem, `env ${ref.env}`);
  }
  if (ref && 'file' in ref) {
    const path = resolve(configDir, ref.file);
    return fromPem(readFileSync(path, 'utf8'), path);
  }
  const path = join(dataDir, GENERATED_KEY_FILE);
  let generated = false;
  const pem = readOrCreate(
    path,
    () => {
      generated = true;
      return generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    },
    0o600,
  );
  // Processes starting at once on one data dir agree on the key whose link won; the public half is derived from it.
  const key = fromPem(pem, generated ? `${path} (generated)` : path);
  readOrCreate(join(dataDir, GENERATED_PUBLIC_FILE), () => key.publicKey.export({ format: 'pem', type: 'spki' }).toString(), 0o644);
  return key;
}
