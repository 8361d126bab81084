/**
 * Server-to-client requests (sampling, elicitation, roots/list, ping) relayed to the client of one downstream
 * session. Federation means two upstreams can use the same request id, so each relayed request gets an id of its
 * own: random (`tg-<128 bits>`), so nobody can guess which ids a session is waiting on, and held in the session's
 * own table, so an answer is only ever taken from that session (whose principal the adapter checked). The client's
 * answer is mapped back to the upstream's own id and handed to whoever is waiting for it (an upstream session, or
 * the gateway bridging a 2026 multi round-trip request).
 */
import { randomBytes } from 'node:crypto';
import { Errors, GatewayError } from '../../core/errors.ts';
import { errorResponse, peekId, spliceId, type RpcId } from './jsonrpc.ts';
import type { McpSession } from './session.ts';
import type { UpstreamSession } from './upstream/types.ts';

interface Waiting {
  readonly upstreamId: RpcId;
  readonly answer: (response: string) => void;
}

/** Default bound on unanswered requests per session: a client that never answers cannot grow gateway memory. */
const MAX_PENDING = 64;

export class ServerRequests {
  private readonly waiting = new Map<string, Waiting>();
  private readonly max: number;

  constructor(max = MAX_PENDING) {
    this.max = max;
  }

  get size(): number {
    return this.waiting.size;
  }

  /**
   * Registers a server-to-client request and returns it re-addressed with a session-unique id, or undefined when
   * too many are pending (the caller answers the upstream with an error).
   */
  outbound(message: string, upstreamId: RpcId, answer: (response: string) => void): string | undefined {
    if (this.waiting.size >= this.max) return undefined;
    const id = `tg-${randomBytes(16).toString('base64url')}`;
    this.waiting.set(id, { upstreamId, answer });
    return spliceId(message, id);
  }

  /** Whether a request with this id is waiting for the client's answer. */
  has(id: RpcId | null): boolean {
    return typeof id === 'string' && this.waiting.has(id);
  }

  /** A client's response: maps its id back and delivers it. False when no such request is pending. */
  inbound(id: RpcId | null, raw: string): boolean {
    if (typeof id !== 'string') return false;
    const w = this.waiting.get(id);
    if (!w) return false;
    this.waiting.delete(id);
    w.answer(spliceId(raw, w.upstreamId));
    return true;
  }

  clear(): void {
    this.waiting.clear();
  }
}

/**
 * Relays a server-to-client request from an upstream to the session's client under a session-unique id; the
 * client's answer goes back to that upstream under the upstream's id. Returns the message to write downstream.
 */
export function relayServerRequest(session: McpSession, up: UpstreamSession, message: string): string | undefined {
  const upstreamId = peekId(message);
  if (upstreamId === undefined || upstreamId === null) return undefined;
  if (!up.respond) return undefined;
  const mapped = session.serverRequests.outbound(message, upstreamId, (response) => up.respond!(response));
  if (mapped === undefined) up.respond(errorResponse(upstreamId, new GatewayError(Errors.MCP_SERVER_REQUEST_REFUSED, 'Too many unanswered requests to this client')));
  return mapped;
}
