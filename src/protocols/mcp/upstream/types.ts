/**
 * The contract between the MCP adapter and an upstream MCP server, whatever its transport.
 *
 * An `McpUpstream` is long-lived (one per configured backend; it survives config reloads when its spec is
 * unchanged). `open()` gives an `UpstreamSession` for one downstream session: a dedicated upstream session for
 * Streamable HTTP, a view of the one shared connection for stdio. Sessions deliver what the upstream sends back in
 * downstream terms: ids and progress tokens are already mapped back when they reach a sink.
 */
import type { GatewayError } from '../../../core/errors.ts';
import type { RpcId, RpcNotification, RpcRequest } from '../jsonrpc.ts';

/** What a client said about itself in initialize, replayed to upstreams. */
export interface ClientHello {
  readonly protocolVersion: string;
  readonly capabilities: Readonly<Record<string, unknown>>;
  readonly clientInfo: Readonly<{ name: string; version: string } & Record<string, unknown>>;
}

export interface InitializeResult {
  readonly protocolVersion: string;
  readonly capabilities: Readonly<Record<string, unknown>>;
  readonly serverInfo: Readonly<{ name: string; version: string } & Record<string, unknown>>;
  readonly instructions?: string;
}

/** Receives what an upstream sends in answer to one request. */
export interface ReplySink {
  /** A message sent before the final response (progress, logging, a server-to-client request). */
  interim(message: string): void;
  /** The final response, carrying the downstream request id. Raw bytes are forwarded untouched. */
  final(message: string | Buffer): void;
  /** The upstream failed before answering. */
  fail(err: GatewayError): void;
}

/** Receives server-initiated messages (the GET stream of Streamable HTTP, unsolicited stdio messages). */
export interface MessageSink {
  message(message: string): void;
}

export interface InflightHandle {
  readonly downstreamId: RpcId;
  /** Stops waiting; tells the upstream with notifications/cancelled when `reason` is given. */
  cancel(reason?: string): void;
}

/** What a replica needs to continue an upstream session another replica opened (sealed into the session id). */
export interface UpstreamResumeState {
  /** The upstream's Mcp-Session-Id. */
  readonly id: string;
  /** The protocol version negotiated with the upstream. */
  readonly v: string;
  /** The upstream's capabilities. */
  readonly c: Readonly<Record<string, unknown>>;
}

export interface UpstreamSession {
  readonly backend: string;
  readonly init: InitializeResult;
  /** False once the session is known to be gone (closed, process died). */
  readonly alive: boolean;
  /**
   * True when every downstream session shares the one upstream connection (stdio): what the upstream keeps per
   * connection (its tasks) is everyone's, so it is not offered.
   */
  readonly shared?: boolean;
  /** Forwards a downstream request. `raw` is the original body when the message is forwarded unchanged. */
  request(msg: RpcRequest, raw: Buffer | undefined, sink: ReplySink): InflightHandle;
  /**
   * A request the gateway makes itself (e.g. list fan-out); resolves with the result or rejects. `signal` cancels it
   * (the upstream is told with notifications/cancelled under the id it was sent).
   */
  call(method: string, params: Record<string, unknown> | undefined, timeoutMs: number, signal?: AbortSignal): Promise<Record<string, unknown>>;
  notify(msg: RpcNotification): void;
  /**
   * Delivers the client's answer to a server-to-client request the upstream made (the serialized JSON-RPC response,
   * its id already mapped back to the upstream's). Upstreams that never make such requests omit it.
   */
  respond?(response: string): void;
  /** State another replica needs to continue this upstream session, when it can be continued at all. */
  resumeState?(): UpstreamResumeState | undefined;
  /** Subscribes to server-initiated messages; returns the unsubscribe function. */
  listen(sink: MessageSink): () => void;
  close(): Promise<void>;
}

export interface UpstreamStatus {
  readonly up: boolean;
  readonly detail?: string | undefined;
}

export interface McpUpstream {
  readonly name: string;
  readonly transport: 'streamable-http' | 'sse' | 'stdio' | 'openapi';
  readonly fingerprint: string;
  status(): UpstreamStatus;
  open(hello: ClientHello): Promise<UpstreamSession>;
  /** Continues an upstream session opened by another replica (no new initialize). */
  resume?(hello: ClientHello, state: UpstreamResumeState): Promise<UpstreamSession>;
  close(): Promise<void>;
}
