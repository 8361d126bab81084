/**
 * The SPIFFE Workload API client against a real gRPC server implementing workload.proto on a unix socket:
 * trust bundles from the FetchJWTBundles stream (rotation without restart, stream re-opened when it ends), and
 * Tollgate's own JWT-SVID per upstream audience (FetchJWTSVID, renewed before expiry) on upstream calls, never
 * the caller's token.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WorkloadApiClient, workloadTarget } from '../../src/guards/identity/workload-api.ts';
import { connectClient, eventually, mcpBackend, route, startTestGateway, type TestGateway, withIdentity } from '../helpers/gateway.ts';
import { newSigner, nowS, signJwt, spiffeBundle } from '../helpers/jwt.ts';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { rawPost } from '../helpers/raw-http.ts';
import { startWorkloadApiServer, type WorkloadApiServer } from '../helpers/workload-api-server.ts';

const AUD = 'https://gw.test';
const UPSTREAM_AUD = 'spiffe://wl.test/fixture';
const key1 = newSigner('ES256', 'wl-1');
const key2 = newSigner('ES256', 'wl-2');
const federated = newSigner('ES256', 'fed-1');

let agent: WorkloadApiServer;
let fixture: FixtureServer;
let gw: TestGateway;

const callerToken = (signer = key1, sub = 'spiffe://wl.test/caller'): string => signJwt(signer, { sub, aud: `${AUD}/mcp`, exp: nowS() + 300 });
const payload = (token: string): Record<string, unknown> => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;

beforeAll(async () => {
  agent = await startWorkloadApiServer({ svidTtl: 4 });
  agent.publish({ 'spiffe://wl.test': spiffeBundle([key1]), 'spiffe://partner.test': spiffeBundle([federated]) });
  fixture = await startHttpMcpServer({ name: 'fixture' });
  gw = await startTestGateway(
    {
      'mcp.yaml':
        mcpBackend('fixture', { url: fixture.url, identity: { audience: UPSTREAM_AUD } }) + route('mcp', '/mcp', ['fixture']),
    },
    {
      gatewayYaml: withIdentity(`    audiences: [${AUD}]
    workloadApi: { socket: "${agent.address}", renewAt: 0.5 }
    trustDomains:
      - { name: wl.test, bundle: { workload_api: {} } }
      - { name: partner.test, bundle: { workload_api: {} } }
`),
    },
  );
});

afterAll(async () => {
  await gw?.stop();
  await fixture?.close();
  await agent?.close();
});

describe('Workload API client', () => {
  it('parses SPIFFE_ENDPOINT_SOCKET forms', () => {
    expect(workloadTarget('unix:///run/spire/agent.sock')).toBe('unix:///run/spire/agent.sock');
    expect(workloadTarget('unix:/run/spire/agent.sock')).toBe('unix:///run/spire/agent.sock');
    expect(workloadTarget('/run/spire/agent.sock')).toBe('unix:///run/spire/agent.sock');
    expect(workloadTarget('tcp://127.0.0.1:8081')).toBe('ipv4:127.0.0.1:8081');
    expect(() => workloadTarget('unix://relative/agent.sock')).toThrow();
    expect(() => workloadTarget('tcp://agent.local:8081')).toThrow();
    expect(() => workloadTarget('http://127.0.0.1:8081')).toThrow();
  });

  it('sends the workload.spiffe.io security header on every call and gets JWT-SVIDs', async () => {
    const client = new WorkloadApiClient(agent.address);
    try {
      const svids = await client.fetchJwtSvids(['spiffe://wl.test/x']);
      expect(svids).toHaveLength(1);
      expect(svids[0]!.spiffeId).toBe('spiffe://wl.test/tollgate');
      expect(payload(svids[0]!.token).aud).toEqual(['spiffe://wl.test/x']);
      expect(agent.calls.length).toBeGreaterThan(0);
      expect(agent.calls.every((c) => c.secured)).toBe(true);
      await expect(client.fetchJwtSvids([])).rejects.toThrow(/audience must be specified/);
    } finally {
      client.close();
    }
  });
});

describe('Workload API address', () => {
  it('comes from SPIFFE_ENDPOINT_SOCKET when the config names none, and its absence is a clear startup error', async () => {
    const saved = process.env.SPIFFE_ENDPOINT_SOCKET;
    const yaml = withIdentity(`    audiences: [${AUD}]\n    trustDomains: [{ name: wl.test, bundle: { workload_api: {} } }]\n`);
    const own = await startHttpMcpServer({ name: 'own' });
    const files = { 'mcp.yaml': mcpBackend('own', { url: own.url }) + route('mcp', '/mcp', ['own']) };
    try {
      delete process.env.SPIFFE_ENDPOINT_SOCKET;
      await expect(startTestGateway(files, { gatewayYaml: yaml })).rejects.toThrow(/SPIFFE_ENDPOINT_SOCKET/);
      process.env.SPIFFE_ENDPOINT_SOCKET = agent.address;
      const fromEnv = await startTestGateway(files, { gatewayYaml: yaml });
      try {
        expect((await rawPost(`${fromEnv.url}/mcp`, { authorization: `Bearer ${callerToken()}` })).status).toBe(200);
      } finally {
        await fromEnv.stop();
      }
    } finally {
      if (saved === undefined) delete process.env.SPIFFE_ENDPOINT_SOCKET;
      else process.env.SPIFFE_ENDPOINT_SOCKET = saved;
      await own.close();
    }
  });
});

describe('trust bundles from FetchJWTBundles', () => {
  it('accepts SVIDs of the trust domains the stream carries, with keys of that domain only', async () => {
    expect((await rawPost(`${gw.url}/mcp`, { authorization: `Bearer ${callerToken()}` })).status).toBe(200);
    expect((await rawPost(`${gw.url}/mcp`, { authorization: `Bearer ${callerToken(federated, 'spiffe://partner.test/agent')}` })).status).toBe(200);
    // The federated domain's key does not vouch for wl.test.
    expect((await rawPost(`${gw.url}/mcp`, { authorization: `Bearer ${callerToken(federated)}` })).status).toBe(401);
  });

  it('rotates keys streamed by the agent without restart', async () => {
    const old = callerToken(key1, 'spiffe://wl.test/rotating');
    const fresh = callerToken(key2, 'spiffe://wl.test/rotating');
    expect((await rawPost(`${gw.url}/mcp`, { authorization: `Bearer ${fresh}` })).status).toBe(401);
    agent.publish({ 'spiffe://wl.test': spiffeBundle([key1, key2]), 'spiffe://partner.test': spiffeBundle([federated]) });
    await eventually(async () => (await rawPost(`${gw.url}/mcp`, { authorization: `Bearer ${fresh}` })).status === 200, 5_000, 'streamed key accepted');
    agent.publish({ 'spiffe://wl.test': spiffeBundle([key2]), 'spiffe://partner.test': spiffeBundle([federated]) });
    await eventually(async () => (await rawPost(`${gw.url}/mcp`, { authorization: `Bearer ${old}` })).status === 401, 5_000, 'removed key refused');
  });

  it('re-opens the stream when the agent ends it, and keeps the last bundle meanwhile', async () => {
    const opened = agent.calls.filter((c) => c.method === 'FetchJWTBundles').length;
    agent.endStreams();
    expect((await rawPost(`${gw.url}/mcp`, { authorization: `Bearer ${callerToken(key2, 'spiffe://wl.test/meanwhile')}` })).status).toBe(200);
    await eventually(() => agent.calls.filter((c) => c.method === 'FetchJWTBundles').length > opened, 5_000, 'stream re-opened');
    agent.publish({ 'spiffe://wl.test': spiffeBundle([key1]), 'spiffe://partner.test': spiffeBundle([federated]) });
    await eventually(async () => (await rawPost(`${gw.url}/mcp`, { authorization: `Bearer ${callerToken(key1, 'spiffe://wl.test/after')}` })).status === 200, 5_000, 'bundle after reconnect');
  });
});

describe("Tollgate's own JWT-SVID towards upstreams", () => {
  it('presents an SVID for the backend audience upstream, never the caller token, and renews it before expiry', async () => {
    const caller = callerToken(key1, 'spiffe://wl.test/caller-upstream');
    const client = await connectClient(`${gw.url}/mcp`, { headers: { authorization: `Bearer ${caller}` } });
    const sum = await client.callTool({ name: 'fixture__add', arguments: { a: 1, b: 1 } });
    expect(sum.content).toEqual([{ type: 'text', text: '2' }]);

    const seen = fixture.authorizations.filter((a): a is string => a !== undefined);
    expect(seen.length).toBeGreaterThan(0);
    expect(fixture.authorizations.every((a) => a !== undefined && a.startsWith('Bearer '))).toBe(true);
    expect(seen.some((a) => a.includes(caller))).toBe(false);
    const first = seen.at(-1)!.slice('Bearer '.length);
    expect(agent.svids).toContain(first);
    expect(payload(first)).toMatchObject({ sub: 'spiffe://wl.test/tollgate', aud: [UPSTREAM_AUD] });
    expect(agent.calls.find((c) => c.method === 'FetchJWTSVID' && c.audience?.[0] === UPSTREAM_AUD)).toBeDefined();

    // 4 s SVIDs renewed at half their lifetime: a new one is fetched and used without any failed call.
    const fetched = agent.svids.length;
    await eventually(() => agent.svids.length > fetched, 6_000, 'SVID renewal');
    await eventually(async () => {
      await client.callTool({ name: 'fixture__echo', arguments: { message: 'x' } });
      const last = fixture.authorizations.at(-1)!.slice('Bearer '.length);
      return last !== first && agent.svids.includes(last);
    }, 6_000, 'renewed SVID used upstream');
    await client.close();
  });
});
