/**
 * Config and policy from Kubernetes ConfigMap volumes, as the Helm chart mounts them: the kubelet updates a volume by
 * swapping its `..data` symlink (test/helpers/kubelet-volume.ts), and the running gateway applies the change without
 * a restart, in the same process and session: a new Route from the config volume, an edited Rego file from the
 * policies volume (compiled by opa), a replaced bundle from a bundle volume.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { startGateway, type RunningGateway } from '../../src/main.ts';
import { buildWasmBundle, findOpa } from '../../src/guards/policy/opa.ts';
import { connectClient, devAuthHeaders, eventually, mcpBackend, route } from '../helpers/gateway.ts';
import { writeVolume } from '../helpers/kubelet-volume.ts';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { rawPost } from '../helpers/raw-http.ts';

const root = mkdtempSync(join(tmpdir(), 'tollgate-cm-'));

/** A policy that allows every call and list item except the tools named in `denied`. */
function rego(denied: string[]): string {
  return [
    'package tollgate',
    `denied := ${JSON.stringify(denied)}`,
    'default decision := {"allow": true, "reason": ""}',
    // A denied tool is also hidden (not in visible): the gateway answers it as an unknown tool, like one that does not exist.
    'decision := {"allow": false, "reason": "switched off"} if input.target.name in denied',
    'visible contains name if {',
    '  some _, items in input.targets',
    '  some _, name in items',
    '  not name in denied',
    '}',
    '',
  ].join('\n');
}

function gatewayYaml(name: string, policy: string): string {
  return `apiVersion: tollgate.dev/v1alpha1\nkind: Gateway\nmetadata: { name: ${name} }\nspec:\n  listener: { host: 127.0.0.1, port: 0 }\n  shutdown: { drainMs: 1000 }\n  dataDir: ${join(root, name, 'data')}\n  policy: ${policy}\n`;
}

let fixture: FixtureServer;
beforeAll(async () => {
  fixture = await startHttpMcpServer({ name: 'fixture' });
});
afterAll(async () => {
  await fixture?.close();
  rmSync(root, { recursive: true, force: true });
});

async function add(client: Client): Promise<string> {
  try {
    const r = await client.callTool({ name: 'fixture__add', arguments: { a: 2, b: 3 } });
    return (r.content as Array<{ text: string }>)[0]!.text;
  } catch (err) {
    return `refused: ${(err as Error).message}`;
  }
}

describe('ConfigMap volumes: changes reach the running gateway', () => {
  let gw: RunningGateway;
  let client: Client;
  const config = join(root, 'dir', 'config');
  const policies = join(root, 'dir', 'policies');
  const files = (extra: Record<string, string> = {}): Record<string, string> => ({
    'gateway.yaml': gatewayYaml('dir', `{ dir: ${policies} }`),
    'mcp.yaml': mcpBackend('fixture', { url: fixture.url }) + route('mcp', '/mcp', ['fixture']),
    ...extra,
  });

  beforeAll(async () => {
    writeVolume(policies, { 'main.rego': rego(['fixture__add']) });
    writeVolume(config, files());
    gw = await startGateway({ configDir: config, host: '127.0.0.1', port: 0, logLevel: 'silent' });
    client = await connectClient(`${gw.url}/mcp`, { headers: devAuthHeaders(config, undefined, gw.url) });
  });
  afterAll(async () => {
    await client?.close();
    await gw?.shutdown();
  });

  it('an edited Rego file in the policies volume is compiled and in force, same session', async () => {
    expect(await add(client)).toMatch(/refused: MCP error -32602: Unknown tool: fixture__add/);
    writeVolume(policies, { 'main.rego': rego([]) });
    await eventually(async () => (await add(client)) === '5', 20_000, 'the new policy');
  });

  it('a Route added to the config volume serves, same process', async () => {
    // A token for the resource the new route will serve (RFC 8707: tokens name their resource).
    const auth = devAuthHeaders(config, undefined, gw.url, ['/extra']).authorization!;
    expect((await rawPost(`${gw.url}/extra`, { authorization: auth })).status).toBe(404);
    writeVolume(config, files({ 'extra.yaml': route('extra', '/extra', ['fixture']) }));
    await eventually(async () => (await rawPost(`${gw.url}/extra`, { authorization: auth })).status === 200, 10_000, 'the new route');
    // The session opened before both changes goes on.
    const r = await client.callTool({ name: 'fixture__echo', arguments: { message: 'still here' } });
    expect((r.content as Array<{ text: string }>)[0]!.text).toBe('still here');
  });

  it('a Route removed from the config volume stops serving', async () => {
    const auth = devAuthHeaders(config, undefined, gw.url).authorization!;
    writeVolume(config, files());
    await eventually(async () => (await rawPost(`${gw.url}/extra`, { authorization: auth })).status === 404, 10_000, 'the route gone');
  });
});

describe('ConfigMap volume: a replaced policy bundle', () => {
  it('is loaded when the kubelet swaps the volume (the bundle file itself never changes)', async () => {
    const opa = findOpa();
    if (!opa) throw new Error('opa not found: scripts/install-tools.sh builds it');
    const bundles: Uint8Array[] = [];
    for (const [i, denied] of [['fixture__add'], []].entries()) {
      const src = join(root, `bundle-src-${i}`);
      writeVolume(src, { 'main.rego': rego(denied) });
      const output = join(root, `bundle-${i}.tar.gz`);
      const built = await buildWasmBundle({ opa, dir: src, entrypoints: ['tollgate/decision', 'tollgate/visible'], output });
      expect(built.ok, JSON.stringify(built)).toBe(true);
      bundles.push(readFileSync(output));
    }
    const volume = join(root, 'bundle', 'policy-bundle');
    const config = join(root, 'bundle', 'config');
    writeVolume(volume, { 'tollgate.tar.gz': bundles[0]! });
    writeVolume(config, {
      'gateway.yaml': gatewayYaml('bundle', `{ bundle: ${join(volume, 'tollgate.tar.gz')} }`),
      'mcp.yaml': mcpBackend('fixture', { url: fixture.url }) + route('mcp', '/mcp', ['fixture']),
    });
    const gw = await startGateway({ configDir: config, host: '127.0.0.1', port: 0, logLevel: 'silent' });
    const client = await connectClient(`${gw.url}/mcp`, { headers: devAuthHeaders(config, undefined, gw.url) });
    try {
      expect(await add(client)).toMatch(/refused: MCP error -32602: Unknown tool: fixture__add/);
      writeVolume(volume, { 'tollgate.tar.gz': bundles[1]! });
      await eventually(async () => (await add(client)) === '5', 10_000, 'the replaced bundle');
    } finally {
      await client.close();
      await gw.shutdown();
    }
  });
});
