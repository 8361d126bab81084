/**
 * A real A2A agent built with the official JS SDK (@a2a-js/sdk): an AgentExecutor behind DefaultRequestHandler and
 * InMemoryTaskStore, served over JSON-RPC (at /rpc) and HTTP+JSON (at /rest), v1.0 with the SDK's v0.3 compat layer,
 * with its agent card at /.well-known/agent-card.json. Its card advertises its own loopback URLs (what a gateway
 * must rewrite) and carries a signature the gateway must drop or re-sign.
 *
 * Behaviour by the text of the message: `slow` keeps the task working until it is cancelled; anything else
 * becomes a task that goes working -> artifact (the text echoed back) -> completed. `reply` answers with a plain
 * message (no task).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AgentCard, Message, Task } from '@a2a-js/sdk';
import {
  AgentEvent,
  DefaultRequestHandler,
  InMemoryPushNotificationStore,
  InMemoryTaskStore,
  type AgentExecutor,
  type ExecutionEventBus,
  type RequestContext,
  ServerCallContext,
} from '@a2a-js/sdk/server';
import { agentCardHandler, jsonRpcHandler, restHandler, UserBuilder } from '@a2a-js/sdk/server/express';
import express, { type Express } from 'express';
import { createLegacyAwarePushNotificationSender, LegacyJsonRpcTransportHandler, LegacyRestTransportHandler } from '@a2a-js/sdk/compat/v0_3/server';
import { legacyRestRouter } from '@a2a-js/sdk/compat/v0_3/server/express';

export interface TestAgent {
  readonly url: string;
  readonly card: AgentCard;
  /** Every A2A request the agent received (card fetches and health checks aside): method, path and headers. */
  readonly seen: { method: string; path: string; headers: Record<string, string | string[] | undefined>; body?: unknown }[];
  /** Task ids the agent created, in order. */
  readonly tasks: string[];
  /** Agent card requests (fetches, revalidations, health checks), with their headers. */
  readonly cardRequests: { path: string; headers: Record<string, string | string[] | undefined>; status?: number }[];
  close(): Promise<void>;
}

const SKILLS = [
  { id: 'echo', name: 'Echo', description: 'Echoes the text back', tags: ['test'], examples: [], inputModes: [], outputModes: [], securityRequirements: [] },
  { id: 'secret-ops', name: 'Secret ops', description: 'Something most callers may not ask for', tags: ['ops'], examples: [], inputModes: [], outputModes: [], securityRequirements: [] },
];

/** The extension an agent started with `extension: true` lists on its card and activates when a caller asks for it. */
export const ECHO_EXTENSION = 'urn:tollgate:test:echo-extension';

function textOf(m: Message): string {
  return m.parts.map((p) => (p as { content?: { $case?: string; value?: unknown } }).content?.value ?? (p as { text?: string }).text ?? '').join('');
}

class EchoExecutor implements AgentExecutor {
  readonly cancelled = new Set<string>();
  readonly created: string[];
  constructor(created: string[]) {
    this.created = created;
  }

  async execute(ctx: RequestContext, bus: ExecutionEventBus): Promise<void> {
    const text = textOf(ctx.userMessage);
    // The SDK keeps only the requested extensions the card lists: this one is activated whenever it is asked for.
    if (ctx.context?.requestedExtensions?.includes(ECHO_EXTENSION) === true) ctx.context.addActivatedExtension(ECHO_EXTENSION);
    if (text === 'reply') {
      bus.publish(AgentEvent.message({ messageId: `m-${ctx.taskId}`, contextId: ctx.contextId, taskId: '', role: 2, parts: [{ content: { $case: 'text', value: `reply: ${text}` }, metadata: undefined, filename: '', mediaType: 'text/plain' }] as never, metadata: undefined, extensions: [], referenceTaskIds: [] }));
      bus.finished();
      return;
    }
    this.created.push(ctx.taskId);
    const task: Task = { id: ctx.taskId, contextId: ctx.contextId, status: { state: 1, message: undefined, timestamp: new Date().toISOString() }, artifacts: [], history: [ctx.userMessage], metadata: undefined } as never;
    if (ctx.task === undefined) bus.publish(AgentEvent.task(task));
    bus.publish(AgentEvent.statusUpdate({ taskId: ctx.taskId, contextId: ctx.contextId, status: { state: 2, message: undefined, timestamp: new Date().toISOString() }, metadata: undefined } as never));
    if (text === 'slow') {
      // Stays working until CancelTask (the executor's cancelTask publishes the canceled state).
      while (!this.cancelled.has(ctx.taskId)) await new Promise((r) => setTimeout(r, 10));
      return;
    }
    bus.publish(
      AgentEvent.artifactUpdate({
        taskId: ctx.taskId,
        contextId: ctx.contextId,
        artifact: { artifactId: 'a1', name: 'echo', description: '', parts: [{ content: { $case: 'text', value: `echo: ${text}` }, metadata: undefined, filename: '', mediaType: 'text/plain' }], metadata: undefined, extensions: [] },
        append: false,
        lastChunk: true,
        metadata: undefined,
      } as never),
    );
    bus.publish(AgentEvent.statusUpdate({ taskId: ctx.taskId, contextId: ctx.contextId, status: { state: 3, message: undefined, timestamp: new Date().toISOString() }, metadata: undefined } as never));
    bus.finished();
  }

  async cancelTask(taskId: string, bus: ExecutionEventBus): Promise<void> {
    this.cancelled.add(taskId);
    bus.publish(AgentEvent.statusUpdate({ taskId, contextId: '', status: { state: 5, message: undefined, timestamp: new Date().toISOString() }, metadata: undefined } as never));
    bus.finished();
  }
}

/**
 * `versions`: 'both' (default: v1.0 with the SDK's v0.3 compat layer), '1.0' (no compat layer: its card lists 1.0
 * interfaces only and 0.3 method names are unknown to it), or '0.3' (an agent of the 0.3 era: a 0.3-shaped card
 * whatever the A2A-Version header, JSON-RPC served by the SDK's v0.3 transport handler alone, REST under /rest/v1).
 * `bindings`: 'both' (default), 'jsonrpc' (no HTTP+JSON: neither served nor on the card), or 'rest' (no JSON-RPC).
 * `streaming: false`: the card says streaming is off (the SDK then refuses SendStreamingMessage and SubscribeToTask).
 */
export async function startTestAgent(opts: { name?: string; versions?: 'both' | '1.0' | '0.3'; bindings?: 'both' | 'jsonrpc' | 'rest'; extendedCard?: boolean; streaming?: boolean; extension?: boolean } = {}): Promise<TestAgent> {
  const versions = opts.versions ?? 'both';
  const restToo = opts.bindings !== 'jsonrpc';
  const rpcToo = opts.bindings !== 'rest';
  const app = express();
  const server: Server = createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const card: AgentCard = {
    name: opts.name ?? 'echo-agent',
    description: 'A test agent',
    supportedInterfaces: [
      { url: `${url}/rpc`, protocolBinding: 'JSONRPC', tenant: '', protocolVersion: '1.0' },
      { url: `${url}/rest`, protocolBinding: 'HTTP+JSON', tenant: '', protocolVersion: '1.0' },
      { url: `${url}/rpc`, protocolBinding: 'JSONRPC', tenant: '', protocolVersion: '0.3' },
      { url: `${url}/rest`, protocolBinding: 'HTTP+JSON', tenant: '', protocolVersion: '0.3' },
    ].filter((i) => (versions === 'both' || i.protocolVersion === versions) && (restToo || i.protocolBinding === 'JSONRPC') && (rpcToo || i.protocolBinding === 'HTTP+JSON')),
    provider: { url: `${url}/about`, organization: 'Tollgate tests' },
    version: '1.0.0',
    documentationUrl: `${url}/docs`,
    capabilities: { streaming: opts.streaming !== false, pushNotifications: true, extensions: opts.extension === true ? [{ uri: ECHO_EXTENSION, description: 'Activated when asked for', required: false, params: undefined }] : [], extendedAgentCard: opts.extendedCard === true },
    securitySchemes: {},
    securityRequirements: [],
    defaultInputModes: ['text/plain'],
    defaultOutputModes: ['text/plain'],
    skills: SKILLS,
    signatures: [{ protected: 'eyJhbGciOiJFUzI1NiJ9', signature: 'upstream-signature', header: undefined }],
    iconUrl: `${url}/icon.png`,
  };
  const tasks: string[] = [];
  // The extended card (for authenticated callers): one more skill, and the agent's own URLs again.
  const extended: AgentCard = { ...card, description: 'A test agent (extended card)', skills: [...SKILLS, { ...SKILLS[0]!, id: 'vip', name: 'VIP', description: 'For insiders' }] };
  const pushStore = new InMemoryPushNotificationStore();
  // A 0.3-only agent posts 0.3 payloads (a Task with `kind`...) to the webhooks registered over 0.3, as agents of the
  // 0.3 era (a2a-python 0.3) do; the SDK's default sender posts 1.0 StreamResponses whatever the registration.
  const pushSender = versions === '0.3' ? createLegacyAwarePushNotificationSender(pushStore) : undefined;
  const handler = new DefaultRequestHandler(card, new InMemoryTaskStore(), new EchoExecutor(tasks), undefined, pushStore, pushSender, opts.extendedCard === true ? async () => extended : undefined);
  const seen: TestAgent['seen'] = [];
  const cardRequests: TestAgent['cardRequests'] = [];
  app.use((req, res, next) => {
    if (req.url.startsWith('/.well-known/')) {
      const entry: TestAgent['cardRequests'][number] = { path: req.url, headers: { ...req.headers } };
      cardRequests.push(entry);
      res.on('finish', () => (entry.status = res.statusCode));
    } else {
      const entry: TestAgent['seen'][number] = { method: req.method, path: req.url, headers: { ...req.headers } };
      seen.push(entry);
      res.locals.seen = entry;
    }
    next();
  });
  if (versions === '0.3') serveLegacyOnly(app, handler, restToo, rpcToo);
  else {
    const legacyCompat = { enabled: versions === 'both' };
    app.use('/.well-known/agent-card.json', agentCardHandler({ agentCardProvider: handler, legacyCompat }));
    app.use('/.well-known/agent.json', agentCardHandler({ agentCardProvider: handler, legacyCompat }));
    if (rpcToo) app.use('/rpc', jsonRpcHandler({ requestHandler: handler, userBuilder: UserBuilder.noAuthentication, legacyCompat }));
    if (restToo) app.use('/rest', restHandler({ requestHandler: handler, userBuilder: UserBuilder.noAuthentication, legacyCompat }));
  }
  return {
    url,
    card,
    seen,
    tasks,
    cardRequests,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/**
 * A v0.3-only agent on the SDK's own v0.3 pieces: the card in its 0.3 shape for every request (the SDK's card
 * translator), JSON-RPC through `LegacyJsonRpcTransportHandler` alone (v1.0 method names are unknown methods), and
 * the v0.3 REST router under /rest (its paths start with /v1).
 */
function serveLegacyOnly(app: Express, handler: DefaultRequestHandler, restToo: boolean, rpcToo: boolean): void {
  // The SDK's 1.0 -> 0.3 card translator is applied by this handler method.
  const cards = new LegacyRestTransportHandler({ getAuthenticatedExtendedAgentCard: () => handler.getAgentCard() } as never);
  const card = async (_req: express.Request, res: express.Response): Promise<void> => void res.json(await cards.getAuthenticatedExtendedAgentCard(new ServerCallContext()));
  app.get('/.well-known/agent-card.json', card);
  app.get('/.well-known/agent.json', card);
  const rpc = new LegacyJsonRpcTransportHandler(handler);
  if (rpcToo) app.post('/rpc', express.json(), async (req, res) => {
    (res.locals.seen as { body?: unknown }).body = req.body;
    const body = req.body as Record<string, unknown>;
    const out = await rpc.handle(body, new ServerCallContext({ requestedVersion: '0.3' }));
    if (!(Symbol.asyncIterator in out)) return void res.json(out);
    // As the SDK's own JSON-RPC server writes streams: an error before the first event is a JSON answer (for
    // tasks/resubscribe an SSE error event), one after it an error event that ends the stream.
    const error = (err: unknown): string => JSON.stringify({ jsonrpc: '2.0', id: body.id ?? null, error: LegacyJsonRpcTransportHandler.mapToLegacyJSONRPCError(err as Error) });
    const events = out[Symbol.asyncIterator]();
    let first: IteratorResult<unknown>;
    try {
      first = await events.next();
    } catch (err) {
      if (body.method !== 'tasks/resubscribe') return void res.type('application/json').send(error(err));
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      return void res.end(`data: ${error(err)}\n\n`);
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    try {
      for (let next = first; next.done !== true; next = await events.next()) res.write(`data: ${JSON.stringify(next.value)}\n\n`);
    } catch (err) {
      res.write(`data: ${error(err)}\n\n`);
    }
    res.end();
  });
  if (restToo) app.use('/rest', legacyRestRouter({ requestHandler: handler, userBuilder: UserBuilder.noAuthentication }));
}
