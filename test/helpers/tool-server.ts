/**
 * A real SDK MCP server (Streamable HTTP, stateless: a fresh server per request) exposing given tools. Each tool
 * echoes the arguments it received, so a test sees exactly what reached the upstream (and that a refused call
 * never did: `calls` records every invocation).
 */
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';

export interface ToolServer {
  readonly url: string;
  /** Every tool invocation that reached this server: [tool, arguments]. */
  readonly calls: Array<[string, Record<string, unknown>]>;
  close(): Promise<void>;
}

/** `tools` maps a tool name to the argument names it takes (all strings). */
export async function startToolServer(name: string, tools: Record<string, string[]>): Promise<ToolServer> {
  const calls: ToolServer['calls'] = [];
  const makeServer = (): McpServer => {
    const server = new McpServer({ name, version: '1.0.0' });
    for (const [tool, args] of Object.entries(tools)) {
      const shape = Object.fromEntries(args.map((a) => [a, z.unknown().optional()]));
      server.registerTool(tool, { description: `${tool} of ${name}`, inputSchema: shape }, (received) => {
        calls.push([tool, received as Record<string, unknown>]);
        return { content: [{ type: 'text', text: `${name}/${tool} ${JSON.stringify(received)}` }] };
      });
    }
    return server;
  };
  const http: HttpServer = createServer((req, res) => {
    void (async () => {
      if (req.method !== 'POST') {
        res.writeHead(405).end();
        return;
      }
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
      const server = makeServer();
      res.on('close', () => {
        void transport.close();
        void server.close();
      });
      await server.connect(transport);
      await transport.handleRequest(req, res, JSON.parse(Buffer.concat(chunks).toString('utf8')));
    })().catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(err));
    });
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`,
    calls,
    close: async () => {
      http.closeAllConnections();
      await new Promise<void>((r) => http.close(() => r()));
    },
  };
}
