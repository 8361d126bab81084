/**
 * Keys the embedded defaults generate in the data dir (src/config/generated-file.ts): processes starting at once on
 * one data dir (replicas; CI once saw `EEXIST ... audit-signing-key.pem` kill the second of two replicas) all start,
 * and all use the one key whose link won, for the audit signing key and the dev trust domain alike.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const SCRIPT = `
import { loadSigningKey } from ${JSON.stringify(join(ROOT, 'src/audit/keys.ts'))};
import { loadOrCreateDevAuthority } from ${JSON.stringify(join(ROOT, 'src/guards/identity/dev.ts'))};
const dir = process.argv[1];
await new Promise((r) => setTimeout(r, Number(process.argv[2]) - Date.now()));
const audit = loadSigningKey({}, dir, dir).publicKey.export({ format: 'pem', type: 'spki' });
const dev = loadOrCreateDevAuthority(dir, 'example.org').kid;
process.stdout.write(JSON.stringify({ audit, dev }));
`;

function run(dir: string, at: number): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((res) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', SCRIPT, dir, String(at)], { cwd: ROOT });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('exit', (code) => res({ code, out, err }));
  });
}

describe('keys generated in a shared data dir', () => {
  it('six processes starting at once all start and agree on one audit key and one dev key', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-genfile-'));
    dirs.push(dir);
    const at = Date.now() + 1_500; // every process past its imports, then all at once
    const results = await Promise.all(Array.from({ length: 6 }, () => run(dir, at)));
    for (const r of results) expect(r.err).toBe('');
    for (const r of results) expect(r.code).toBe(0);
    const seen = results.map((r) => JSON.parse(r.out) as { audit: string; dev: string });
    expect(new Set(seen.map((s) => s.audit)).size).toBe(1);
    expect(new Set(seen.map((s) => s.dev)).size).toBe(1);
    // The files on disk are that key, private ones 0600, and no temporary file is left behind.
    expect(readFileSync(join(dir, 'audit-signing-key.pub.pem'), 'utf8')).toBe(seen[0]!.audit);
    expect(statSync(join(dir, 'audit-signing-key.pem')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'identity', 'dev-example.org.jwk')).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir).sort()).toEqual(['audit-signing-key.pem', 'audit-signing-key.pub.pem', 'identity']);
    expect(readdirSync(join(dir, 'identity'))).toEqual(['dev-example.org.jwk']);
  });
});
