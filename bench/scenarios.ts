/**
 * What the bench measures. A scenario names its backends (started in the fixtures process), the backend a client
 * talks to directly (and the bare reference proxy forwards to), and the request an SDK client sends; the gateway
 * serves the scenario's backends federated at /mcp.
 */
import type { BackendSpec } from './fixtures/backends.ts';
import type { BenchCall, ClientEra } from './lib/mcp-client.ts';

export interface Scenario {
  readonly name: string;
  readonly what: string;
  readonly backends: readonly BackendSpec[];
  /** The backend a direct client and the reference proxy use. */
  readonly direct: string;
  /** Backends federated behind the gateway's /mcp. */
  readonly federated: readonly string[];
  /** The measured request, direct and through the gateway (federated names are `<server>__<tool>`). */
  readonly directCall: BenchCall;
  readonly gatewayCall: BenchCall;
  /** Measure each stage alone here too (default: only the full pipeline and no stage; call-small does each). */
  readonly eachStage?: boolean;
  /** The client's protocol era (default: session, SDK 1.x). */
  readonly client?: ClientEra;
  /** Stages left off in this scenario, and why (recorded in the results). */
  readonly withoutStages?: { readonly names: readonly string[]; readonly reason: string };
}

const echo = { message: 'hello from the bench' };
// files/read_file is what the default policy's argument rule checks (path under /srv/shared/).
const read = { path: '/srv/shared/reports/bench.txt' };

export const SCENARIOS: readonly Scenario[] = [
  {
    name: 'call-small',
    what: 'MCP tools/call files/read_file (policy argument rule), small result (raw backend), session-era client',
    backends: [{ name: 'files', kind: 'raw' }],
    direct: 'files',
    federated: ['files'],
    directCall: { method: 'tools/call', name: 'read_file', arguments: read },
    gatewayCall: { method: 'tools/call', name: 'files__read_file', arguments: read },
    eachStage: true,
  },
  {
    name: 'call-100k',
    what: 'MCP tools/call, 100 KB result (raw backend)',
    backends: [{ name: 'b1', kind: 'raw' }],
    direct: 'b1',
    federated: ['b1'],
    directCall: { method: 'tools/call', name: 'big', arguments: { kb: 100 } },
    gatewayCall: { method: 'tools/call', name: 'b1__big', arguments: { kb: 100 } },
  },
  {
    name: 'list-300',
    what: 'MCP tools/list: 3 upstreams x 100 tools federated; direct = one backend with the same 300 tools',
    backends: [
      { name: 'all', kind: 'raw', tools: 297 },
      { name: 'b1', kind: 'raw', tools: 97 },
      { name: 'b2', kind: 'raw', tools: 97 },
      { name: 'b3', kind: 'raw', tools: 97 },
    ],
    direct: 'all',
    federated: ['b1', 'b2', 'b3'],
    directCall: { method: 'tools/list' },
    gatewayCall: { method: 'tools/list' },
  },
  {
    name: 'sdk-session',
    what: 'MCP tools/call to the official SDK server (session era, JSON responses), session-era SDK client',
    backends: [{ name: 'sdk', kind: 'sdk' }],
    direct: 'sdk',
    federated: ['sdk'],
    directCall: { method: 'tools/call', name: 'echo', arguments: echo },
    gatewayCall: { method: 'tools/call', name: 'sdk__echo', arguments: echo },
  },
  {
    name: 'stateless-2026',
    what: 'MCP tools/call from a stateless 2026-07-28 client (v2 SDK, no session) to a 2026 server (v2 SDK createMcpHandler)',
    backends: [{ name: 'modern', kind: 'modern' }],
    direct: 'modern',
    federated: ['modern'],
    directCall: { method: 'tools/call', name: 'echo', arguments: echo },
    gatewayCall: { method: 'tools/call', name: 'modern__echo', arguments: echo },
    client: 'stateless',
  },
];

/** Scenarios the issue asks for whose code is not on main yet: listed in every results file, never run. */
export interface Slot {
  readonly name: string;
  readonly what: string;
  /** What has to land before it can run (no stand-in runs meanwhile). */
  readonly pending: string;
}

export const SLOTS: readonly Slot[] = [
  { name: 'chat-stream', what: 'Streamed chat completion (OpenAI-compatible): TTFB and total', pending: 'model routes (protocol openai) are not served yet' },
];
