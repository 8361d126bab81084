/**
 * OpenAPI as an upstream: a small HTTP API served by the test, described by an OpenAPI 3.1 document the gateway
 * fetches, becomes callable MCP tools (path, query, header parameters and a JSON body). And virtual servers: a
 * route exposes a curated, renamed subset of tools from several backends under /mcp/<name>.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { connectClient, mcpBackend, route, startTestGateway, type TestGateway } from '../helpers/gateway.ts';

let api: Server;
let apiUrl: string;
const seen: Array<{ method: string; url: string; auth: string | undefined; body: string }> = [];
let fixture: FixtureServer;
let gw: TestGateway;
let client: Client;

const pets = new Map<number, { id: number; name: string; tag?: string }>([[1, { id: 1, name: 'Rex', tag: 'dog' }]]);

function openapiDoc(base: string): unknown {
  return {
    openapi: '3.1.0',
    info: { title: 'Pet Store', version: '1.2.3' },
    servers: [{ url: `${base}/v1` }],
    paths: {
      '/pets': {
        get: {
          operationId: 'listPets',
          summary: 'List pets',
          parameters: [{ name: 'tag', in: 'query', schema: { type: 'string' } }, { name: 'limit', in: 'query', schema: { type: 'integer' } }],
        },
        post: {
          operationId: 'createPet',
          summary: 'Create a pet',
          requestBody: { required: true, content: { 'application/json': { schema: { $ref: '#/components/schemas/NewPet' } } } },
        },
      },
      '/pets/{petId}': {
        parameters: [{ name: 'petId', in: 'path', required: true, schema: { type: 'integer' } }],
        get: { operationId: 'getPet', summary: 'One pet', parameters: [{ name: 'X-Trace', in: 'header', schema: { type: 'string' } }] },
        delete: { summary: 'Delete a pet' },
      },
    },
    components: { schemas: { NewPet: { type: 'object', properties: { name: { type: 'string' }, tag: { type: 'string' } }, required: ['name'] } } },
  };
}

function text(r: unknown): string {
  return (((r as { content?: { text?: string }[] }).content) ?? []).map((c) => c.text ?? '').join('');
}

beforeAll(async () => {
  api = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      seen.push({ method: req.method!, url: req.url!, auth: req.headers.authorization, body });
      const u = new URL(req.url!, 'http://x');
      const json = (status: number, v: unknown): void => {
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(v));
      };
      if (u.pathname === '/openapi.json') return json(200, openapiDoc(apiUrl));
      if (u.pathname === '/v1/pets' && req.method === 'GET') {
        const tag = u.searchParams.get('tag');
        return json(200, [...pets.values()].filter((p) => !tag || p.tag === tag));
      }
      if (u.pathname === '/v1/pets' && req.method === 'POST') {
        const p = JSON.parse(body) as { name: string; tag?: string };
        const id = pets.size + 1;
        pets.set(id, { id, ...p });
        return json(201, pets.get(id));
      }
      const m = /^\/v1\/pets\/(\d+)$/.exec(u.pathname);
      if (m && req.method === 'GET') {
        const p = pets.get(Number(m[1]));
        return p ? json(200, { ...p, trace: req.headers['x-trace'] ?? null }) : json(404, { error: 'no such pet' });
      }
      json(404, { error: 'not found' });
    });
  });
  await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
  apiUrl = `http://127.0.0.1:${(api.address() as AddressInfo).port}`;
  fixture = await startHttpMcpServer({ name: 'fixture' });
  process.env.TOLLGATE_TEST_PETS_TOKEN = 'Bearer gateway-own-credential';
  gw = await startTestGateway({
    'mcp.yaml':
      mcpBackend('pets', { transport: 'openapi', openapi: { url: `${apiUrl}/openapi.json`, servers: [`${apiUrl}/v1`] }, headers: [{ name: 'authorization', valueFrom: { env: 'TOLLGATE_TEST_PETS_TOKEN' } }] }) +
      mcpBackend('fixture', { url: fixture.url }) +
      route('mcp', '/mcp', ['pets', 'fixture'], {
        mcp: {
          virtualServers: [
            {
              name: 'curated',
              description: 'Just what the agent needs',
              tools: [
                { backend: 'pets', tool: 'listPets', name: 'find_pets', description: 'Find pets by tag' },
                { backend: 'fixture', tool: 'add' },
              ],
            },
          ],
        },
      }),
  });
  client = await connectClient(`${gw.url}/mcp`);
});

afterAll(async () => {
  await client?.close();
  await gw?.stop();
  await fixture?.close();
  api.closeAllConnections();
  await new Promise<void>((r) => api.close(() => r()));
});

describe('OpenAPI upstream', () => {
  it('lists one tool per operation, with input schemas from parameters and the request body', async () => {
    const tools = (await client.listTools()).tools.filter((t) => t.name.startsWith('pets__'));
    const byName = new Map(tools.map((t) => [t.name, t]));
    expect([...byName.keys()].sort()).toEqual(['pets__createPet', 'pets__delete_pets_petId', 'pets__getPet', 'pets__listPets']);
    expect(byName.get('pets__getPet')!.inputSchema).toMatchObject({ properties: { petId: { type: 'integer' }, 'X-Trace': { type: 'string' } }, required: ['petId'] });
    expect(byName.get('pets__createPet')!.inputSchema).toMatchObject({ properties: { body: { properties: { name: { type: 'string' } }, required: ['name'] } }, required: ['body'] });
    expect(byName.get('pets__listPets')!.annotations?.readOnlyHint).toBe(true);
  });

  it('turns calls into HTTP requests with the gateway\'s own credentials', async () => {
    const list = await client.callTool({ name: 'pets__listPets', arguments: { tag: 'dog' } });
    expect(JSON.parse(text(list))).toEqual([{ id: 1, name: 'Rex', tag: 'dog' }]);
    expect(seen.at(-1)).toMatchObject({ method: 'GET', url: '/v1/pets?tag=dog', auth: 'Bearer gateway-own-credential' });

    const created = await client.callTool({ name: 'pets__createPet', arguments: { body: { name: 'Tom', tag: 'cat' } } });
    expect(JSON.parse(text(created))).toEqual({ id: 2, name: 'Tom', tag: 'cat' });
    expect(seen.at(-1)).toMatchObject({ method: 'POST', url: '/v1/pets', body: '{"name":"Tom","tag":"cat"}' });

    const one = await client.callTool({ name: 'pets__getPet', arguments: { petId: 2, 'X-Trace': 't-1' } });
    expect(JSON.parse(text(one))).toEqual({ id: 2, name: 'Tom', tag: 'cat', trace: 't-1' });
  });

  it('reports HTTP errors as tool errors and missing arguments clearly', async () => {
    const missing = await client.callTool({ name: 'pets__getPet', arguments: { petId: 99 } });
    expect(missing.isError).toBe(true);
    expect(text(missing)).toContain('no such pet');
    const noArg = await client.callTool({ name: 'pets__getPet', arguments: {} });
    expect(noArg.isError).toBe(true);
    expect(text(noArg)).toContain('petId');
  });
});

describe('virtual servers', () => {
  it('exposes the curated tools under their public names and descriptions', async () => {
    const v = await connectClient(`${gw.url}/mcp/curated`);
    try {
      expect(v.getServerVersion()?.name).toBe('curated');
      const tools = (await v.listTools()).tools;
      expect(tools.map((t) => t.name).sort()).toEqual(['add', 'find_pets']);
      expect(tools.find((t) => t.name === 'find_pets')!.description).toBe('Find pets by tag');
      expect(tools.find((t) => t.name === 'add')!.description).toBe('Adds two numbers');
      expect(JSON.parse(text(await v.callTool({ name: 'find_pets', arguments: { tag: 'cat' } })))).toEqual([{ id: 2, name: 'Tom', tag: 'cat' }]);
      expect(text(await v.callTool({ name: 'add', arguments: { a: 1, b: 1 } }))).toBe('2');
      // Tools outside the selection do not exist here, under any name.
      await expect(v.callTool({ name: 'createPet', arguments: { body: { name: 'x' } } })).rejects.toMatchObject({ code: -32602 });
      await expect(v.callTool({ name: 'pets__createPet', arguments: { body: { name: 'x' } } })).rejects.toMatchObject({ code: -32602 });
      await expect(v.callTool({ name: 'echo', arguments: {} })).rejects.toMatchObject({ code: -32602 });
    } finally {
      await v.close();
    }
  });
});
