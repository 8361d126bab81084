/**
 * Faults of a SPIFFE Workload API endpoint that a real SPIRE agent cannot be made to show, against the hand-written
 * gRPC endpoint (test/helpers/workload-api-server.ts). Everything a real agent can show (SVIDs, bundles, federation,
 * rotation, restarts, Tollgate's own SVIDs and their renewal, the security header) is tested against spire-agent
 * in identity-spire-agent.test.ts. Here:
 * - the agent ends the FetchJWTBundles stream cleanly while it stays up (a real agent only ends it by exiting);
 * - a bundle that is not JSON (a real agent marshals its own bundles);
 * - a stream message that leaves out a configured trust domain (a real agent always sends its own trust domain);
 * in each case the gateway keeps the last good bundle of the affected trust domain and still applies good news.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { workloadTarget } from '../../src/guards/identity/workload-api.ts';
import { eventually, mcpBackend, route, startTestGateway, type TestGateway, withIdentity } from '../helpers/gateway.ts';
import { newSigner, nowS, signJwt, spiffeBundle } from '../helpers/jwt.ts';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { rawPost } from '../helpers/raw-http.ts';
import { startWorkloadApiServer, type WorkloadApiServer } from '../helpers/workload-api-server.ts';

const AUD = 'https://gw.test';
const key1 = newSigner('ES256', 'wl-1');
const key2 = newSigner('ES256', 'wl-2');
const federated = newSigner('ES256', 'fed-1');
const federated2 = newSigner('ES256', 'fed-2');

let agent: WorkloadApiServer;
let fixture: FixtureServer;
let gw: TestGateway;

const token = (signer = key1, sub = 'spiffe://wl.test/caller'): string => signJwt(signer, { sub, aud: `${AUD}/mcp`, exp: nowS() + 300 });
const status = async (t: string): Promise<number> => (await rawPost(`${gw.url}/mcp`, { authorization: `Bearer ${t}` })).status;
/** The key source of a trust domain (its lastError is the refusal signal). */
const source = (td: string) => gw.services.identity.authority!.issuers.trustDomains.get(td)!.source;

beforeAll(async () => {
  agent = await startWorkloadApiServer();
  agent.publish({ 'spiffe://wl.test': spiffeBundle([key1]), 'spiffe://partner.test': spiffeBundle([federated]) });
  fixture = await startHttpMcpServer({ name: 'fixture' });
  gw = await startTestGateway(
    { 'mcp.yaml': mcpBackend('fixture', { url: fixture.url }) + route('mcp', '/mcp', ['fixture']) },
    {
      gatewayYaml: withIdentity(`    audiences: [${AUD}]
    workloadApi: { socket: "${agent.address}" }
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

describe('Workload API address', () => {
  it('parses SPIFFE_ENDPOINT_SOCKET forms', () => {
    expect(workloadTarget('unix:///run/spire/agent.sock')).toBe('unix:///run/spire/agent.sock');
    expect(workloadTarget('unix:/run/spire/agent.sock')).toBe('unix:///run/spire/agent.sock');
    expect(workloadTarget('/run/spire/agent.sock')).toBe('unix:///run/spire/agent.sock');
    expect(workloadTarget('tcp://127.0.0.1:8081')).toBe('ipv4:127.0.0.1:8081');
    expect(() => workloadTarget('unix://relative/agent.sock')).toThrow();
    expect(() => workloadTarget('tcp://agent.local:8081')).toThrow();
    expect(() => workloadTarget('http://127.0.0.1:8081')).toThrow();
  });
});

describe('faults only a hand-written endpoint shows', () => {
  it('re-opens the stream the agent ended cleanly, keeping the last bundle meanwhile', async () => {
    expect(await status(token())).toBe(200);
    const opened = agent.calls.filter((c) => c.method === 'FetchJWTBundles').length;
    agent.endStreams();
    expect(await status(token(key1, 'spiffe://wl.test/meanwhile'))).toBe(200);
    await eventually(() => agent.calls.filter((c) => c.method === 'FetchJWTBundles').length > opened, 5_000, 'stream re-opened');
    expect(agent.calls.every((c) => c.secured)).toBe(true);
    agent.publish({ 'spiffe://wl.test': spiffeBundle([key1, key2]), 'spiffe://partner.test': spiffeBundle([federated]) });
    await eventually(async () => (await status(token(key2, 'spiffe://wl.test/after'))) === 200, 5_000, 'a bundle sent after the reconnect');
  });

  it('keeps the last good bundle of a trust domain whose document is not JSON, and applies the others', async () => {
    expect(source('wl.test').lastError).toBeUndefined();
    agent.publishRaw({ 'spiffe://wl.test': Buffer.from('{ not json'), 'spiffe://partner.test': Buffer.from(JSON.stringify(spiffeBundle([federated, federated2]))) });
    // partner.test's good news is applied...
    await eventually(async () => (await status(token(federated2, 'spiffe://partner.test/agent'))) === 200, 5_000, "partner.test's new key");
    // ...and wl.test keeps both keys it had.
    expect(await status(token(key1, 'spiffe://wl.test/still'))).toBe(200);
    expect(await status(token(key2, 'spiffe://wl.test/still'))).toBe(200);
  });

  it('keeps the last good bundle of a trust domain a stream message leaves out, and says so', async () => {
    agent.publish({ 'spiffe://wl.test': spiffeBundle([key1, key2]), 'spiffe://partner.test': spiffeBundle([federated, federated2]) });
    await eventually(() => source('wl.test').lastError === undefined, 5_000, 'a complete message to clear the error');
    agent.publish({ 'spiffe://partner.test': spiffeBundle([federated2]) });
    await eventually(() => /sent no bundle for wl\.test/.test(source('wl.test').lastError ?? ''), 5_000, 'wl.test to be reported missing');
    await eventually(async () => (await status(token(federated, 'spiffe://partner.test/agent'))) === 401, 5_000, "partner.test's removed key");
    expect(await status(token(key1, 'spiffe://wl.test/kept'))).toBe(200);
    expect(await status(token(key2, 'spiffe://wl.test/kept'))).toBe(200);
  });
});
