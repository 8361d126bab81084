/**
 * The contract between the gateway and a protocol. A protocol folder (src/protocols/<name>/) exports one
 * `ProtocolDefinition`; main.ts registers it (src/gateway/registry.ts) and the gateway creates its adapter, routes
 * to it by `rule.protocol`, and asks it for readiness, drain, close and reconfigure. The gateway never imports a
 * protocol: adding one is adding a folder and a line in src/protocols/builtin.ts (Envoy's REGISTER_FACTORY, in
 * Tollgate's terms).
 *
 * An adapter only translates its wire format to and from a `Call`: the Call's lifecycle (create, admit, settle,
 * telemetry, access log) is `ctx.calls` (src/gateway/lifecycle.ts), and HTTP upstreams are reached through the one
 * forwarder (src/upstream/forwarder.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ConfigSnapshot } from '../config/load.ts';
import type { RouteMatch } from '../config/routes.ts';
import type { Call } from '../core/call.ts';
import type { GatewayError } from '../core/errors.ts';
import type { RedisStore } from '../store/redis.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { UpstreamCredentials } from '../upstream/credentials.ts';
import type { CallLifecycle } from './lifecycle.ts';
import type { GatewayState } from './state.ts';

/** One HTTP exchange that matched a rule of the adapter's protocol. */
export interface Exchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly match: RouteMatch;
  /** The snapshot and pipeline in force when the request arrived (it finishes under them). */
  readonly state: GatewayState;
}

/** Where an error is written: the response, and what the adapter knows of the request so far. */
export interface ErrorTarget {
  readonly res: ServerResponse;
  readonly req?: IncomingMessage | undefined;
  /** The call, when one exists (a JSON-RPC adapter answers under its `rpcId`). */
  readonly call?: Call | undefined;
}

/** One upstream as /readyz shows it. */
export interface UpstreamReadiness {
  readonly up: boolean;
  readonly transport: string;
  readonly detail?: string | undefined;
}

export interface ProtocolAdapter {
  /** The `protocol` values (Backend spec.protocol) this adapter serves. */
  readonly protocols: readonly string[];
  /** Serves one matched request. Must answer it (or hand it to the lifecycle, which does) and never throw async. */
  handle(exchange: Exchange): void;
  /** Writes `err` in this protocol's shape (JSON-RPC error, A2A REST error, OpenAI error object, KServe, HTTP). */
  renderError(err: GatewayError, to: ErrorTarget): void;
  /** The adapter's upstreams for /readyz, by backend name. */
  upstreams(): Record<string, UpstreamReadiness>;
  /** Live client sessions the adapter holds (for /readyz and metrics); 0 for stateless protocols. */
  sessions(): number;
  /** A new snapshot is in force (the adapter keeps what did not change: sessions, pools, processes). */
  reconfigure(snapshot: ConfigSnapshot): void;
  /** Shutdown has begun: end what carries no in-flight call (idle server streams) so the drain only waits for calls. */
  drain(): void;
  /** Releases everything (after the drain). */
  close(): Promise<void>;
}

/** What the gateway gives an adapter when it creates it. */
export interface AdapterContext {
  readonly log: Logger;
  /** The state in force now (requests use the one in their Exchange). */
  state(): GatewayState;
  /** The one call lifecycle: create the Call, admit, settle, telemetry, access log, refusals. */
  readonly calls: CallLifecycle;
  /** Tollgate's own credentials for upstream calls (never the caller's). */
  readonly credentials: UpstreamCredentials | undefined;
  /** The shared Redis store when `spec.redis` is configured (state that must hold across replicas), else undefined. */
  readonly store?: RedisStore | undefined;
}

/** A protocol as registered: its name, the protocol values it serves, and how its adapter is made. */
export interface ProtocolDefinition {
  readonly name: string;
  readonly protocols: readonly string[];
  create(ctx: AdapterContext): ProtocolAdapter;
}
