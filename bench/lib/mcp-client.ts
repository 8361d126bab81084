/**
 * A real MCP session for the bench: the official SDK client does initialize (and notifications/initialized, and
 * opens its GET stream) against the target, performs the measured request once for real, and the exact headers and
 * body it sent are kept as a template. The load generator then replays those bytes with a fresh JSON-RPC id per
 * request, in that same session.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { findTopLevelId, peekOutcome } from '../../src/protocols/mcp/jsonrpc.ts';

/** What the measured request is. */
export type BenchCall =
  | { readonly method: 'tools/call'; readonly name: string; readonly arguments: Record<string, unknown> }
  | { readonly method: 'tools/list' };

/** One measured request, as bytes: `before + id + after` is the body of the request with that id. */
export interface RequestTemplate {
  readonly url: string;
  readonly method: 'POST';
  readonly headers: Readonly<Record<string, string>>;
  readonly before: string;
  readonly after: string;
  /** Body as the SDK sent it (for the results file). */
  readonly sample: string;
}

export interface BenchSession {
  readonly template: RequestTemplate;
  readonly sessionId: string | undefined;
  readonly protocolVersion: string | undefined;
  close(): Promise<void>;
}

/** Headers undici's fetch adds on the wire to what the SDK transport sets (measured: see bench/NOTES.md). */
const FETCH_DEFAULTS: Record<string, string> = {
  'accept-language': '*',
  'sec-fetch-mode': 'cors',
  'user-agent': 'node',
  'accept-encoding': 'gzip, deflate',
};

/** Which client: the SDK 1.x client (session era), or the v2 SDK client pinned to the stateless 2026-07-28 revision. */
export type ClientEra = 'session' | 'stateless';

export const STATELESS_VERSION = '2026-07-28';

/**
 * Opens a session to `url` with the SDK client (or, stateless, just discovers the server) and captures the measured
 * request. `extra`: headers a stage adds.
 */
export async function openBenchSession(url: string, call: BenchCall, extra: Record<string, string> = {}, era: ClientEra = 'session'): Promise<BenchSession> {
  let captured: { headers: Record<string, string>; body: string } | undefined;
  const recording: typeof fetch = async (input, init) => {
    const body = init?.body;
    if (init?.method === 'POST' && typeof body === 'string' && body.includes(`"method":"${call.method}"`)) {
      const headers: Record<string, string> = {};
      new Headers(init.headers).forEach((v, k) => {
        headers[k] = v;
      });
      captured = { headers, body };
    }
    return fetch(input, init);
  };
  const opened = era === 'session' ? await connectSessionEra(url, recording, extra) : await connectStateless(url, recording, extra);
  const { client, transport } = opened;
  if (call.method === 'tools/call') {
    const r = await client.callTool({ name: call.name, arguments: call.arguments });
    if (r.isError) throw new Error(`${url}: tools/call ${call.name} answered an error: ${JSON.stringify(r.content).slice(0, 200)}`);
  } else {
    const r = await client.listTools();
    if (r.tools.length === 0) throw new Error(`${url}: tools/list is empty`);
  }
  if (!captured) throw new Error(`${url}: the SDK client's ${call.method} request was not captured`);
  const span = findTopLevelId(captured.body);
  if (!span) throw new Error(`no top-level id in ${captured.body.slice(0, 200)}`);
  return {
    template: {
      url,
      method: 'POST',
      headers: { ...captured.headers, ...FETCH_DEFAULTS },
      before: captured.body.slice(0, span[0]),
      after: captured.body.slice(span[1]),
      sample: captured.body,
    },
    sessionId: transport.sessionId,
    protocolVersion: transport.protocolVersion,
    close: () => client.close(),
  };
}

interface OpenedClient {
  readonly client: {
    callTool(p: { name: string; arguments: Record<string, unknown> }): Promise<{ isError?: boolean; content?: unknown }>;
    listTools(): Promise<{ tools: unknown[] }>;
    close(): Promise<void>;
  };
  readonly transport: { readonly sessionId?: string | undefined; readonly protocolVersion?: string | undefined };
}

async function connectSessionEra(url: string, fetchFn: typeof fetch, headers: Record<string, string>): Promise<OpenedClient> {
  const client = new Client({ name: 'tollgate-bench', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(url), { fetch: fetchFn, requestInit: { headers } });
  await client.connect(transport);
  return { client: client as unknown as OpenedClient['client'], transport };
}

async function connectStateless(url: string, fetchFn: typeof fetch, headers: Record<string, string>): Promise<OpenedClient> {
  // The v2 SDK is only needed for this era: loaded on demand.
  const v2 = await import('@modelcontextprotocol/client');
  const client = new v2.Client({ name: 'tollgate-bench', version: '1.0.0' }, { capabilities: {}, versionNegotiation: { mode: { pin: STATELESS_VERSION } } });
  const transport = new v2.StreamableHTTPClientTransport(new URL(url), { fetch: fetchFn, requestInit: { headers } });
  await client.connect(transport);
  return { client: client as unknown as OpenedClient['client'], transport: { sessionId: undefined, protocolVersion: STATELESS_VERSION } };
}

/** True when a response body is a JSON-RPC result (not an error), decided from its first keys. */
export function isResult(body: string): boolean {
  return peekOutcome(body.length > 256 ? body.slice(0, 256) : body) === 'result';
}
