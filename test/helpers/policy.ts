/**
 * Real opa builds for tests: writes Rego files to a temp directory and compiles them with the gateway's own build
 * path (capabilities included). A missing opa fails the test loudly.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
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

/**
 * The live-policy tests' policy (policy-live, policy-reload, security/d10-signals): it depends on no identity;
 * `echo` is allowed or refused with a reason naming `version`, every other call is allowed, every target visible.
 */
export function echoRego(version: string, echo: boolean): string {
  return `package tollgate

default decision := {"allow": false, "reason": "${version}: closed"}

decision := {"allow": true} if input.operation != "tools/call"

decision := {"allow": ${echo}, "reason": "${version}: echo ${echo ? 'open' : 'closed'}"} if input.target.local == "echo"

visible contains name if {
	some _, items in input.targets
	some _, name in items
}
`;
}

/** The entrypoints of `echoRego`'s bundle. */
export const ECHO_ENTRYPOINTS = ['tollgate/decision', 'tollgate/visible'];

export type EchoOutcome = 'allowed' | `denied:${string}` | `error:${string}`;

/** Calls fixture__echo: allowed, denied by policy (with the policy's reason), or any other error (with its message). */
export async function callEcho(client: Client): Promise<EchoOutcome> {
  try {
    await client.callTool({ name: 'fixture__echo', arguments: { message: 'hi' } });
    return 'allowed';
  } catch (err) {
    if (err instanceof McpError && err.code === -32062) return `denied:${err.message.replace(/^MCP error -32062: /, '')}`;
    return `error:${err instanceof Error ? err.message : String(err)}`;
  }
}
