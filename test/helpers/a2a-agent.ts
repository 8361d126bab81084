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
} from '@a2a-js/sdk/server';
import { agentCardHandler, jsonRpcHandler, restHandler, UserBuilder } from '@a2a-js/sdk/server/express';
import express from 'express';

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

export async function startTestAgent(opts: { name?: string } = {}): Promise<TestAgent> {
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
    ],
    provider: { url: `${url}/about`, organization: 'Tollgate tests' },
    version: '1.0.0',
    documentationUrl: `${url}/docs`,
    capabilities: { streaming: true, pushNotifications: true, extensions: [], extendedAgentCard: false },
    securitySchemes: {},
    securityRequirements: [],
    defaultInputModes: ['text/plain'],
    defaultOutputModes: ['text/plain'],
    skills: SKILLS,
    signatures: [{ protected: 'eyJhbGciOiJFUzI1NiJ9', signature: 'upstream-signature', header: undefined }],
    iconUrl: `${url}/icon.png`,
  };
  const tasks: string[] = [];
  const handler = new DefaultRequestHandler(card, new InMemoryTaskStore(), new EchoExecutor(tasks), undefined, new InMemoryPushNotificationStore());
  const seen: TestAgent['seen'] = [];
  const cardRequests: TestAgent['cardRequests'] = [];
  app.use((req, res, next) => {
    if (req.url.startsWith('/.well-known/')) {
      const entry: TestAgent['cardRequests'][number] = { path: req.url, headers: { ...req.headers } };
      cardRequests.push(entry);
      res.on('finish', () => (entry.status = res.statusCode));
    } else seen.push({ method: req.method, path: req.url, headers: { ...req.headers } });
    next();
  });
  app.use('/.well-known/agent-card.json', agentCardHandler({ agentCardProvider: handler, legacyCompat: { enabled: true } }));
  app.use('/.well-known/agent.json', agentCardHandler({ agentCardProvider: handler, legacyCompat: { enabled: true } }));
  app.use('/rpc', jsonRpcHandler({ requestHandler: handler, userBuilder: UserBuilder.noAuthentication, legacyCompat: { enabled: true } }));
  app.use('/rest', restHandler({ requestHandler: handler, userBuilder: UserBuilder.noAuthentication, legacyCompat: { enabled: true } }));
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
