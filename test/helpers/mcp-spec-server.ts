/**
 * An upstream for the federation spec tests, built with the official SDK (low-level Server, one per session, over
 * Streamable HTTP): every list paginated at its own page size, one tool, prompt and resource URI that every instance
 * shares (so a federating gateway must tell them apart), completions, subscriptions, logging, and tools that send
 * what a conforming SDK server would refuse to (server-to-client requests the client did not declare), so the gateway
 * is seen to refuse them itself. Every request it receives is recorded with its params as they arrived.
 */
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import {
  CallToolRequestSchema,
  CompleteRequestSchema,
  CreateMessageResultSchema,
  ElicitResultSchema,
  GetPromptRequestSchema,
  ListPromptsRequestSchema,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ListToolsRequestSchema,
  ReadResourceRequestSchema,
  SetLevelRequestSchema,
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
  type LoggingLevel,
  type Prompt,
  type Resource,
  type Tool,
} from '@modelcontextprotocol/sdk/types.js';
import { serveSdkSessions } from './sdk-sessions.ts';

export interface SpecServerOptions {
  /** Server name (initialize) and URI scheme of its own resources (`<name>://doc/N`). */
  readonly name: string;
  /** Page size of every list (0: one page). */
  readonly pageSize: number;
  /** Generated tools `tool-N`, prompts `prompt-N` and resources `<name>://doc/N` (N >= 1) besides the fixed ones. */
  readonly extra: number;
  /** Port to listen on (default: any free one). */
  readonly port?: number;
  /** tools/list answers after this long (ms), unless the request is cancelled first. */
  readonly listDelayMs?: number;
}

export interface Received {
  readonly method: string;
  readonly params: Record<string, unknown>;
}

export interface SpecServer {
  readonly url: string;
  readonly name: string;
  /** Every request received (initialize excluded), in order. */
  readonly received: Received[];
  /** Progress the client reported on this server's own requests (sample_progress), and stray progress it got. */
  readonly progress: number[];
  readonly strayProgress: string[];
  /** tools/list requests cancelled before they were answered (their request ids as this server saw them). */
  readonly cancelledLists: string[];
  /** Names, URIs and templates this server lists (its own, unprefixed). */
  readonly tools: string[];
  readonly prompts: string[];
  readonly resources: string[];
  /** URIs subscribed to, per live session. */
  subscribedSessions(uri: string): number;
  /** Sends notifications/resources/updated for `uri` to the sessions that subscribed to it. */
  updated(uri: string): Promise<void>;
  /** Sends notifications/prompts/list_changed to every session. */
  promptsChanged(): Promise<void>;
  /** Forgets every session (as a restart does): the next request of a session gets 404. */
  dropSessions(): Promise<void>;
  close(): Promise<void>;
}

const EMPTY = { type: 'object' as const, properties: {} };
export const LEVELS: readonly LoggingLevel[] = ['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency'];

function page<T>(items: readonly T[], cursor: string | undefined, size: number): { items: T[]; nextCursor?: string } {
  if (size === 0) return { items: [...items] };
  const start = cursor === undefined ? 0 : Number(cursor.replace(/^p/, ''));
  if (!Number.isInteger(start) || start < 0 || start > items.length) throw Object.assign(new Error('Invalid cursor'), { code: -32602 });
  const next = start + size < items.length ? `p${start + size}` : undefined;
  return next === undefined ? { items: items.slice(start, start + size) } : { items: items.slice(start, start + size), nextCursor: next };
}

export async function startSpecServer(opts: SpecServerOptions): Promise<SpecServer> {
  const { name } = opts;
  const tools: Tool[] = [
    { name: 'same', description: 'Every spec server has this tool', inputSchema: EMPTY },
    { name: 'links', description: 'Returns a resource link and an embedded resource', inputSchema: EMPTY },
    { name: 'log', description: 'Logs at every level on the call stream and on the session stream', inputSchema: EMPTY },
    { name: 'sample_raw', description: 'Sends sampling/createMessage whatever the client declared', inputSchema: EMPTY },
    { name: 'elicit_url_raw', description: 'Sends a URL-mode elicitation whatever the client declared', inputSchema: EMPTY },
    { name: 'sample_then_cancel', description: 'Sends sampling/createMessage and cancels it after 300 ms', inputSchema: EMPTY },
    { name: 'sample_who', description: 'Sends sampling/createMessage; returns the answer', inputSchema: EMPTY },
    { name: 'grow', description: 'Adds a tool and says so on the call\'s own stream', inputSchema: EMPTY },
    { name: 'sample_progress', description: 'Sends sampling/createMessage with a progress token', inputSchema: EMPTY },
  ];
  const prompts: Prompt[] = [
    { name: 'same', description: 'Every spec server has this prompt', arguments: [{ name: 'who', required: false }] },
    { name: 'embed', description: 'A message embedding one of this server\'s resources' },
  ];
  const resources: Resource[] = [{ uri: 'shared://readme', name: 'readme', mimeType: 'text/plain' }];
  for (let i = 1; i <= opts.extra; i++) {
    tools.push({ name: `tool-${i}`, description: `Generated tool ${i}`, inputSchema: EMPTY });
    prompts.push({ name: `prompt-${i}`, description: `Generated prompt ${i}` });
    resources.push({ uri: `${name}://doc/${i}`, name: `doc-${i}`, mimeType: 'text/plain' });
  }
  const received: Received[] = [];
  const progress: number[] = [];
  const strayProgress: string[] = [];
  const cancelledLists: string[] = [];
  const live = new Set<{ server: Server; subscribed: Set<string> }>();
  const record = (method: string, params: unknown): void => {
    received.push({ method, params: structuredClone((params ?? {}) as Record<string, unknown>) });
  };

  const makeServer = (): Server => {
    const server = new Server(
      { name, version: '1.0.0' },
      {
        capabilities: { tools: { listChanged: true }, prompts: { listChanged: true }, resources: { subscribe: true, listChanged: true }, logging: {}, completions: {} },
        instructions: `${name} instructions`,
      },
    );
    const self = { server, subscribed: new Set<string>() };
    // The SDK reports progress for a token it never issued as an error.
    server.onerror = (err) => {
      if (/progress/i.test(err.message)) strayProgress.push(err.message);
    };
    live.add(self);
    server.onclose = () => live.delete(self);
    server.setRequestHandler(SetLevelRequestSchema, (req) => {
      record(req.method, req.params);
      return {};
    });
    server.setRequestHandler(ListToolsRequestSchema, async (req, extra) => {
      record(req.method, req.params);
      if (opts.listDelayMs !== undefined) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, opts.listDelayMs);
          extra.signal.addEventListener('abort', () => (clearTimeout(timer), resolve()));
        });
        if (extra.signal.aborted) {
          cancelledLists.push(String(extra.requestId));
          throw new Error('cancelled');
        }
      }
      const p = page(tools, req.params?.cursor, opts.pageSize);
      return { tools: p.items, ...(p.nextCursor !== undefined && { nextCursor: p.nextCursor }), _meta: { 'example.test/list': name } };
    });
    server.setRequestHandler(ListPromptsRequestSchema, (req) => {
      record(req.method, req.params);
      const p = page(prompts, req.params?.cursor, opts.pageSize);
      return { prompts: p.items, ...(p.nextCursor !== undefined && { nextCursor: p.nextCursor }) };
    });
    server.setRequestHandler(ListResourcesRequestSchema, (req) => {
      record(req.method, req.params);
      const p = page(resources, req.params?.cursor, opts.pageSize);
      return { resources: p.items, ...(p.nextCursor !== undefined && { nextCursor: p.nextCursor }) };
    });
    server.setRequestHandler(ListResourceTemplatesRequestSchema, (req) => {
      record(req.method, req.params);
      return { resourceTemplates: [{ uriTemplate: `${name}://doc/{id}`, name: 'doc', mimeType: 'text/plain' }] };
    });
    server.setRequestHandler(ReadResourceRequestSchema, (req) => {
      record(req.method, req.params);
      return { contents: [{ uri: req.params.uri, mimeType: 'text/plain', text: `${name} read ${req.params.uri}` }] };
    });
    server.setRequestHandler(SubscribeRequestSchema, (req) => {
      record(req.method, req.params);
      self.subscribed.add(req.params.uri);
      return {};
    });
    server.setRequestHandler(UnsubscribeRequestSchema, (req) => {
      record(req.method, req.params);
      self.subscribed.delete(req.params.uri);
      return {};
    });
    server.setRequestHandler(CompleteRequestSchema, (req) => {
      record(req.method, req.params);
      const ref = req.params.ref as { type: string; name?: string; uri?: string };
      return { completion: { values: [`${name}:${ref.name ?? ref.uri}:${req.params.argument.value}`], hasMore: false } };
    });
    server.setRequestHandler(GetPromptRequestSchema, (req) => {
      record(req.method, req.params);
      if (req.params.name === 'embed') {
        return {
          messages: [
            { role: 'user', content: { type: 'resource', resource: { uri: `${name}://doc/1`, mimeType: 'text/plain', text: 'embedded' } } },
            { role: 'user', content: { type: 'resource_link', uri: `${name}://doc/1`, name: 'doc-1' } },
          ],
        };
      }
      return { messages: [{ role: 'user', content: { type: 'text', text: `${name}:${req.params.name}:${req.params.arguments?.who ?? ''}` } }] };
    });
    server.setRequestHandler(CallToolRequestSchema, async (req, extra) => {
      record(req.method, req.params);
      const text = (t: string) => ({ content: [{ type: 'text' as const, text: t }] });
      switch (req.params.name) {
        case 'same':
          return { ...text(`${name}:same`), _meta: { 'example.test/from': name } };
        case 'links':
          return {
            content: [
              { type: 'resource_link', uri: `${name}://doc/1`, name: 'doc-1', mimeType: 'text/plain' },
              { type: 'resource', resource: { uri: `${name}://doc/1`, mimeType: 'text/plain', text: 'embedded' } },
            ],
            structuredContent: { uri: `${name}://doc/1` },
          };
        case 'log':
          for (const level of LEVELS) {
            // On the call's stream, as extra.sendNotification does (no level check: the gateway filters).
            await extra.sendNotification({ method: 'notifications/message', params: { level, logger: 'core', data: `${name} call ${level}` } });
          }
          for (const level of LEVELS) {
            // On the session stream, filtered by the level this upstream session was set to (SDK Server).
            await server.sendLoggingMessage({ level, data: `${name} session ${level}` }, extra.sessionId);
          }
          return text('logged');
        case 'sample_raw':
        case 'sample_who': {
          try {
            const r = await extra.sendRequest(
              { method: 'sampling/createMessage', params: { messages: [{ role: 'user', content: { type: 'text', text: `from ${name}` } }], maxTokens: 10 } },
              CreateMessageResultSchema,
            );
            return text(`answer: ${(r.content as { text?: string }).text}`);
          } catch (err) {
            return { ...text(`refused: ${(err as { code?: number }).code} ${(err as Error).message}`), isError: true };
          }
        }
        case 'grow': {
          const added = `grown-${tools.length}`;
          tools.push({ name: added, description: 'added by grow', inputSchema: EMPTY });
          await extra.sendNotification({ method: 'notifications/tools/list_changed' });
          return text(added);
        }
        case 'sample_progress': {
          const r = await extra.sendRequest(
            { method: 'sampling/createMessage', params: { messages: [{ role: 'user', content: { type: 'text', text: 'with progress' } }], maxTokens: 10 } },
            CreateMessageResultSchema,
            { onprogress: (p) => void progress.push(p.progress) },
          );
          return text(`answer: ${(r.content as { text?: string }).text}`);
        }
        case 'elicit_url_raw': {
          try {
            const r = await extra.sendRequest(
              { method: 'elicitation/create', params: { mode: 'url', message: 'open this', url: 'https://example.test/x', elicitationId: 'e1' } },
              ElicitResultSchema,
            );
            return text(`action: ${r.action}`);
          } catch (err) {
            return { ...text(`refused: ${(err as { code?: number }).code} ${(err as Error).message}`), isError: true };
          }
        }
        case 'sample_then_cancel': {
          try {
            await extra.sendRequest(
              { method: 'sampling/createMessage', params: { messages: [{ role: 'user', content: { type: 'text', text: 'never mind' } }], maxTokens: 10 } },
              CreateMessageResultSchema,
              { signal: AbortSignal.timeout(300) },
            );
            return text('answered');
          } catch {
            return text('gave up');
          }
        }
        default:
          if (tools.some((t) => t.name === req.params.name)) return text(`${name}:${req.params.name}`);
          return { ...text(`unknown tool ${req.params.name}`), isError: true };
      }
    });
    return server;
  };

  const served = await serveSdkSessions(makeServer, { ...(opts.port !== undefined && { port: opts.port }) });
  return {
    url: served.url,
    name,
    received,
    progress,
    strayProgress,
    cancelledLists,
    tools: tools.map((t) => t.name),
    prompts: prompts.map((p) => p.name),
    resources: resources.map((r) => r.uri),
    subscribedSessions: (uri) => [...live].filter((s) => s.subscribed.has(uri)).length,
    updated: async (uri) => {
      await Promise.all([...live].filter((s) => s.subscribed.has(uri)).map((s) => s.server.sendResourceUpdated({ uri }).catch(() => {})));
    },
    promptsChanged: async () => {
      await Promise.all([...live].map((s) => s.server.sendPromptListChanged().catch(() => {})));
    },
    dropSessions: served.drop,
    close: served.close,
  };
}

/**
 * An SDK McpServer with task support (2025-11-25 basic/utilities/tasks.mdx, the SDK's experimental tasks API): tool
 * `delay` runs as a task that completes after `ms`.
 */
export async function startTaskServer(): Promise<{ url: string; close(): Promise<void> }> {
  const { McpServer } = await import('@modelcontextprotocol/sdk/server/mcp.js');
  const { InMemoryTaskStore, InMemoryTaskMessageQueue } = await import('@modelcontextprotocol/sdk/experimental/tasks/stores/in-memory.js');
  const { z } = await import('zod');
  const taskStore = new InMemoryTaskStore();
  const served = await serveSdkSessions(() => {
    const server = new McpServer(
      { name: 'tasker', version: '1.0.0' },
      { capabilities: { tasks: { requests: { tools: { call: {} } }, list: {}, cancel: {} } }, taskStore, taskMessageQueue: new InMemoryTaskMessageQueue() },
    );
    server.experimental.tasks.registerToolTask(
      'delay',
      { description: 'Completes after ms', inputSchema: { ms: z.number() } },
      {
        async createTask({ ms }, { taskStore: store, taskRequestedTtl }) {
          const task = await store.createTask({ ttl: taskRequestedTtl });
          setTimeout(() => void store.storeTaskResult(task.taskId, 'completed', { content: [{ type: 'text', text: `slept ${ms}` }] }), ms);
          return { task };
        },
        async getTask(_args, { taskId, taskStore: store }) {
          return await store.getTask(taskId);
        },
        async getTaskResult(_args, { taskId, taskStore: store }) {
          return (await store.getTaskResult(taskId)) as never;
        },
      },
    );
    return server.server;
  });
  return { url: served.url, close: served.close };
}
