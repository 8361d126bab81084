/**
 * Issue 12, defect 3: prototype pollution from policy bundles.
 *
 * A bundle (from a bundle server, a ConfigMap, a dropped-in file) whose data carries `__proto__`, `constructor` or
 * `prototype` keys, in a data.json document or as a data directory (`__proto__/data.json`), used to reach plain
 * objects while the gateway merged the data: `__proto__/data.json` merged its document into Object.prototype of the
 * whole process. Such a bundle is now refused at load with an error naming the path: a gateway does not start on it,
 * and a running gateway keeps the policy in force (the victim's calls still work, the log names the refusal).
 */
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpMcpServer, type FixtureServer } from '../../helpers/mcp-http-server.ts';
import { connectClient, eventually, mcpBackend, route } from '../../helpers/gateway.ts';
import { pack, unpack } from '../../helpers/tar.ts';
import { readBundle } from '../../../src/guards/policy/bundle.ts';
import { bearer, cleanRoots, startSecureGateway, type SecureGateway } from './harness.ts';

const GOOD = readFileSync(join(import.meta.dirname, '../../../bundles/tollgate.tar.gz'));

/** The repository's default bundle with extra files (path -> JSON text). */
function tampered(extra: Record<string, string>): Buffer {
  const files = unpack(GOOD);
  for (const [name, text] of Object.entries(extra)) files.set(name, text);
  return pack(files);
}

const ATTACKS: Array<{ what: string; files: Record<string, string>; path: string }> = [
  { what: 'a __proto__ data directory', files: { '__proto__/data.json': '{"polluted": true}' }, path: '__proto__' },
  { what: 'a nested constructor/prototype path', files: { 'tollgate/constructor/prototype/data.json': '{"polluted": true}' }, path: 'constructor' },
  { what: 'a __proto__ key inside data.json', files: { 'evil/data.json': '{"a": {"__proto__": {"polluted": true}}}' }, path: 'data.evil.a.__proto__' },
  { what: 'a prototype key in a YAML document', files: { 'evil/data.yaml': 'x:\n  prototype:\n    polluted: true\n' }, path: 'data.evil.x.prototype' },
];

let fixture: FixtureServer;
let gw: SecureGateway;

beforeAll(async () => {
  fixture = await startHttpMcpServer({ name: 'fixture' });
});

afterAll(async () => {
  await gw?.stop();
  await fixture?.close();
  cleanRoots();
});

function files(): Record<string, string> {
  return { 'mcp.yaml': mcpBackend('fixture', { url: fixture.url }) + route('mcp', '/mcp', ['fixture']) };
}

const POLICY = '  policy: { bundle: policy.tar.gz, watch: true }\n';

describe('defect 3: prototype pollution from policy bundles', () => {
  it.each(ATTACKS)('readBundle refuses $what, naming the path, and Object.prototype stays clean', async ({ files: extra, path }) => {
    await expect(readBundle(tampered(extra), { source: 'attack.tar.gz' })).rejects.toThrow(path);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('a gateway does not start on a polluting bundle, and says which path', async () => {
    const root = mkdtempSync(join(tmpdir(), 'tollgate-sec-d03-'));
    mkdirSync(join(root, 'routes'));
    writeFileSync(join(root, 'routes', 'policy.tar.gz'), tampered(ATTACKS[0]!.files));
    const started = startSecureGateway({ root, gatewaySpec: POLICY, files: files() });
    await expect(started).rejects.toThrow(/forbidden data path segment "__proto__"/);
    rmSync(root, { recursive: true, force: true });
  });

  it('a running gateway refuses a dropped-in polluting bundle and keeps serving the victim under the policy in force', async () => {
    const root = mkdtempSync(join(tmpdir(), 'tollgate-sec-d03-'));
    mkdirSync(join(root, 'routes'));
    writeFileSync(join(root, 'routes', 'policy.tar.gz'), GOOD);
    gw = await startSecureGateway({ root, gatewaySpec: POLICY, files: files() });
    const victim = await connectClient(`${gw.url}/mcp`, { headers: bearer(gw.dev('victim')) });
    const echo = async (): Promise<string> => ((await victim.callTool({ name: 'fixture__echo', arguments: { message: 'still here' } })).content as Array<{ text: string }>)[0]!.text;
    expect(await echo()).toContain('still here');

    // A bundle that says nothing but pollutes: every call would still be allowed, so only the refusal shows it.
    const tmp = join(root, 'routes', 'policy.tar.gz.new');
    writeFileSync(tmp, tampered(ATTACKS[2]!.files));
    renameSync(tmp, join(root, 'routes', 'policy.tar.gz'));
    await eventually(() => /forbidden key \\"__proto__\\" at data\.evil\.a\.__proto__/.test(gw.proc.stdout()), 15_000, 'the bundle refusal in the log');
    expect(await echo()).toContain('still here');
    await victim.close();
  });
});
