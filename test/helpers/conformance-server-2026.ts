/**
 * A 2026-07-28-native upstream for `@modelcontextprotocol/conformance` server scenarios (`--requirements
 * 2026-07-28`), built with the official v2 SDK (`McpServer` + `createMcpHandler`, modern-only: it refuses the
 * 2025-era handshake). The suite's package ships no reference server, so this one was written for this project from
 * the scenarios' stated requirements: the content tools, prompts, resources and completions of the session-era
 * fixture, plus the stateless era's own (multi round-trip `input_required` tools and prompt, an HMAC-sealed
 * `requestState`, a capability-gated tool, list-changed triggers for `subscriptions/listen`, cache hints on every
 * cacheable result, `-32602` with the uri for an unknown resource) and the DNS-rebinding guard a localhost server
 * owes (Host and Origin checked, as the SDK's helpers do).
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { toNodeHandler } from '@modelcontextprotocol/node';
import {
  McpServer,
  ResourceTemplate,
  CLIENT_CAPABILITIES_META_KEY,
  acceptedContent,
  completable,
  createMcpHandler,
  createRequestStateCodec,
  fromJsonSchema,
  hostHeaderValidationResponse,
  inputRequired,
  inputResponse,
  localhostAllowedHostnames,
  localhostAllowedOrigins,
  originValidationResponse,
  type ServerContext,
} from '@modelcontextprotocol/server';
import { z } from 'zod';

const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==';
const WAV = 'UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=';
const NO_ARGS = z.object({});
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const text = (t: string): { content: { type: 'text'; text: string }[] } => ({ content: [{ type: 'text', text: t }] });

/** JSON Schema 2020-12 with the SEP-2106 vocabulary the json-schema-2020-12 scenario looks for in tools/list. */
const JSON_SCHEMA_2020_12 = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  type: 'object',
  $defs: { address: { $anchor: 'addressDef', type: 'object', properties: { street: { type: 'string' }, city: { type: 'string' } } } },
  properties: {
    name: { type: 'string' },
    address: { $ref: '#/$defs/address' },
    contactMethod: { type: 'string', enum: ['phone', 'email'] },
    phone: { type: 'string' },
    email: { type: 'string' },
  },
  allOf: [{ anyOf: [{ required: ['phone'] }, { required: ['email'] }] }],
  if: { properties: { contactMethod: { const: 'phone' } }, required: ['contactMethod'] },
  then: { required: ['phone'] },
  else: { required: ['email'] },
  additionalProperties: false,
};

const NAME = z.object({ name: z.string() });
const CONFIRM = z.object({ ok: z.boolean() });
const COLOR = z.object({ color: z.string() });
const CONTEXT = z.object({ context: z.string() });
const ask = (message: string, schema: z.ZodObject): ReturnType<typeof inputRequired.elicit> => inputRequired.elicit({ message, requestedSchema: schema });
const capital = (): ReturnType<typeof inputRequired.createMessage> =>
  inputRequired.createMessage({ messages: [{ role: 'user', content: { type: 'text', text: 'What is the capital of France?' } }], maxTokens: 100 });

export interface Conformance2026Upstream {
  readonly url: string;
  /** The names of the tools it serves (what a virtual server exposing all of them lists). */
  readonly tools: readonly string[];
  close(): Promise<void>;
}

type Notify = { toolsChanged(): void; promptsChanged(): void };

function registerTools(server: McpServer, notify: () => Notify, state: ReturnType<typeof createRequestStateCodec<{ round: number }>>): void {
  server.registerTool('test_simple_text', { description: 'Simple text', inputSchema: NO_ARGS }, async () => text('This is a simple text response for testing.'));
  server.registerTool('test_image_content', { description: 'Image content', inputSchema: NO_ARGS }, async () => ({ content: [{ type: 'image', data: PNG, mimeType: 'image/png' }] }));
  server.registerTool('test_audio_content', { description: 'Audio content', inputSchema: NO_ARGS }, async () => ({ content: [{ type: 'audio', data: WAV, mimeType: 'audio/wav' }] }));
  server.registerTool('test_embedded_resource', { description: 'Embedded resource', inputSchema: NO_ARGS }, async () => ({
    content: [{ type: 'resource', resource: { uri: 'test://embedded-resource', mimeType: 'text/plain', text: 'This is an embedded resource content.' } }],
  }));
  server.registerTool('test_multiple_content_types', { description: 'Mixed content', inputSchema: NO_ARGS }, async () => ({
    content: [
      { type: 'text', text: 'Multiple content types test:' },
      { type: 'image', data: PNG, mimeType: 'image/png' },
      { type: 'resource', resource: { uri: 'test://mixed-content-resource', mimeType: 'application/json', text: '{"test":"data","value":123}' } },
    ],
  }));
  server.registerTool('test_tool_with_progress', { description: 'Reports progress', inputSchema: NO_ARGS }, async (_args, ctx) => {
    const token = ctx.mcpReq._meta?.progressToken;
    for (const progress of [0, 50, 100]) {
      if (token !== undefined) await ctx.mcpReq.notify({ method: 'notifications/progress', params: { progressToken: token, progress, total: 100, message: `Completed step ${progress} of 100` } });
      await sleep(50);
    }
    return text(String(token ?? 'no progress token'));
  });
  server.registerTool('test_error_handling', { description: 'Fails (a tool error)', inputSchema: NO_ARGS }, async () => {
    throw new Error('This tool intentionally returns an error for testing');
  });
  server.registerTool('test_logging_tool', { description: 'Logs (only when the request set a log level)', inputSchema: NO_ARGS }, async (_args, ctx) => {
    await ctx.mcpReq.log('info', 'Tool execution started', 'conformance-2026');
    return text('Tool with logging executed successfully');
  });
  server.registerTool('json_schema_2020_12_tool', { description: 'Tool with JSON Schema 2020-12 features', inputSchema: fromJsonSchema(JSON_SCHEMA_2020_12 as Parameters<typeof fromJsonSchema>[0]) }, async (args) =>
    text(`JSON Schema 2020-12 tool called with: ${JSON.stringify(args)}`),
  );
  server.registerTool(
    'test_region_query',
    {
      description: 'A query routed by region (the region is mirrored in the Mcp-Param-Region header)',
      inputSchema: fromJsonSchema<{ region: string; query: string }>({
        type: 'object',
        properties: { region: { type: 'string', 'x-mcp-header': 'Region' }, query: { type: 'string' } },
        required: ['region', 'query'],
      } as Parameters<typeof fromJsonSchema>[0]),
    },
    async ({ region, query }) => text(`${region}: ${query}`),
  );
  // Asks the client to sample: the SDK refuses the request with -32021 when the client did not declare sampling.
  server.registerTool('test_missing_capability', { description: 'Needs the client to declare sampling', inputSchema: NO_ARGS }, async (_args, ctx) => {
    const r = inputResponse(ctx.mcpReq.inputResponses, 'capital_question');
    if (r.kind !== 'sampling') return inputRequired({ inputRequests: { capital_question: capital() } });
    return text('sampled');
  });
  server.registerTool('test_trigger_tool_change', { description: 'Announces a tools list change to listen streams', inputSchema: NO_ARGS }, async () => {
    notify().toolsChanged();
    return text('tools list changed');
  });
  server.registerTool('test_trigger_prompt_change', { description: 'Announces a prompts list change to listen streams', inputSchema: NO_ARGS }, async () => {
    notify().promptsChanged();
    return text('prompts list changed');
  });
  server.registerTool('test_streaming_elicitation', { description: 'Asks for input (an input_required result, never a request on the stream)', inputSchema: NO_ARGS }, async (_args, ctx) => {
    const name = acceptedContent(ctx.mcpReq.inputResponses, 'user_name', NAME);
    if (name === undefined) return inputRequired({ inputRequests: { user_name: ask('What is your name?', NAME) } });
    return text(`Hello, ${name.name}!`);
  });

  server.registerTool('test_input_required_result_elicitation', { description: 'Asks the user for a name (multi round-trip)', inputSchema: NO_ARGS }, async (_args, ctx) => {
    const name = acceptedContent(ctx.mcpReq.inputResponses, 'user_name', NAME);
    if (name === undefined) return inputRequired({ inputRequests: { user_name: ask('What is your name?', NAME) } });
    return text(`Hello, ${name.name}!`);
  });
  server.registerTool('test_input_required_result_sampling', { description: 'Asks the client for an LLM completion (multi round-trip)', inputSchema: NO_ARGS }, async (_args, ctx) => {
    const r = inputResponse(ctx.mcpReq.inputResponses, 'capital_question');
    if (r.kind !== 'sampling') return inputRequired({ inputRequests: { capital_question: capital() } });
    const content = r.result.content as { type: string; text?: string };
    return text(`LLM response: ${content.text ?? ''}`);
  });
  server.registerTool('test_input_required_result_list_roots', { description: 'Asks the client for its roots (multi round-trip)', inputSchema: NO_ARGS }, async (_args, ctx) => {
    const r = inputResponse(ctx.mcpReq.inputResponses, 'client_roots');
    if (r.kind !== 'roots') return inputRequired({ inputRequests: { client_roots: inputRequired.listRoots() } });
    return text(`roots: ${r.roots.map((x) => x.uri).join(',')}`);
  });
  server.registerTool('test_input_required_result_request_state', { description: 'Round-trips an opaque requestState', inputSchema: NO_ARGS }, async (_args, ctx) => {
    const ok = acceptedContent(ctx.mcpReq.inputResponses, 'confirm', CONFIRM);
    const round = ctx.mcpReq.requestState<{ round: number }>();
    if (ok === undefined || round?.round !== 1) return inputRequired({ inputRequests: { confirm: ask('Please confirm', CONFIRM) }, requestState: await state.mint({ round: 1 }) });
    return text(`state-ok: confirmed=${ok.ok}`);
  });
  server.registerTool('test_input_required_result_multiple_inputs', { description: 'Asks for three inputs at once', inputSchema: NO_ARGS }, async (_args, ctx) => {
    const responses = ctx.mcpReq.inputResponses;
    const name = acceptedContent(responses, 'user_name', NAME);
    const sampled = inputResponse(responses, 'capital_question');
    const roots = inputResponse(responses, 'client_roots');
    if (name === undefined || sampled.kind !== 'sampling' || roots.kind !== 'roots' || ctx.mcpReq.requestState<{ round: number }>()?.round !== 1) {
      return inputRequired({
        inputRequests: { user_name: ask('What is your name?', NAME), capital_question: capital(), client_roots: inputRequired.listRoots() },
        requestState: await state.mint({ round: 1 }),
      });
    }
    return text(`Hello, ${name.name}: ${roots.roots.length} root(s)`);
  });
  server.registerTool('test_input_required_result_multi_round', { description: 'Asks twice, state evolving', inputSchema: NO_ARGS }, async (_args, ctx) => {
    const round = ctx.mcpReq.requestState<{ round: number }>()?.round ?? 0;
    if (round === 1 && acceptedContent(ctx.mcpReq.inputResponses, 'step1', NAME) !== undefined) {
      return inputRequired({ inputRequests: { step2: ask('Step 2: What is your favorite color?', COLOR) }, requestState: await state.mint({ round: 2 }) });
    }
    const color = acceptedContent(ctx.mcpReq.inputResponses, 'step2', COLOR);
    if (round === 2 && color !== undefined) return text(`favorite color: ${color.color}`);
    return inputRequired({ inputRequests: { step1: ask('Step 1: What is your name?', NAME) }, requestState: await state.mint({ round: 1 }) });
  });
  server.registerTool('test_input_required_result_tampered_state', { description: 'Seals its requestState (HMAC)', inputSchema: NO_ARGS }, async (_args, ctx) => {
    const ok = acceptedContent(ctx.mcpReq.inputResponses, 'confirm', CONFIRM);
    if (ok === undefined || ctx.mcpReq.requestState<{ round: number }>()?.round !== 1) {
      return inputRequired({ inputRequests: { confirm: ask('Please confirm', CONFIRM) }, requestState: await state.mint({ round: 1 }) });
    }
    return text('state verified');
  });
  server.registerTool('test_input_required_result_capabilities', { description: 'Asks only for what the client declared', inputSchema: NO_ARGS }, async (_args, ctx) => {
    const envelope = ctx.mcpReq.envelope as Record<string, { sampling?: unknown; elicitation?: unknown } | undefined> | undefined;
    const caps = envelope?.[CLIENT_CAPABILITIES_META_KEY] ?? {};
    if (inputResponse(ctx.mcpReq.inputResponses, 'capital_question').kind === 'sampling' || acceptedContent(ctx.mcpReq.inputResponses, 'user_name') !== undefined) return text('thanks');
    const asks: Record<string, ReturnType<typeof capital>> = {};
    if (caps.sampling !== undefined) asks.capital_question = capital();
    if (caps.elicitation !== undefined) asks.user_name = ask('What is your name?', NAME);
    if (Object.keys(asks).length === 0) return text('nothing to ask: the client declared neither sampling nor elicitation');
    return inputRequired({ inputRequests: asks });
  });
}

function registerPrompts(server: McpServer): void {
  server.registerPrompt('test_simple_prompt', { description: 'A simple prompt without arguments' }, () => ({
    messages: [{ role: 'user', content: { type: 'text', text: 'This is a simple prompt for testing.' } }],
  }));
  server.registerPrompt(
    'test_prompt_with_arguments',
    {
      description: 'A prompt with required arguments',
      argsSchema: z.object({
        arg1: completable(z.string().describe('First test argument'), (value) => ['paris', 'park', 'party'].filter((v) => v.startsWith(value))),
        arg2: z.string().describe('Second test argument'),
      }),
    },
    ({ arg1, arg2 }) => ({ messages: [{ role: 'user', content: { type: 'text', text: `Prompt with arguments: arg1='${arg1}', arg2='${arg2}'` } }] }),
  );
  server.registerPrompt('test_prompt_with_embedded_resource', { description: 'A prompt with an embedded resource', argsSchema: z.object({ resourceUri: z.string() }) }, ({ resourceUri }) => ({
    messages: [
      { role: 'user', content: { type: 'resource', resource: { uri: resourceUri, mimeType: 'text/plain', text: 'Embedded resource content for testing.' } } },
      { role: 'user', content: { type: 'text', text: 'Please process the embedded resource above.' } },
    ],
  }));
  server.registerPrompt('test_prompt_with_image', { description: 'A prompt with an image' }, () => ({
    messages: [
      { role: 'user', content: { type: 'image', data: PNG, mimeType: 'image/png' } },
      { role: 'user', content: { type: 'text', text: 'Please analyze the image above.' } },
    ],
  }));
  server.registerPrompt('test_input_required_result_prompt', { description: 'A prompt that asks for context first (multi round-trip)' }, (ctx: ServerContext) => {
    const context = acceptedContent(ctx.mcpReq.inputResponses, 'user_context', CONTEXT);
    if (context === undefined) return inputRequired({ inputRequests: { user_context: ask('What context should the prompt use?', CONTEXT) } });
    return { messages: [{ role: 'user', content: { type: 'text', text: `Use this context: ${context.context}` } }] };
  });
}

function registerResources(server: McpServer): void {
  server.registerResource('static-text', 'test://static-text', { title: 'Static Text Resource', mimeType: 'text/plain' }, async (uri) => ({
    contents: [{ uri: uri.href, mimeType: 'text/plain', text: 'This is the content of the static text resource.' }],
  }));
  server.registerResource('static-binary', 'test://static-binary', { title: 'Static Binary Resource', mimeType: 'image/png' }, async (uri) => ({
    contents: [{ uri: uri.href, mimeType: 'image/png', blob: PNG }],
  }));
  server.registerResource('template', new ResourceTemplate('test://template/{id}/data', { list: undefined }), { mimeType: 'application/json' }, async (uri, { id }) => ({
    contents: [{ uri: uri.href, mimeType: 'application/json', text: JSON.stringify({ id, templateTest: true, data: `Data for ID: ${String(id)}` }) }],
  }));
}

/** Starts the upstream on 127.0.0.1 (the path is /mcp). */
export async function startConformance2026Upstream(): Promise<Conformance2026Upstream> {
  // A key per fixture process: one process serves every round of a flow.
  const state = createRequestStateCodec<{ round: number }>({ key: randomBytes(32) });
  let handler: ReturnType<typeof createMcpHandler> | undefined;
  const factory = (): McpServer => {
    const server = new McpServer(
      { name: 'conformance-2026-upstream', version: '1.0.0' },
      {
        capabilities: { tools: { listChanged: true }, resources: { listChanged: true }, prompts: { listChanged: true }, logging: {}, completions: {} },
        cacheHints: {
          'tools/list': { ttlMs: 60_000, cacheScope: 'public' },
          'prompts/list': { ttlMs: 60_000, cacheScope: 'public' },
          'resources/list': { ttlMs: 60_000, cacheScope: 'public' },
          'resources/templates/list': { ttlMs: 60_000, cacheScope: 'public' },
          'resources/read': { ttlMs: 10_000, cacheScope: 'private' },
        },
        requestState: { verify: state.verify },
      },
    );
    registerTools(server, () => handler!.notify, state);
    registerPrompts(server);
    registerResources(server);
    return server;
  };
  handler = createMcpHandler(factory, { legacy: 'reject' });
  const node = toNodeHandler({
    ...handler,
    fetch: async (request: Request) =>
      hostHeaderValidationResponse(request, localhostAllowedHostnames()) ?? originValidationResponse(request, localhostAllowedOrigins()) ?? handler!.fetch(request),
  }) as (rq: unknown, rs: unknown) => Promise<void>;
  const http: HttpServer = createServer((req, res) => void node(req, res));
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`;
  // The tool names as a 2026-07-28 client lists them (what a virtual server exposing all of them lists).
  const lister = new Client({ name: 'fixture-lister', version: '1.0.0' }, { versionNegotiation: { mode: { pin: '2026-07-28' } } });
  await lister.connect(new StreamableHTTPClientTransport(new URL(url)));
  const tools = (await lister.listTools()).tools.map((t) => t.name);
  await lister.close();
  return {
    url,
    tools,
    close: async () => {
      await handler!.close();
      http.closeAllConnections();
      await new Promise<void>((r) => http.close(() => r()));
    },
  };
}
