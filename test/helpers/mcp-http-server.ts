/**
 * A real MCP server over Streamable HTTP built with the official SDK (low-level Server, so tools/list can paginate),
 * one SDK transport per session. Used as an upstream behind the gateway and as the direct baseline in benches.
 */
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { serveSdkSessions } from './sdk-sessions.ts';
import {
  CallToolRequestSchema,
  ElicitResultSchema,
  GetPromptRequestSchema,
  ListPromptsRequestSchema,
  ListResourcesRequestSchema,
  ListToolsRequestSchema,
  ReadResourceRequestSchema,
  type Tool,
} from '@modelcontextprotocol/sdk/types.js';

export interface FixtureOptions {
  /** Server name reported in initialize. */
  name?: string;
  /** Number of generated `tool-N` tools besides the built-in ones. */
  extraTools?: number;
  /** tools/list page size (pagination); 0 = no pagination. */
  pageSize?: number;
  /** JSON responses instead of SSE for POSTs. */
  json?: boolean;
  /** Adds `count`: returns how many times it was called in this upstream session (state an upstream keeps per session). */
  counter?: boolean;
  /**
   * Adds `ask_twice`: asks the client two elicitations one after the other during the call (two round trips), and a
   * prompt of the same name (a requestState issued for the tool must not be taken by prompts/get of that name).
   */
  asks?: boolean;
}

export interface FixtureServer {
  readonly url: string;
  readonly port: number;
  /** Requests whose handler saw its AbortSignal fire (cancellation reached the upstream). */
  readonly cancelled: string[];
  /** tools/list requests this server answered (every page counts). */
  readonly lists: { count: number };
  /** Last `_meta` seen per tool call (trace context propagation checks). */
  readonly metas: Record<string, unknown>[];
  /** The Authorization header of every request this server received (undefined: none). */
  readonly authorizations: Array<string | undefined>;
  /** Live sessions on this server. */
  sessions(): number;
  /** Adds a tool and announces notifications/tools/list_changed to every session. */
  addTool(name: string): Promise<void>;
  close(): Promise<void>;
}

const BUILTIN: Tool[] = [
  { name: 'add', description: 'Adds two numbers', inputSchema: { type: 'object', properties: { a: { type: 'number' }, b: { type: 'number' } }, required: ['a', 'b'] } },
  { name: 'echo', description: 'Echoes a message', inputSchema: { type: 'object', properties: { message: { type: 'string' } } } },
  { name: 'big', description: 'Returns `kb` kilobytes of text', inputSchema: { type: 'object', properties: { kb: { type: 'number' } } } },
  { name: 'slow', description: 'Reports progress every 100 ms for `steps` steps; honours cancellation', inputSchema: { type: 'object', properties: { steps: { type: 'number' } } } },
];

export async function startHttpMcpServer(opts: FixtureOptions = {}): Promise<FixtureServer> {
  const name = opts.name ?? 'fixture';
  const tools: Tool[] = [...BUILTIN];
  if (opts.counter) tools.push({ name: 'count', description: 'Counts its calls in this session', inputSchema: { type: 'object', properties: {} } });
  if (opts.asks) tools.push({ name: 'ask_twice', description: 'Asks the client twice, one after the other', inputSchema: { type: 'object', properties: {} } });
  for (let i = 0; i < (opts.extraTools ?? 0); i++) {
    tools.push({ name: `tool-${i}`, description: `Generated tool ${i}`, inputSchema: { type: 'object', properties: {} } });
  }
  const pageSize = opts.pageSize ?? 0;
  const cancelled: string[] = [];
  const lists = { count: 0 };
  const metas: Record<string, unknown>[] = [];
  const servers = new Set<Server>();

  const makeServer = (): Server => {
    let count = 0;
    const server = new Server(
      { name, version: '1.0.0' },
      { capabilities: { tools: { listChanged: true }, resources: {}, prompts: {} }, instructions: `${name} fixture` },
    );
    server.setRequestHandler(ListToolsRequestSchema, (req) => {
      lists.count++;
      if (pageSize === 0) return { tools };
      const start = req.params?.cursor ? Number(req.params.cursor) : 0;
      const page = tools.slice(start, start + pageSize);
      const next = start + pageSize < tools.length ? String(start + pageSize) : undefined;
      return next === undefined ? { tools: page } : { tools: page, nextCursor: next };
    });
    server.setRequestHandler(CallToolRequestSchema, async (req, extra) => {
      const args = (req.params.arguments ?? {}) as Record<string, unknown>;
      metas.push({ tool: req.params.name, ...(req.params._meta ?? {}) });
      if (opts.counter && req.params.name === 'count') return { content: [{ type: 'text', text: String(++count) }] };
      if (opts.asks && req.params.name === 'ask_twice') {
        const ask = async (message: string): Promise<string> => {
          const r = await extra.sendRequest(
            { method: 'elicitation/create', params: { message, requestedSchema: { type: 'object', properties: { answer: { type: 'string' } } } } },
            ElicitResultSchema,
          );
          return r.action === 'accept' ? String(r.content?.answer) : r.action;
        };
        const first = await ask('first?');
        const second = await ask('second?');
        return { content: [{ type: 'text', text: `first=${first}; second=${second}` }] };
      }
      switch (req.params.name) {
        case 'add':
          return { content: [{ type: 'text', text: String(Number(args.a) + Number(args.b)) }] };
        case 'echo':
          return { content: [{ type: 'text', text: String(args.message ?? '') }] };
        case 'big':
          return { content: [{ type: 'text', text: 'x'.repeat(Math.round(Number(args.kb ?? 100) * 1024)) }] };
        case 'slow': {
          const steps = Number(args.steps ?? 5);
          const token = req.params._meta?.progressToken;
          for (let i = 1; i <= steps; i++) {
            await new Promise((r) => setTimeout(r, 100));
            if (extra.signal.aborted) {
              cancelled.push(String(extra.requestId));
              throw new Error('cancelled');
            }
            if (token !== undefined) {
              await extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress: i, total: steps } });
            }
          }
          return { content: [{ type: 'text', text: `done after ${steps} steps` }] };
        }
        default:
          if (tools.some((t) => t.name === req.params.name)) return { content: [{ type: 'text', text: `${req.params.name} ok` }] };
          return { content: [{ type: 'text', text: `unknown tool ${req.params.name}` }], isError: true };
      }
    });
    server.setRequestHandler(ListResourcesRequestSchema, () => ({
      resources: [{ uri: 'fixture://doc/1', name: 'doc-1', mimeType: 'text/plain' }],
    }));
    server.setRequestHandler(ReadResourceRequestSchema, (req) => ({
      contents: [{ uri: req.params.uri, mimeType: 'text/plain', text: `content of ${req.params.uri}` }],
    }));
    server.setRequestHandler(ListPromptsRequestSchema, () => ({
      prompts: [
        { name: 'greet', description: 'Greets', arguments: [{ name: 'who', required: true }] },
        ...(opts.asks ? [{ name: 'ask_twice', description: 'A prompt named like the tool' }] : []),
      ],
    }));
    server.setRequestHandler(GetPromptRequestSchema, (req) => ({
      messages: [{ role: 'user', content: { type: 'text', text: `Hello ${req.params.arguments?.who ?? 'nobody'}` } }],
    }));
    servers.add(server);
    return server;
  };

  const authorizations: Array<string | undefined> = [];
  const served = await serveSdkSessions(makeServer, { json: opts.json ?? false, onRequest: (req) => authorizations.push(req.headers.authorization) });
  const port = served.port;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    port,
    cancelled,
    lists,
    metas,
    authorizations,
    sessions: served.sessions,
    addTool: async (toolName) => {
      tools.push({ name: toolName, description: 'added at runtime', inputSchema: { type: 'object', properties: {} } });
      await Promise.all([...servers].map((s) => s.sendToolListChanged().catch(() => {})));
    },
    close: served.close,
  };
}
