/**
 * Real opa builds for tests: writes Rego files to a temp directory and compiles them with the gateway's own build
 * path (capabilities included). A missing opa fails the test loudly.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { readBundle, type PolicyBundle } from '../../src/guards/policy/bundle.ts';
import { PolicyEngine } from '../../src/guards/policy/engine.ts';
import { buildWasmBundle, findOpa } from '../../src/guards/policy/opa.ts';

export function requireOpa(): string {
  const opa = findOpa();
  if (!opa) throw new Error('opa not found: run scripts/install-tools.sh and put ~/.cache/tollgate/bin on PATH (npm test does)');
  return opa;
}

/** Writes files (relative path -> content) under a new temp directory; returns it. */
export function writeTree(files: Record<string, string>, dir = mkdtempSync(join(tmpdir(), 'tollgate-rego-'))): string {
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

/** Builds Rego sources into a bundle file; returns its bytes. Throws with opa's diagnostics when the build fails. */
export async function buildBytes(files: Record<string, string>, entrypoints: string[], extra: { signing?: { key: string; algorithm: string; keyId?: string } } = {}): Promise<Buffer> {
  const dir = writeTree(files);
  try {
    const output = join(dir, '..', `${dir.split('/').pop()}.tar.gz`);
    const r = await buildWasmBundle({ opa: requireOpa(), dir, entrypoints, output, signing: extra.signing });
    if (!r.ok) throw new Error(r.error);
    const bytes = readFileSync(output);
    rmSync(output, { force: true });
    return bytes;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function buildBundle(files: Record<string, string>, entrypoints: string[]): Promise<PolicyBundle> {
  return readBundle(await buildBytes(files, entrypoints), { source: 'test' });
}

export async function buildEngine(files: Record<string, string>, entrypoints: string[], memory = { initialPages: 16, maxPages: 64 }): Promise<PolicyEngine> {
  return PolicyEngine.load(await buildBundle(files, entrypoints), memory);
}
