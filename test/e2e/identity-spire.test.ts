/**
 * Real SPIRE: two spire-server processes (trust domains a.test and b.test) started here with temporary configs.
 * `spire-server jwt mint` issues real JWT-SVIDs, `spire-server bundle show -format spiffe` exports a.test's bundle,
 * and the gateway, trusting a.test only, accepts a.test's SVID over MCP (official SDK client) and refuses b.test's.
 * No spire-server binary means failure, not a skip (scripts/install-tools.sh builds it). The agent side (Workload
 * API, rotation) is in identity-spire-agent.test.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectClient, mcpBackend, route, startTestGateway, type TestGateway, withIdentity } from '../helpers/gateway.ts';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { rawPost } from '../helpers/raw-http.ts';
import { startSpireServer, type SpireServer } from '../helpers/spire.ts';

const AUD = 'https://gw.test';

let root: string;
const servers: SpireServer[] = [];
let fixture: FixtureServer;
let gw: TestGateway;
let tokenA: string;
let tokenB: string;

function header(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'tollgate-spire-'));
  const [a, b] = await Promise.all([startSpireServer(root, 'a.test'), startSpireServer(root, 'b.test')]);
  servers.push(a, b);
  const bundle = await a.bundle();
  tokenA = await a.mint('spiffe://a.test/agents/planner', `${AUD}/mcp`);
  tokenB = await b.mint('spiffe://b.test/agents/planner', `${AUD}/mcp`);
  fixture = await startHttpMcpServer({ name: 'fixture' });
  gw = await startTestGateway(
    { 'a.test.bundle.json': bundle, 'mcp.yaml': mcpBackend('fixture', { url: fixture.url }) + route('mcp', '/mcp', ['fixture']) },
    {
      gatewayYaml: withIdentity(`    audiences: [${AUD}]
    trustDomains:
      - { name: a.test, bundle: { file: a.test.bundle.json } }
`),
    },
  );
}, 90_000);

afterAll(async () => {
  await gw?.stop();
  await fixture?.close();
  await Promise.all(servers.map((s) => s.stop()));
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('real SPIRE JWT-SVIDs', () => {
  it('mints what the notes say: ES256, typ JWT, a kid from the bundle', () => {
    expect(header(tokenA)).toMatchObject({ alg: 'ES256', typ: 'JWT' });
    expect(typeof header(tokenA).kid).toBe('string');
  });

  it('accepts the SVID of the trusted trust domain over MCP (official SDK client)', async () => {
    const client = await connectClient(`${gw.url}/mcp`, { headers: { authorization: `Bearer ${tokenA}` } });
    const sum = await client.callTool({ name: 'fixture__add', arguments: { a: 40, b: 2 } });
    expect(sum.content).toEqual([{ type: 'text', text: '42' }]);
    await client.close();
  });

  it('refuses the SVID of the second, untrusted SPIRE trust domain', async () => {
    await expect(connectClient(`${gw.url}/mcp`, { headers: { authorization: `Bearer ${tokenB}` } })).rejects.toThrow();
    const res = await rawPost(`${gw.url}/mcp`, { authorization: `Bearer ${tokenB}` });
    expect(res.status).toBe(401);
    expect(res.json().error?.data?.reason).toBe('trust domain b.test is not trusted');
  });

  it('refuses b.test SVIDs even when given b.test keys under the name a.test (keys never cross domains)', async () => {
    // Swap b.test's key into a token that claims a.test: its kid is unknown to a.test's bundle.
    const [h, , sig] = tokenB.split('.');
    const claims = JSON.parse(Buffer.from(tokenB.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
    const forged = `${h}.${Buffer.from(JSON.stringify({ ...claims, sub: 'spiffe://a.test/agents/planner' })).toString('base64url')}.${sig}`;
    const res = await rawPost(`${gw.url}/mcp`, { authorization: `Bearer ${forged}` });
    expect(res.status).toBe(401);
  });
});
