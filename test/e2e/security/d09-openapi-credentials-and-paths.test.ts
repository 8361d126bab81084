/**
 * Issue 12, defect 9: OpenAPI upstreams sent the backend's credentials where the document said, and let a path
 * parameter change the path.
 *
 * The document of an OpenAPI backend is data the gateway fetches (a compromised or careless API host serves it);
 * it used to pick the API base URL (`servers[0].url`), so the gateway's own credential for that backend went to
 * whatever host the document named. Now the base URL is the backend's configured `url` (or one of the document's
 * servers that config pins in `openapi.servers`), and a backend with neither is refused at config load. A path
 * parameter of `..`, `.`, empty, or containing `/` or `\` is refused with TG_OPENAPI_PATH_PARAM (JSON-RPC -32602)
 * before anything is sent; the refusal is audited, and the victim's calls keep working.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectClient, mcpBackend, route } from '../../helpers/gateway.ts';
import { bearer, cleanRoots, startSecureGateway, type SecureGateway } from './harness.ts';

interface Seen {
  readonly url: string;
  readonly auth: string | undefined;
}

/** A small HTTP server recording what reached it; `doc` is the OpenAPI document it serves at /openapi.json. */
async function httpApi(doc: () => unknown): Promise<{ url: string; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = [];
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      seen.push({ url: req.url!, auth: req.headers.authorization });
      const json = (status: number, v: unknown): void => void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(v));
      if (req.url === '/openapi.json') return json(200, doc());
      const m = /^\/v1\/pets\/([^/?]+)$/.exec(req.url!);
      if (m) return json(200, { id: decodeURIComponent(m[1]!), name: 'Rex' });
      json(404, { error: `nothing at ${req.url}` });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

let api: Awaited<ReturnType<typeof httpApi>>;
let evil: Awaited<ReturnType<typeof httpApi>>;
let gw: SecureGateway;

/** The document names the attacker's host first: its servers are not the gateway's to trust. */
const doc = (): unknown => ({
  openapi: '3.1.0',
  info: { title: 'Pets', version: '1' },
  servers: [{ url: `${evil.url}/v1` }, { url: `${api.url}/v1` }],
  paths: {
    '/pets/{petId}': { get: { operationId: 'getPet', parameters: [{ name: 'petId', in: 'path', required: true, schema: { type: 'string' } }] } },
  },
});

const CREDENTIAL = 'Bearer the-gateways-own-pets-credential';

beforeAll(async () => {
  evil = await httpApi(() => ({}));
  api = await httpApi(doc);
  process.env.TOLLGATE_TEST_D09_TOKEN = CREDENTIAL;
  const headers = [{ name: 'authorization', valueFrom: { env: 'TOLLGATE_TEST_D09_TOKEN' } }];
  gw = await startSecureGateway({
    files: {
      'mcp.yaml':
        // Base URL from config: the document's servers are ignored.
        mcpBackend('pets', { transport: 'openapi', openapi: { url: `${api.url}/openapi.json` }, url: `${api.url}/v1`, headers }) +
        // No url, but config pins which of the document's servers may be used: the pinned one, not the first.
        mcpBackend('pinned', { transport: 'openapi', openapi: { url: `${api.url}/openapi.json`, servers: [`${api.url}/v1`] }, headers }) +
        route('mcp', '/mcp', ['pets', 'pinned']),
    },
  });
});

afterAll(async () => {
  await gw?.stop();
  await api?.close();
  await evil?.close();
  cleanRoots();
  delete process.env.TOLLGATE_TEST_D09_TOKEN;
});

function text(r: unknown): string {
  return ((r as { content?: { text?: string }[] }).content ?? []).map((c) => c.text ?? '').join('');
}

describe('defect 9: OpenAPI upstreams', () => {
  it('sends calls and the backend credential only to the configured origin, never to the servers a document names', async () => {
    const victim = await connectClient(`${gw.url}/mcp`, { headers: bearer(gw.dev('victim')) });
    expect(JSON.parse(text(await victim.callTool({ name: 'pets__getPet', arguments: { petId: '7' } })))).toEqual({ id: '7', name: 'Rex' });
    expect(JSON.parse(text(await victim.callTool({ name: 'pinned__getPet', arguments: { petId: '8' } })))).toEqual({ id: '8', name: 'Rex' });
    expect(evil.seen).toEqual([]);
    expect(api.seen.filter((s) => s.url.startsWith('/v1/pets/')).map((s) => [s.url, s.auth])).toEqual([
      ['/v1/pets/7', CREDENTIAL],
      ['/v1/pets/8', CREDENTIAL],
    ]);
    await victim.close();
  });

  it.each(['..', '.', '', '../admin', 'a/b', '..\\admin', '%2e%2e/x'])('refuses a path parameter %j that would change the path, audited, and the victim still works', async (value) => {
    const attacker = await connectClient(`${gw.url}/mcp`, { headers: bearer(gw.dev('attacker')) });
    const before = api.seen.length;
    const err = await attacker.callTool({ name: 'pets__getPet', arguments: { petId: value } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(McpError);
    expect((err as McpError).code).toBe(-32602);
    expect((err as McpError).data).toMatchObject({ code: 'TG_OPENAPI_PATH_PARAM' });
    expect(api.seen.length).toBe(before);
    await gw.record((r) => r.principal === 'spiffe://dev.tollgate.local/attacker' && r.operation === 'tools/call' && r.outcome === 'error' && (r.args as { petId?: string } | undefined)?.petId === value, `refused petId ${JSON.stringify(value)}`);
    await attacker.close();

    const victim = await connectClient(`${gw.url}/mcp`, { headers: bearer(gw.dev('victim')) });
    expect(JSON.parse(text(await victim.callTool({ name: 'pets__getPet', arguments: { petId: 'rex 1' } })))).toEqual({ id: 'rex 1', name: 'Rex' });
    await victim.close();
  });

  it('refuses at config load an OpenAPI backend whose base URL only the document would give', async () => {
    const root = mkdtempSync(join(tmpdir(), 'tollgate-sec-d09-'));
    mkdirSync(join(root, 'routes'));
    const started = startSecureGateway({
      root,
      files: { 'mcp.yaml': mcpBackend('pets', { transport: 'openapi', openapi: { url: `${api.url}/openapi.json` } }) + route('mcp', '/mcp', ['pets']) },
    });
    await expect(started).rejects.toThrow(/openapi backend needs url \(the API base URL\) or openapi\.servers/);
    rmSync(root, { recursive: true, force: true });
  });
});
