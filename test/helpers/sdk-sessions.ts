/**
 * Serves official-SDK MCP servers over Streamable HTTP, one SDK transport (and one Server) per session: the
 * plumbing shared by the test upstreams.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport, type EventStore } from '@modelcontextprotocol/sdk/server/streamableHttp.js';

export interface SdkSessions {
  readonly url: string;
  readonly port: number;
  /** Live sessions. */
  sessions(): number;
  /** Ends every session, the server staying up (as a restart forgets them): their next request gets 404. */
  drop(): Promise<void>;
  close(): Promise<void>;
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  return text === '' ? undefined : JSON.parse(text);
}

export async function serveSdkSessions(
  makeServer: () => Server,
  opts: {
    json?: boolean;
    onRequest?: (req: IncomingMessage) => void;
    /** Resumability: a store per session (the SDK then sends priming events and replays on Last-Event-ID). */
    eventStore?: () => EventStore;
    /** `retry` (ms) the SDK sends on its SSE streams. */
    retryInterval?: number;
    /** Port to listen on (default: any free one). */
    port?: number;
  } = {},
): Promise<SdkSessions> {
  const transports = new Map<string, StreamableHTTPServerTransport>();
  const http = createServer((req, res) => {
    opts.onRequest?.(req);
    void (async () => {
      const sid = req.headers['mcp-session-id'];
      let transport = typeof sid === 'string' ? transports.get(sid) : undefined;
      if (req.method === 'POST') {
        const body = await readJson(req);
        if (!transport) {
          if (typeof sid === 'string' || (body as { method?: string } | undefined)?.method !== 'initialize') {
            const status = typeof sid === 'string' ? 404 : 400;
            const error = status === 404 ? { code: -32001, message: 'Session not found' } : { code: -32000, message: 'Bad Request: no valid session' };
            res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id: null, error }));
            return;
          }
          const t: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
            sessionIdGenerator: () => randomUUID(),
            enableJsonResponse: opts.json ?? false,
            ...(opts.eventStore ? { eventStore: opts.eventStore() } : {}),
            ...(opts.retryInterval !== undefined ? { retryInterval: opts.retryInterval } : {}),
            onsessioninitialized: (id) => {
              transports.set(id, t);
            },
          });
          t.onclose = () => {
            if (t.sessionId) transports.delete(t.sessionId);
          };
          transport = t;
          await makeServer().connect(t);
        }
        await transport.handleRequest(req, res, body);
        return;
      }
      if (!transport) {
        res.writeHead(typeof sid === 'string' ? 404 : 400).end();
        return;
      }
      await transport.handleRequest(req, res);
    })().catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(err));
    });
  });
  await new Promise<void>((r) => http.listen(opts.port ?? 0, '127.0.0.1', r));
  const port = (http.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    port,
    sessions: () => transports.size,
    drop: async () => {
      const all = [...transports.values()];
      transports.clear();
      await Promise.allSettled(all.map((t) => t.close()));
    },
    close: async () => {
      await Promise.allSettled([...transports.values()].map((t) => t.close()));
      http.closeAllConnections();
      await new Promise<void>((r) => http.close(() => r()));
    },
  };
}
