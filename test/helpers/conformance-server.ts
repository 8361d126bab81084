/**
 * An upstream for `@modelcontextprotocol/conformance` server scenarios, built with the official SDK (1.x, session
 * era): the tools, resources and prompts those scenarios call (test_simple_text, test_tool_with_progress,
 * test_sampling, test_elicitation, ...). Written for this project from the scenarios' expectations.
 * Also used by the sampling/elicitation round-trip tests: its server-to-client requests go both ways the SDK
 * sends them, on the call's own stream (extra.sendRequest) and on the session's GET stream (server.request).
 */
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { serveSdkSessions } from './sdk-sessions.ts';
import {
  CallToolRequestSchema,
  CompleteRequestSchema,
  CreateMessageResultSchema,
  ElicitResultSchema,
  GetPromptRequestSchema,
  ListPromptsRequestSchema,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ListRootsResultSchema,
  ListToolsRequestSchema,
  ReadResourceRequestSchema,
  SetLevelRequestSchema,
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
  type Tool,
} from '@modelcontextprotocol/sdk/types.js';

const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==';
const WAV = 'UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=';
const EMPTY = { type: 'object' as const, properties: {} };

const TOOLS: Tool[] = [
  { name: 'test_simple_text', description: 'Simple text', inputSchema: EMPTY },
  { name: 'test_image_content', description: 'Image content', inputSchema: EMPTY },
  { name: 'test_audio_content', description: 'Audio content', inputSchema: EMPTY },
  { name: 'test_embedded_resource', description: 'Embedded resource', inputSchema: EMPTY },
  { name: 'test_multiple_content_types', description: 'Mixed content', inputSchema: EMPTY },
  { name: 'test_tool_with_logging', description: 'Logs during execution', inputSchema: EMPTY },
  { name: 'test_tool_with_progress', description: 'Reports progress', inputSchema: EMPTY },
  { name: 'test_error_handling', description: 'Returns a tool error', inputSchema: EMPTY },
  { name: 'test_sampling', description: 'Asks the client for an LLM completion', inputSchema: { type: 'object', properties: { prompt: { type: 'string' } }, required: ['prompt'] } },
  { name: 'test_elicitation', description: 'Asks the user for input', inputSchema: { type: 'object', properties: { message: { type: 'string' } }, required: ['message'] } },
  { name: 'test_elicitation_sep1034_defaults', description: 'Elicitation with defaults', inputSchema: EMPTY },
  { name: 'test_elicitation_sep1330_enums', description: 'Elicitation with enums', inputSchema: EMPTY },
  { name: 'test_roots', description: 'Asks the client for its roots on the session stream', inputSchema: EMPTY },
  { name: 'test_sampling_unrelated', description: 'Sampling sent on the session stream (not the call stream)', inputSchema: { type: 'object', properties: { prompt: { type: 'string' } } } },
  {
    name: 'json_schema_2020_12_tool',
    description: 'JSON Schema 2020-12',
    inputSchema: {
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      type: 'object',
      $defs: { address: { type: 'object', properties: { street: { type: 'string' }, city: { type: 'string' } } } },
      properties: { name: { type: 'string' }, address: { $ref: '#/$defs/address' } },
      additionalProperties: false,
    } as Tool['inputSchema'],
  },
];

export interface ConformanceUpstream {
  readonly url: string;
  /** The names of the tools it serves (what a virtual server exposing all of them lists). */
  readonly tools: readonly string[];
  close(): Promise<void>;
}

function makeServer(): Server {
  const server = new Server(
    { name: 'conformance-upstream', version: '1.0.0' },
    { capabilities: { tools: { listChanged: true }, resources: { subscribe: true, listChanged: true }, prompts: { listChanged: true }, logging: {}, completions: {} } },
  );
  const log = (data: string): void => {
    void server.notification({ method: 'notifications/message', params: { level: 'info', logger: 'conformance-upstream', data } }).catch(() => {});
  };
  server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: TOOLS }));
  server.setRequestHandler(CallToolRequestSchema, async (req, extra) => {
    const args = (req.params.arguments ?? {}) as Record<string, unknown>;
    const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
    switch (req.params.name) {
      case 'test_simple_text':
        return { content: [{ type: 'text', text: 'This is a simple text response for testing.' }] };
      case 'test_image_content':
        return { content: [{ type: 'image', data: PNG, mimeType: 'image/png' }] };
      case 'test_audio_content':
        return { content: [{ type: 'audio', data: WAV, mimeType: 'audio/wav' }] };
      case 'test_embedded_resource':
        return { content: [{ type: 'resource', resource: { uri: 'test://embedded-resource', mimeType: 'text/plain', text: 'This is an embedded resource content.' } }] };
      case 'test_multiple_content_types':
        return {
          content: [
            { type: 'text', text: 'Multiple content types test:' },
            { type: 'image', data: PNG, mimeType: 'image/png' },
            { type: 'resource', resource: { uri: 'test://mixed-content-resource', mimeType: 'application/json', text: '{"test":"data","value":123}' } },
          ],
        };
      case 'test_tool_with_logging':
        for (const step of ['Tool execution started', 'Tool processing data', 'Tool execution completed']) {
          await extra.sendNotification({ method: 'notifications/message', params: { level: 'info', data: step } });
          await sleep(30);
        }
        return { content: [{ type: 'text', text: 'Tool with logging executed successfully' }] };
      case 'test_tool_with_progress': {
        const token = req.params._meta?.progressToken ?? 0;
        for (const progress of [0, 50, 100]) {
          await extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress, total: 100, message: `Completed step ${progress} of 100` } });
          await sleep(30);
        }
        return { content: [{ type: 'text', text: String(token) }] };
      }
      case 'test_error_handling':
        return { content: [{ type: 'text', text: 'This tool intentionally returns an error for testing' }], isError: true };
      case 'test_sampling': {
        const r = await extra.sendRequest(
          { method: 'sampling/createMessage', params: { messages: [{ role: 'user', content: { type: 'text', text: String(args.prompt ?? '') } }], maxTokens: 100 } },
          CreateMessageResultSchema,
        );
        const content = r.content as { text?: string };
        return { content: [{ type: 'text', text: `LLM response: ${content.text ?? 'No response'}` }] };
      }
      case 'test_sampling_unrelated': {
        const r = await server.createMessage({ messages: [{ role: 'user', content: { type: 'text', text: String(args.prompt ?? '') } }], maxTokens: 50 });
        const content = r.content as { text?: string };
        return { content: [{ type: 'text', text: `LLM response: ${content.text ?? 'No response'}` }] };
      }
      case 'test_roots': {
        const r = await server.request({ method: 'roots/list' }, ListRootsResultSchema);
        return { content: [{ type: 'text', text: `roots: ${r.roots.map((x) => x.uri).join(',')}` }] };
      }
      case 'test_elicitation': {
        const r = await extra.sendRequest(
          {
            method: 'elicitation/create',
            params: { mode: 'form', message: String(args.message ?? ''), requestedSchema: { type: 'object', properties: { response: { type: 'string', description: "User's response" } }, required: ['response'] } },
          },
          ElicitResultSchema,
        );
        return { content: [{ type: 'text', text: `User response: action=${r.action}, content=${JSON.stringify(r.content ?? {})}` }] };
      }
      case 'test_elicitation_sep1034_defaults': {
        const r = await extra.sendRequest(
          {
            method: 'elicitation/create',
            params: {
              mode: 'form',
              message: 'Please review and update the form fields with defaults',
              requestedSchema: {
                type: 'object',
                properties: {
                  name: { type: 'string', description: 'User name', default: 'John Doe' },
                  age: { type: 'integer', description: 'User age', default: 30 },
                  score: { type: 'number', description: 'User score', default: 95.5 },
                  status: { type: 'string', description: 'User status', enum: ['active', 'inactive', 'pending'], default: 'active' },
                  verified: { type: 'boolean', description: 'Verification status', default: true },
                },
                required: [],
              },
            },
          },
          ElicitResultSchema,
        );
        return { content: [{ type: 'text', text: `Elicitation completed: action=${r.action}, content=${JSON.stringify(r.content ?? {})}` }] };
      }
      case 'test_elicitation_sep1330_enums': {
        const r = await extra.sendRequest(
          {
            method: 'elicitation/create',
            params: {
              mode: 'form',
              message: 'Please select options from the enum fields',
              requestedSchema: {
                type: 'object',
                properties: {
                  untitledSingle: { type: 'string', description: 'Select one option', enum: ['option1', 'option2', 'option3'] },
                  titledSingle: { type: 'string', description: 'Select one option with titles', oneOf: [{ const: 'value1', title: 'First Option' }, { const: 'value2', title: 'Second Option' }, { const: 'value3', title: 'Third Option' }] },
                  legacyEnum: { type: 'string', description: 'Select one option (legacy)', enum: ['opt1', 'opt2', 'opt3'], enumNames: ['Option One', 'Option Two', 'Option Three'] },
                  untitledMulti: { type: 'array', description: 'Select multiple options', minItems: 1, maxItems: 3, items: { type: 'string', enum: ['option1', 'option2', 'option3'] } },
                  titledMulti: { type: 'array', description: 'Select multiple options with titles', minItems: 1, maxItems: 3, items: { anyOf: [{ const: 'value1', title: 'First Choice' }, { const: 'value2', title: 'Second Choice' }, { const: 'value3', title: 'Third Choice' }] } },
                },
                required: [],
              },
            },
          } as never,
          ElicitResultSchema,
        );
        return { content: [{ type: 'text', text: `Elicitation completed: action=${r.action}, content=${JSON.stringify(r.content ?? {})}` }] };
      }
      case 'json_schema_2020_12_tool':
        return { content: [{ type: 'text', text: `JSON Schema 2020-12 tool called with: ${JSON.stringify(args)}` }] };
      default:
        return { content: [{ type: 'text', text: `Unknown tool ${req.params.name}` }], isError: true };
    }
  });
  server.setRequestHandler(ListResourcesRequestSchema, () => ({
    resources: [
      { uri: 'test://static-text', name: 'static-text', title: 'Static Text Resource', mimeType: 'text/plain' },
      { uri: 'test://static-binary', name: 'static-binary', title: 'Static Binary Resource', mimeType: 'image/png' },
      { uri: 'test://watched-resource', name: 'watched-resource', mimeType: 'text/plain' },
    ],
  }));
  server.setRequestHandler(ListResourceTemplatesRequestSchema, () => ({
    resourceTemplates: [{ uriTemplate: 'test://template/{id}/data', name: 'template', mimeType: 'application/json' }],
  }));
  server.setRequestHandler(ReadResourceRequestSchema, (req) => {
    const uri = req.params.uri;
    if (uri === 'test://static-text') return { contents: [{ uri, mimeType: 'text/plain', text: 'This is the content of the static text resource.' }] };
    if (uri === 'test://static-binary') return { contents: [{ uri, mimeType: 'image/png', blob: PNG }] };
    if (uri === 'test://watched-resource') return { contents: [{ uri, mimeType: 'text/plain', text: 'Watched resource content' }] };
    const m = /^test:\/\/template\/([^/]+)\/data$/.exec(uri);
    if (m) return { contents: [{ uri, mimeType: 'application/json', text: JSON.stringify({ id: m[1], templateTest: true, data: `Data for ID: ${m[1]}` }) }] };
    throw Object.assign(new Error(`Resource not found: ${uri}`), { code: -32002 });
  });
  server.setRequestHandler(SubscribeRequestSchema, (req) => {
    log(`Subscribed to resource: ${req.params.uri}`);
    return {};
  });
  server.setRequestHandler(UnsubscribeRequestSchema, (req) => {
    log(`Unsubscribed from resource: ${req.params.uri}`);
    return {};
  });
  server.setRequestHandler(ListPromptsRequestSchema, () => ({
    prompts: [
      { name: 'test_simple_prompt', description: 'A simple prompt without arguments' },
      { name: 'test_prompt_with_arguments', description: 'A prompt with required arguments', arguments: [{ name: 'arg1', required: true }, { name: 'arg2', required: true }] },
      { name: 'test_prompt_with_embedded_resource', description: 'A prompt with an embedded resource', arguments: [{ name: 'resourceUri', required: true }] },
      { name: 'test_prompt_with_image', description: 'A prompt with an image' },
    ],
  }));
  server.setRequestHandler(GetPromptRequestSchema, (req) => {
    const a = req.params.arguments ?? {};
    switch (req.params.name) {
      case 'test_simple_prompt':
        return { messages: [{ role: 'user', content: { type: 'text', text: 'This is a simple prompt for testing.' } }] };
      case 'test_prompt_with_arguments':
        return { messages: [{ role: 'user', content: { type: 'text', text: `Prompt with arguments: arg1='${a.arg1}', arg2='${a.arg2}'` } }] };
      case 'test_prompt_with_embedded_resource':
        return {
          messages: [
            { role: 'user', content: { type: 'resource', resource: { uri: String(a.resourceUri), mimeType: 'text/plain', text: 'Embedded resource content for testing.' } } },
            { role: 'user', content: { type: 'text', text: 'Please process the embedded resource above.' } },
          ],
        };
      case 'test_prompt_with_image':
        return {
          messages: [
            { role: 'user', content: { type: 'image', data: PNG, mimeType: 'image/png' } },
            { role: 'user', content: { type: 'text', text: 'Please analyze the image above.' } },
          ],
        };
      default:
        throw Object.assign(new Error(`Unknown prompt ${req.params.name}`), { code: -32602 });
    }
  });
  server.setRequestHandler(SetLevelRequestSchema, (req) => {
    log(`Log level set to: ${req.params.level}`);
    return {};
  });
  server.setRequestHandler(CompleteRequestSchema, () => ({ completion: { values: [], total: 0, hasMore: false } }));
  return server;
}

/** Starts the upstream over Streamable HTTP (one SDK transport per session). */
export async function startConformanceUpstream(): Promise<ConformanceUpstream> {
  const served = await serveSdkSessions(makeServer);
  return {
    url: served.url,
    tools: TOOLS.map((t) => t.name),
    close: served.close,
  };
}
