/**
 * A real 2026-07-28 (stateless) MCP server built with the official v2 SDK (`createMcpHandler`, modern-only: it
 * refuses initialize), for era-translation tests. `confirm` asks the client through a multi round-trip request.
 */
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { toNodeHandler } from '@modelcontextprotocol/node';
import { McpServer, acceptedContent, createMcpHandler, fromJsonSchema, inputRequired } from '@modelcontextprotocol/server';
import { z } from 'zod';

export interface ModernServer {
  readonly url: string;
  /** Requests seen, by method (proves what reached the upstream, and in which era). */
  readonly seen: { method: string; version: string | undefined; mcpName: string | undefined }[];
  /** Publishes notifications/tools/list_changed to every open subscriptions/listen stream. */
  toolsChanged(): void;
  close(): Promise<void>;
}

function factory(): McpServer {
  // tools/list is public and cacheable for a minute: a shared gateway may cache it (and only such lists).
  const server = new McpServer(
    { name: 'modern-fixture', version: '2.0.0' },
    { capabilities: { tools: { listChanged: true } }, cacheHints: { 'tools/list': { ttlMs: 60_000, cacheScope: 'public' } } },
  );
  server.registerTool(
    'region_query',
    {
      description: 'A query routed by region (the region is mirrored in the Mcp-Param-Region header)',
      inputSchema: fromJsonSchema<{ region: string; query: string }>({
        type: 'object',
        properties: { region: { type: 'string', 'x-mcp-header': 'Region' }, query: { type: 'string' } },
        required: ['region', 'query'],
      } as Parameters<typeof fromJsonSchema>[0]),
    },
    async ({ region, query }) => ({ content: [{ type: 'text', text: `${region}: ${query}` }] }),
  );
  // Tools whose x-mcp-header annotations break the rules (streamable-http.mdx, Schema Extension): a client, and so
  // the gateway, must leave them out of tools/list. One valid nested annotation for contrast.
  const annotated = (name: string, schema: Record<string, unknown>): void => {
    server.registerTool(name, { description: `x-mcp-header case ${name}`, inputSchema: fromJsonSchema<Record<string, unknown>>({ type: 'object', ...schema } as Parameters<typeof fromJsonSchema>[0]) }, async () => ({
      content: [{ type: 'text', text: `${name} ran` }],
    }));
  };
  annotated('bad_header_number', { properties: { n: { type: 'number', 'x-mcp-header': 'N' } } });
  annotated('bad_header_token', { properties: { s: { type: 'string', 'x-mcp-header': 'Bad Header' } } });
  annotated('bad_header_empty', { properties: { s: { type: 'string', 'x-mcp-header': '' } } });
  annotated('bad_header_duplicate', { properties: { a: { type: 'string', 'x-mcp-header': 'Dup' }, b: { type: 'string', 'x-mcp-header': 'dup' } } });
  annotated('bad_header_in_items', { properties: { list: { type: 'array', items: { type: 'string', 'x-mcp-header': 'Item' } } } });
  annotated('bad_header_in_oneof', { properties: { v: { oneOf: [{ type: 'string', 'x-mcp-header': 'V' }] } } });
  annotated('good_header_nested', { properties: { outer: { type: 'object', properties: { id: { type: 'integer', 'x-mcp-header': 'Id' } } } } });
  server.registerTool('add', { description: 'Adds two numbers', inputSchema: z.object({ a: z.number(), b: z.number() }) }, async ({ a, b }) => ({
    content: [{ type: 'text', text: String(a + b) }],
  }));
  server.registerTool('echo', { description: 'Echoes', inputSchema: z.object({ message: z.string() }) }, async ({ message }) => ({
    content: [{ type: 'text', text: `modern: ${message}` }],
  }));
  server.registerTool('confirm', { description: 'Asks the user to confirm (multi round-trip)', inputSchema: z.object({ action: z.string() }) }, async ({ action }, ctx) => {
    const schema = z.object({ confirm: z.boolean() });
    const answer = acceptedContent(ctx.mcpReq.inputResponses, 'confirm', schema);
    if (answer === undefined) {
      return inputRequired({ inputRequests: { confirm: inputRequired.elicit({ message: `Really ${action}?`, requestedSchema: schema }) }, requestState: `pending:${action}` });
    }
    return { content: [{ type: 'text', text: answer.confirm ? `${action}: confirmed` : `${action}: declined` }] };
  });
  return server;
}

export async function startModernServer(): Promise<ModernServer> {
  const mcp = createMcpHandler(() => factory(), { legacy: 'reject' });
  const handler = toNodeHandler(mcp);
  const seen: ModernServer['seen'] = [];
  const http: HttpServer = createServer((req, res) => {
    seen.push({
      method: String(req.headers['mcp-method'] ?? req.method),
      version: req.headers['mcp-protocol-version'] as string | undefined,
      mcpName: req.headers['mcp-name'] as string | undefined,
    });
    void (handler as (rq: typeof req, rs: typeof res) => Promise<void>)(req, res);
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  const port = (http.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    seen,
    toolsChanged: () => mcp.notify.toolsChanged(),
    close: async () => {
      await mcp.close();
      http.closeAllConnections();
      await new Promise<void>((r) => http.close(() => r()));
    },
  };
}
