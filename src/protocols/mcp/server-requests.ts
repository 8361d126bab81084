/**
 * Server-to-client requests (sampling, elicitation, roots/list, ping) relayed to the client of one downstream
 * session. Federation means two upstreams can use the same request id, so each relayed request gets an id of its
 * own: random (`tg-<128 bits>`), so nobody can guess which ids a session is waiting on, and held in the session's
 * own table, so an answer is only ever taken from that session (whose principal the adapter checked). The client's
 * answer is mapped back to the upstream's own id and handed to whoever is waiting for it (an upstream session, or
 * the gateway bridging a 2026 multi round-trip request). A request's progress token is replaced by its session id
 * the same way, so that the client's progress reaches the one upstream that asked, under that upstream's token.
 */
import { randomBytes } from 'node:crypto';
import { Errors, GatewayError } from '../../core/errors.ts';
import { errorResponse, peekId, spliceId, type RpcId } from './jsonrpc.ts';
import type { McpSession } from './session.ts';
import type { UpstreamSession } from './upstream/types.ts';

interface Waiting {
  readonly upstreamId: RpcId;
  /** Who asked (an upstream session): its cancellation names the request by its own id. */
  readonly source: UpstreamSession | undefined;
  /** The request's own `_meta.progressToken` (the client was given the session id instead). */
  readonly progressToken: string | number | undefined;
  readonly answer: (response: string) => void;
}

interface ParsedRequest {
  readonly method?: unknown;
  readonly params?: Record<string, unknown>;
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
  outbound(message: string, upstreamId: RpcId, answer: (response: string) => void, source?: UpstreamSession, parsed?: ParsedRequest): string | undefined {
    if (this.waiting.size >= this.max) return undefined;
    const id = `tg-${randomBytes(16).toString('base64url')}`;
    const meta = parsed?.params?._meta as Record<string, unknown> | undefined;
    const token = meta?.progressToken;
    const progressToken = typeof token === 'string' || typeof token === 'number' ? token : undefined;
    this.waiting.set(id, { upstreamId, source, progressToken, answer });
    if (progressToken === undefined) return spliceId(message, id);
    return JSON.stringify({ ...parsed, id, params: { ...parsed!.params, _meta: { ...meta, progressToken: id } } });
  }

  /**
   * The client's progress on a request it was asked (notifications/progress): who asked it and under which token of
   * its own, or undefined when no pending request was given that token.
   */
  progressOf(token: unknown): { source: UpstreamSession; progressToken: string | number } | undefined {
    const w = typeof token === 'string' ? this.waiting.get(token) : undefined;
    return w?.source !== undefined && w.progressToken !== undefined ? { source: w.source, progressToken: w.progressToken } : undefined;
  }

  /**
   * `source` cancelled its request `upstreamId` (notifications/cancelled): the id the client knows it by, now no
   * longer pending, or undefined when `source` has no such request waiting here.
   */
  cancelled(source: UpstreamSession, upstreamId: unknown): string | undefined {
    for (const [id, w] of this.waiting) {
      if (w.source === source && w.upstreamId === upstreamId) {
        this.waiting.delete(id);
        return id;
      }
    }
    return undefined;
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
 * Why the client cannot be asked `method`, or undefined when it can: sampling, roots and elicitation each need the
 * capability the client declared (client/sampling.mdx, roots.mdx, elicitation.mdx: 'Servers MUST NOT send
 * elicitation requests with modes that are not supported by the client'). URL-mode elicitation needs
 * `elicitation.url`; form mode, the default, `elicitation.form` or an empty `elicitation` (form only, for backwards
 * compatibility). Other methods (ping) need none.
 */
export function missingCapability(method: unknown, params: unknown, capabilities: Readonly<Record<string, unknown>>): string | undefined {
  const declared = (v: unknown): boolean => typeof v === 'object' && v !== null;
  switch (method) {
    case 'sampling/createMessage':
      return declared(capabilities.sampling) ? undefined : 'The client did not declare the sampling capability';
    case 'roots/list':
      return declared(capabilities.roots) ? undefined : 'The client did not declare the roots capability';
    case 'elicitation/create': {
      const elicitation = capabilities.elicitation as Record<string, unknown> | undefined;
      if (!declared(elicitation)) return 'The client did not declare the elicitation capability';
      const url = declared(params) && (params as { mode?: unknown }).mode === 'url';
      if (url) return declared(elicitation!.url) ? undefined : 'The client did not declare URL-mode elicitation';
      return Object.keys(elicitation!).length === 0 || declared(elicitation!.form) ? undefined : 'The client did not declare form-mode elicitation';
    }
    default:
      return undefined;
  }
}

/**
 * Relays a server-to-client request from an upstream to the session's client under a session-unique id; the
 * client's answer goes back to that upstream under the upstream's id. Returns the message to write downstream. A
 * request for a capability the client did not declare never reaches it: the upstream is answered -32601.
 */
export function relayServerRequest(session: McpSession, up: UpstreamSession, message: string): string | undefined {
  const upstreamId = peekId(message);
  if (upstreamId === undefined || upstreamId === null) return undefined;
  if (!up.respond) return undefined;
  let parsed: ParsedRequest;
  try {
    parsed = JSON.parse(message) as ParsedRequest;
  } catch {
    return undefined;
  }
  const missing = missingCapability(parsed.method, parsed.params, session.hello.capabilities);
  if (missing !== undefined) {
    up.respond(errorResponse(upstreamId, new GatewayError(Errors.MCP_SERVER_REQUEST_REFUSED, `${String(parsed.method)} not relayed: ${missing}`)));
    return undefined;
  }
  const mapped = session.serverRequests.outbound(message, upstreamId, (response) => up.respond!(response), up, parsed);
  if (mapped === undefined) up.respond(errorResponse(upstreamId, new GatewayError(Errors.MCP_SERVER_REQUEST_REFUSED, 'Too many unanswered requests to this client')));
  return mapped;
}
