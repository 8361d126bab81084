/**
 * Verification of OPA bundle signatures (`/.signatures.json`), following OPA's format and rules
 * (v1/bundle/verify.go, hash.go): exactly one JWT whose payload lists every file of the bundle with its digest; the
 * key is chosen by the configured key id, else the JWT's `kid`, else the payload's deprecated `keyid`; the `scope`
 * claim must equal the configured one; every file must be listed with a matching digest (excluded globs aside) and
 * every listed file must exist. JSON documents (data.json, .manifest) are hashed in OPA's canonical form (keys
 * sorted, numbers as written) so whitespace does not matter.
 */
import { createHash, createPublicKey, createSecretKey, type Hash, type KeyObject } from 'node:crypto';
import { compactVerify, decodeProtectedHeader } from 'jose';
import { parse as parseYaml } from 'yaml';

export interface VerificationKey {
  readonly algorithm: string;
  /** PEM (public key, certificate) for RS/PS/ES; the secret itself for HS. */
  readonly key: string;
  readonly scope?: string | undefined;
}

export interface VerificationConfig {
  readonly keys: Readonly<Record<string, VerificationKey>>;
  readonly keyId?: string | undefined;
  readonly scope?: string | undefined;
  readonly exclude: readonly string[];
}

interface FileInfo {
  readonly name: string;
  readonly hash: string;
  readonly algorithm: string;
}

const HASHES: Readonly<Record<string, string>> = {
  MD5: 'md5',
  'SHA-1': 'sha1',
  'SHA-224': 'sha224',
  'SHA-256': 'sha256',
  'SHA-384': 'sha384',
  'SHA-512': 'sha512',
  'SHA-512-224': 'sha512-224',
  'SHA-512-256': 'sha512-256',
};

export class SignatureError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SignatureError';
  }
}

function keyObject(k: VerificationKey): KeyObject {
  if (k.algorithm.startsWith('HS')) return createSecretKey(Buffer.from(k.key, 'utf8'));
  return createPublicKey(k.key);
}

/** OPA treats these base names as structured (hashed canonically); everything else is hashed as bytes. */
function structuredKind(path: string): 'json' | 'yaml' | undefined {
  const base = path.slice(path.lastIndexOf('/') + 1);
  if (base === 'data.json' || base === '.manifest' || base === 'signatures.json') return 'json';
  if (base === 'data.yaml') return 'yaml';
  return undefined;
}

/** Go's filepath.Match for the exclude list: `*` and `?` stop at '/', `[...]` classes pass through. */
function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        re += `[${glob.slice(i + 1, end).replace(/^\^|^!/, '^').replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else if (c === '\\' && i + 1 < glob.length) re += `\\${glob[++i]}`;
    else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** A parsed JSON value with number lexemes kept, so hashing writes numbers exactly as the file did (Go json.Number). */
class NumberText {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
}

function parsePreservingNumbers(text: string): unknown {
  return JSON.parse(text, (_key, value: unknown, context?: { source?: string }) =>
    typeof value === 'number' && context?.source !== undefined ? new NumberText(context.source) : value,
  );
}

/** Go's encoding/json string form with SetEscapeHTML(false): JSON.stringify plus U+2028/U+2029 escapes. */
function goString(s: string): string {
  return JSON.stringify(s).replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

function utf8Compare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** OPA's canonical hash walk (hash.go): objects with sorted keys, arrays in order, primitives JSON-encoded. */
function walk(v: unknown, h: Hash): void {
  if (v instanceof NumberText) h.update(v.text);
  else if (Array.isArray(v)) {
    h.update('[');
    v.forEach((e, i) => {
      if (i > 0) h.update(',');
      walk(e, h);
    });
    h.update(']');
  } else if (v !== null && typeof v === 'object') {
    h.update('{');
    const obj = v as Record<string, unknown>;
    Object.keys(obj)
      .sort(utf8Compare)
      .forEach((k, i) => {
        if (i > 0) h.update(',');
        h.update(goString(k));
        h.update(':');
        walk(obj[k], h);
      });
    h.update('}');
  } else if (typeof v === 'string') h.update(goString(v));
  else h.update(JSON.stringify(v));
}

/** Digest of one bundle file as OPA computes it for signatures (hex). */
export function fileDigest(path: string, bytes: Uint8Array, algorithm: string): string {
  const name = Object.hasOwn(HASHES, algorithm) ? HASHES[algorithm] : undefined;
  if (!name) throw new SignatureError(`${path}: unsupported hashing algorithm ${algorithm}`);
  const h = createHash(name);
  const kind = structuredKind(path);
  if (kind === undefined) h.update(bytes);
  else {
    let value: unknown;
    const text = Buffer.from(bytes).toString('utf8');
    try {
      value = kind === 'json' ? parsePreservingNumbers(text) : parseYaml(text);
    } catch (err) {
      throw new SignatureError(`${path}: not valid ${kind.toUpperCase()} (${(err as Error).message})`);
    }
    walk(value, h);
  }
  return h.digest('hex');
}

/**
 * Verifies a bundle's files against its `.signatures.json`. `files` maps bundle paths (no leading '/') to bytes and
 * must not contain the signatures file itself. Throws SignatureError saying what is wrong.
 */
export async function verifyBundle(signatures: Uint8Array | undefined, files: ReadonlyMap<string, Uint8Array>, config: VerificationConfig): Promise<void> {
  if (signatures === undefined) throw new SignatureError('bundle missing .signatures.json file (verification is configured)');
  let sc: { signatures?: unknown; plugin?: unknown };
  try {
    sc = JSON.parse(Buffer.from(signatures).toString('utf8')) as typeof sc;
  } catch {
    throw new SignatureError('.signatures.json is not valid JSON');
  }
  if (sc.plugin !== undefined && sc.plugin !== '' && sc.plugin !== '_default') throw new SignatureError(`.signatures.json: signing plugin ${String(sc.plugin)} is not supported`);
  if (!Array.isArray(sc.signatures) || sc.signatures.length === 0) throw new SignatureError('.signatures.json: missing JWT (expected exactly one)');
  if (sc.signatures.length > 1) throw new SignatureError('.signatures.json: multiple JWTs not supported (expected exactly one)');
  const token = sc.signatures[0];
  if (typeof token !== 'string') throw new SignatureError('.signatures.json: the signature is not a string');

  let header: { kid?: unknown };
  let claims: { files?: unknown; keyid?: unknown; scope?: unknown };
  try {
    header = decodeProtectedHeader(token);
    claims = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as typeof claims;
  } catch {
    throw new SignatureError('.signatures.json: malformed JWT');
  }
  const keyId = config.keyId ?? (typeof header.kid === 'string' && header.kid !== '' ? header.kid : typeof claims.keyid === 'string' ? claims.keyid : '');
  if (keyId === '') throw new SignatureError('verification key ID is empty');
  const key = config.keys[keyId];
  if (!key) throw new SignatureError(`verification key ${keyId} not found`);
  let verified: Uint8Array;
  try {
    ({ payload: verified } = await compactVerify(token, keyObject(key), { algorithms: [key.algorithm] }));
  } catch (err) {
    throw new SignatureError(`bundle signature is invalid: ${(err as Error).message}`);
  }
  const payload = JSON.parse(Buffer.from(verified).toString('utf8')) as { files?: unknown; scope?: unknown };
  const scope = config.scope ?? key.scope ?? '';
  if ((typeof payload.scope === 'string' ? payload.scope : '') !== scope) throw new SignatureError('scope mismatch');
  if (!Array.isArray(payload.files)) throw new SignatureError('signature payload has no files');

  const listed = new Map<string, FileInfo>();
  for (const f of payload.files as FileInfo[]) {
    if (typeof f?.name !== 'string' || typeof f.hash !== 'string') throw new SignatureError('signature payload has a malformed file entry');
    listed.set(f.name.replace(/^\/+/, ''), f);
  }
  const excluded = config.exclude.map(globToRegExp);
  for (const [path, bytes] of files) {
    if (excluded.some((re) => re.test(path))) {
      listed.delete(path);
      continue;
    }
    const info = listed.get(path);
    if (!info) throw new SignatureError(`file ${path} not included in bundle signature`);
    if (!info.algorithm) throw new SignatureError(`no hashing algorithm provided for file ${path}`);
    const got = fileDigest(path, bytes, info.algorithm);
    if (got !== info.hash.toLowerCase()) throw new SignatureError(`${path}: digest mismatch (want: ${info.hash}, got: ${got})`);
    listed.delete(path);
  }
  if (listed.size > 0) throw new SignatureError(`file(s) ${[...listed.keys()].join(', ')} specified in bundle signatures but not found in the target bundle`);
}
