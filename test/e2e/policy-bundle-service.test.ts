/**
 * Bundle service end to end: the gateway polls a bundle server (ETag / If-None-Match, 304), verifies the bundles'
 * signatures (signed by the real opa), refuses a tampered or unsigned bundle (the policy in force stays), and puts
 * a properly signed new bundle in force. Calls go through the gateway with the official SDK client.
 */
import { generateKeyPairSync } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { GATEWAY_YAML, connectClient, eventually, mcpBackend, route, startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { buildBytes } from '../helpers/policy.ts';
import { pack, unpack } from '../helpers/tar.ts';

const POLICY = `package tollgate

default decision := {"allow": false, "reason": "echo is closed by the bundle data"}

decision := {"allow": true} if input.operation != "tools/call"

decision := {"allow": true} if {
	input.target.local == "echo"
	data.tollgate.echo_open
}

visible contains name if {
	some _, items in input.targets
	some _, name in items
}
`;

interface BundleServer {
  url: string;
  /** Serves these bytes with this ETag from now on. */
  serve(bytes: Buffer, etag: string): void;
  requests: Array<{ headers: IncomingHttpHeaders; status: number }>;
  close(): Promise<void>;
}

/** A minimal OPA-compatible bundle server: GET with If-None-Match -> 304 when unchanged. */
async function startBundleServer(): Promise<BundleServer> {
  let current: { bytes: Buffer; etag: string } | undefined;
  const requests: BundleServer['requests'] = [];
  const server: Server = createServer((req, res) => {
    let status = 404;
    if (req.headers.authorization !== 'Bearer bundle-token') status = 401;
    else if (current && req.headers['if-none-match'] === current.etag) status = 304;
    else if (current) status = 200;
    requests.push({ headers: req.headers, status });
    if (status === 200) res.writeHead(200, { 'content-type': 'application/gzip', etag: current!.etag }).end(current!.bytes);
    else res.writeHead(status).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/bundles/tollgate.tar.gz`,
    serve: (bytes, etag) => {
      current = { bytes, etag };
    },
    requests,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

async function echo(client: Client): Promise<string> {
  try {
    await client.callTool({ name: 'fixture__echo', arguments: { message: 'hi' } });
    return 'allowed';
  } catch (err) {
    if (err instanceof McpError) return `denied: ${err.message}`;
    throw err;
  }
}

describe('bundle service with signed bundles', () => {
  const keys = mkdtempSync(join(tmpdir(), 'tollgate-bundle-keys-'));
  const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
  let fixture: FixtureServer;
  let bundles: BundleServer;
  let gw: TestGateway;
  let client: Client;
  const sign = { key: join(keys, 'signing.pem'), algorithm: 'RS256', keyId: 'release' };

  beforeAll(async () => {
    writeFileSync(sign.key, pair.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(join(keys, 'verify.pem'), pair.publicKey.export({ type: 'spki', format: 'pem' }));
    process.env.TEST_BUNDLE_TOKEN = 'Bearer bundle-token';
    fixture = await startHttpMcpServer({ name: 'fixture' });
    bundles = await startBundleServer();
    bundles.serve(await buildBytes({ 'tollgate/main.rego': POLICY, 'tollgate/data.json': '{"echo_open": true}' }, ['tollgate/decision', 'tollgate/visible'], { signing: sign }), '"r1"');
    const policy = [
      '  policy:',
      '    service:',
      `      url: ${bundles.url}`,
      '      minDelayMs: 100',
      '      maxDelayMs: 150',
      '      headers:',
      '        - name: authorization',
      '          valueFrom: { env: TEST_BUNDLE_TOKEN }',
      '    verification:',
      '      keys:',
      '        release:',
      '          algorithm: RS256',
      `          key: { valueFrom: { file: ${JSON.stringify(join(keys, 'verify.pem'))} } }`,
      '',
    ].join('\n');
    gw = await startTestGateway({ 'mcp.yaml': mcpBackend('fixture', { url: fixture.url }) + route('mcp', '/mcp', ['fixture']) }, { gatewayYaml: GATEWAY_YAML + policy });
    client = await connectClient(`${gw.url}/mcp`);
  });

  afterAll(async () => {
    await client?.close();
    await gw?.stop();
    await bundles?.close();
    await fixture?.close();
    rmSync(keys, { recursive: true, force: true });
    delete process.env.TEST_BUNDLE_TOKEN;
  });

  it('serves the signed bundle and revalidates it with If-None-Match (304)', async () => {
    expect(await echo(client)).toBe('allowed');
    await eventually(() => bundles.requests.filter((r) => r.status === 304).length >= 2, 5_000, 'conditional polls');
    const conditional = bundles.requests.filter((r) => r.status === 304);
    expect(conditional.every((r) => r.headers['if-none-match'] === '"r1"')).toBe(true);
    expect(bundles.requests[0]!.headers['if-none-match']).toBeUndefined();
  });

  it('refuses a tampered bundle and keeps the policy in force', async () => {
    const good = await buildBytes({ 'tollgate/main.rego': POLICY, 'tollgate/data.json': '{"echo_open": false}' }, ['tollgate/decision', 'tollgate/visible'], { signing: sign });
    const files = unpack(good);
    const data = Buffer.from(files.get('data.json')!).toString();
    expect(data).toContain('"echo_open":false');
    files.set('data.json', data.replace('"echo_open":false', '"echo_open":true')); // data changed after signing
    const before = bundles.requests.length;
    bundles.serve(pack(files), '"r2-tampered"');
    await eventually(() => bundles.requests.slice(before).filter((r) => r.status === 200).length >= 2, 5_000, 'the tampered bundle to be fetched twice');
    expect(await echo(client)).toBe('allowed');
    // Refused, so its ETag was not adopted: the gateway keeps asking for a full bundle.
    expect(bundles.requests.slice(before).some((r) => r.headers['if-none-match'] === '"r2-tampered"')).toBe(false);
  });

  it('refuses an unsigned bundle', async () => {
    const before = bundles.requests.length;
    bundles.serve(await buildBytes({ 'tollgate/main.rego': POLICY, 'tollgate/data.json': '{"echo_open": false}' }, ['tollgate/decision', 'tollgate/visible']), '"r3-unsigned"');
    await eventually(() => bundles.requests.slice(before).filter((r) => r.status === 200).length >= 2, 5_000, 'the unsigned bundle to be fetched');
    expect(await echo(client)).toBe('allowed');
  });

  it('puts a properly signed new bundle in force', async () => {
    bundles.serve(
      await buildBytes({ 'tollgate/main.rego': POLICY, 'tollgate/data.json': '{"echo_open": false}' }, ['tollgate/decision', 'tollgate/visible'], { signing: sign }),
      '"r4"',
    );
    await eventually(async () => (await echo(client)) !== 'allowed', 5_000, 'the new bundle');
    expect(await echo(client)).toBe('denied: MCP error -32062: echo is closed by the bundle data');
    await eventually(() => bundles.requests.some((r) => r.headers['if-none-match'] === '"r4"' && r.status === 304), 5_000, 'revalidation of r4');
  });
});
