import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readBundle } from '../../src/guards/policy/bundle.ts';
import type { VerificationConfig } from '../../src/guards/policy/signature.ts';
import { buildBytes } from '../helpers/policy.ts';
import { gzipSync } from 'node:zlib';
import { createTar } from 'nanotar';
import { pack, unpack } from '../helpers/tar.ts';

const POLICY = {
  'authz/main.rego': 'package authz\n\nallow if input.user in data.authz.users\n',
  'authz/data.json': '{"users": ["ann"], "limits": {"rps": 10.50, "burst": 1e3}}',
};

describe('signed bundles (signed by real opa build, verified by Tollgate)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-keys-'));
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const rsaPub = rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const config = (over: Partial<VerificationConfig> = {}): VerificationConfig => ({
    keys: { default: { algorithm: 'RS256', key: rsaPub }, ops: { algorithm: 'ES256', key: ec.publicKey.export({ type: 'spki', format: 'pem' }).toString() } },
    exclude: [],
    ...over,
  });
  let signed: Buffer;

  beforeAll(async () => {
    writeFileSync(join(dir, 'rsa.pem'), rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(join(dir, 'ec.pem'), ec.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    signed = await buildBytes(POLICY, ['authz/allow'], { signing: { key: join(dir, 'rsa.pem'), algorithm: 'RS256' } });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('accepts a bundle signed by opa (canonical JSON hashing matches OPA, numbers as written)', async () => {
    const b = await readBundle(signed, { source: 'signed', verification: config() });
    expect(b.signed).toBe(true);
    expect(b.data).toEqual({ authz: { users: ['ann'], limits: { rps: 10.5, burst: 1000 } } });
  });

  it('accepts a signed bundle whose JSON was re-indented (whitespace is not content)', async () => {
    const files = unpack(signed);
    const text = Buffer.from(files.get('data.json')!).toString();
    const indented = text.replace(/([{,])"/g, '$1\n    "').replace(/}/g, '\n}');
    expect(indented).not.toBe(text);
    files.set('data.json', indented);
    await expect(readBundle(pack(files), { source: 'reformatted', verification: config() })).resolves.toBeTruthy();
  });

  it('refuses a bundle whose data was tampered with', async () => {
    const files = unpack(signed);
    files.set('data.json', Buffer.from(Buffer.from(files.get('data.json')!).toString().replace('"ann"', '"mallory"')));
    await expect(readBundle(pack(files), { source: 'tampered', verification: config() })).rejects.toThrow(/data\.json: digest mismatch/);
  });

  it('refuses a bundle whose policy.wasm was swapped', async () => {
    const evil = await buildBytes({ 'authz/main.rego': 'package authz\n\nallow := true\n' }, ['authz/allow']);
    const files = unpack(signed);
    files.set('policy.wasm', unpack(evil).get('policy.wasm')!);
    await expect(readBundle(pack(files), { source: 'swapped', verification: config() })).rejects.toThrow(/policy\.wasm: digest mismatch/);
  });

  it('refuses extra files, missing files, missing signatures and unsigned bundles', async () => {
    const extra = unpack(signed);
    extra.set('authz/backdoor.rego', 'package authz\n');
    await expect(readBundle(pack(extra), { source: 'extra', verification: config() })).rejects.toThrow(/not included in bundle signature/);

    const missing = unpack(signed);
    missing.delete('authz/main.rego');
    await expect(readBundle(pack(missing), { source: 'missing', verification: config() })).rejects.toThrow(/specified in bundle signatures but not found/);

    const stripped = unpack(signed);
    stripped.delete('.signatures.json');
    await expect(readBundle(pack(stripped), { source: 'stripped', verification: config() })).rejects.toThrow(/missing \.signatures\.json/);

    const unsigned = await buildBytes(POLICY, ['authz/allow']);
    await expect(readBundle(unsigned, { source: 'unsigned', verification: config() })).rejects.toThrow(/missing \.signatures\.json/);
  });

  it('honours exclude globs like OPA', async () => {
    const extra = unpack(signed);
    extra.set('authz/notes.txt', 'not signed');
    await expect(readBundle(pack(extra), { source: 'excluded', verification: config({ exclude: ['authz/*.txt'] }) })).resolves.toBeTruthy();
  });

  it('refuses a signature by another key, an unknown key id, a wrong algorithm and a scope mismatch', async () => {
    const otherPub = other.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    await expect(readBundle(signed, { source: 's', verification: config({ keys: { default: { algorithm: 'RS256', key: otherPub } } }) })).rejects.toThrow(
      /signature is invalid/,
    );
    await expect(readBundle(signed, { source: 's', verification: config({ keyId: 'nope' }) })).rejects.toThrow(/key nope not found/);
    await expect(readBundle(signed, { source: 's', verification: config({ keyId: 'ops' }) })).rejects.toThrow(/signature is invalid/);
    await expect(readBundle(signed, { source: 's', verification: config({ scope: 'prod' }) })).rejects.toThrow(/scope mismatch/);
  });

  it('verifies ES256 signatures chosen by kid', async () => {
    const es = await buildBytes(POLICY, ['authz/allow'], { signing: { key: join(dir, 'ec.pem'), algorithm: 'ES256', keyId: 'ops' } });
    const b = await readBundle(es, { source: 'es', verification: config() });
    expect(b.signed).toBe(true);
  });
});

describe('bundle archive hygiene', () => {
  it('refuses duplicate entries (what is verified must be what is loaded) and truncated archives', async () => {
    const bytes = await buildBytes({ 'p.rego': 'package p\n\nallow := true\n' }, ['p/allow']);
    const files = [...unpack(bytes)];
    const wasm = files.find(([n]) => n === 'policy.wasm')![1];
    const dup = gzipSync(createTar([...files, ['/policy.wasm', wasm] as const].map(([name, data]) => ({ name, data }))));
    await expect(readBundle(dup, { source: 'dup' })).rejects.toThrow(/two entries for policy\.wasm/);
    await expect(readBundle(bytes.subarray(0, bytes.length / 2), { source: 'cut' })).rejects.toThrow(/not a gzipped bundle/);
  });
});
