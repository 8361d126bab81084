/**
 * An https_web bundle endpoint over real TLS: a certificate generated here (openssl) for 127.0.0.1, trusted through
 * `caFile`. Without the CA the endpoint is not trusted, so no bundle is loaded and its SVIDs are refused.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mcpBackend, route, startTestGateway, withIdentity, type TestGateway } from '../helpers/gateway.ts';
import { newSigner, nowS, signJwt, spiffeBundle } from '../helpers/jwt.ts';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { rawPost } from '../helpers/raw-http.ts';

const AUD = 'https://gw.test';
const key = newSigner('ES256', 'tls-1');
let dir: string;
let https: Server;
let bundleUrl: string;
let fixture: FixtureServer;
const gateways: TestGateway[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tollgate-tls-'));
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
    '-subj', '/CN=tollgate-test-bundle', '-addext', 'subjectAltName=IP:127.0.0.1',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
  ], { stdio: 'ignore' });
  const body = JSON.stringify(spiffeBundle([key], { spiffe_refresh_hint: 60 }));
  https = createServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' }).end(body);
  });
  await new Promise<void>((r) => https.listen(0, '127.0.0.1', r));
  bundleUrl = `https://127.0.0.1:${(https.address() as AddressInfo).port}/bundle`;
  fixture = await startHttpMcpServer();
});

afterAll(async () => {
  for (const g of gateways) await g.stop();
  await fixture?.close();
  https?.closeAllConnections();
  https?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function gateway(bundle: string): Promise<TestGateway> {
  const gw = await startTestGateway(
    { 'mcp.yaml': mcpBackend('f', { url: fixture.url }) + route('mcp', '/mcp', ['f']) },
    { gatewayYaml: withIdentity(`    audiences: [${AUD}]\n    trustDomains:\n      - { name: tls.test, bundle: { https_web: ${bundle} } }\n`) },
  );
  gateways.push(gw);
  return gw;
}

describe('https_web over TLS', () => {
  const token = (): string => signJwt(key, { sub: 'spiffe://tls.test/agent', aud: `${AUD}/mcp`, exp: nowS() + 300 });

  it('loads the bundle from an endpoint whose certificate chains to caFile', async () => {
    const gw = await gateway(`{ url: "${bundleUrl}", caFile: ${JSON.stringify(join(dir, 'cert.pem'))} }`);
    expect((await rawPost(`${gw.url}/mcp`, { authorization: `Bearer ${token()}` })).status).toBe(200);
  });

  it('does not trust the endpoint without its CA: no bundle, SVIDs refused', async () => {
    const gw = await gateway(`{ url: "${bundleUrl}" }`);
    const res = await rawPost(`${gw.url}/mcp`, { authorization: `Bearer ${token()}` });
    expect(res.status).toBe(401);
    expect(res.json().error?.data?.reason).toMatch(/no keys for trust domain tls.test/);
  });
});
