/**
 * Multi round-trip requests (2026-07-28, basic/patterns/mrtr.mdx) bridged across protocol eras.
 *
 * - A 2026 client calling a session-era upstream: when the upstream sends a server-to-client request (sampling,
 *   elicitation, roots) during the call, the gateway parks the upstream exchange and answers the client with an
 *   `input_required` result whose `requestState` is sealed (principal, method, name, expiry, exchange id). The
 *   client's retry carries `inputResponses`; the gateway answers the upstream's request with them and the parked
 *   exchange continues on the retry's response. Parked exchanges live on the replica that parked them.
 * - A session-era client calling a 2026 upstream: an `input_required` result becomes server-to-client requests on
 *   the call's SSE stream; once the client answered them all, the gateway retries the upstream request with
 *   `inputResponses` and `requestState` (see `bridgeInputRequired`).
 */
import { randomBytes } from 'node:crypto';
import { Errors, GatewayError } from '../../core/errors.ts';
import type { RpcId, RpcRequest } from './jsonrpc.ts';
import type { Sealer } from './sealer.ts';
import type { ServerRequests } from './server-requests.ts';
import { PrincipalSlots } from '../../core/slots.ts';
import type { InflightHandle, ReplySink, UpstreamSession } from './upstream/types.ts';

/** Marks a requestState the gateway issued (any other value belongs to an upstream and is passed on). */
const STATE_PREFIX = 'tollgate.mrtr.';
/** How long a parked exchange waits for the client's retry. */
const PARK_MS = 120_000;
const MAX_BUFFERED = 256;

interface StateClaims {
  readonly x: string;
  readonly p?: string;
  readonly m: string;
  readonly n?: string;
  readonly e: number;
}

type Buffered = { kind: 'interim'; message: string } | { kind: 'final'; message: string | Buffer } | { kind: 'fail'; err: GatewayError };

/** An upstream exchange waiting for the client's input; also the sink the upstream keeps writing to meanwhile. */
export class ParkedExchange implements ReplySink {
  readonly id = randomBytes(12).toString('base64url');
  readonly up: UpstreamSession;
  handle: InflightHandle | undefined;
  /** inputRequests key -> the upstream's id of the server-to-client request. */
  readonly pending = new Map<string, RpcId>();
  private target: ReplySink | undefined;
  private readonly buffer: Buffered[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly onExpire: () => void;
  private next = 0;

  constructor(up: UpstreamSession, onExpire: () => void) {
    this.up = up;
    this.onExpire = onExpire;
  }

  /** Adds a server-to-client request to ask the client for; returns its inputRequests key. */
  ask(upstreamId: RpcId): string {
    const key = `r${++this.next}`;
    this.pending.set(key, upstreamId);
    return key;
  }

  /** Detaches from the downstream reply: buffers until the retry arrives, or cancels the upstream at expiry. */
  park(): void {
    this.target = undefined;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.handle?.cancel('input not provided in time');
      this.onExpire();
    }, PARK_MS);
    this.timer.unref();
  }

  /** Continues on the retry's reply: delivers what arrived meanwhile, then everything new. */
  attach(target: ReplySink): void {
    clearTimeout(this.timer);
    this.target = target;
    for (const b of this.buffer.splice(0)) {
      if (b.kind === 'interim') target.interim(b.message);
      else if (b.kind === 'final') target.final(b.message);
      else target.fail(b.err);
    }
  }

  private hold(b: Buffered): void {
    if (this.buffer.length < MAX_BUFFERED || b.kind !== 'interim') this.buffer.push(b);
  }

  interim(message: string): void {
    if (this.target) this.target.interim(message);
    else this.hold({ kind: 'interim', message });
  }

  final(message: string | Buffer): void {
    if (this.target) this.target.final(message);
    else this.hold({ kind: 'final', message });
  }

  fail(err: GatewayError): void {
    if (this.target) this.target.fail(err);
    else this.hold({ kind: 'fail', err });
  }
}

/** Parked exchanges of this replica, addressed by sealed requestState values. */
export class ParkedExchanges {
  private readonly sealer: Sealer;
  private readonly parked = new Map<string, ParkedExchange>();
  /** Exchanges parked per principal (mcp.limits.parkedPerPrincipal), and the slot each holds while parked. */
  private readonly slots = new PrincipalSlots();
  private readonly held = new Map<string, { principal: string | undefined; release: () => void }>();

  constructor(sealer: Sealer) {
    this.sealer = sealer;
  }

  get size(): number {
    return this.parked.size;
  }

  /** Parks a new exchange for `principal`; undefined when it has `cap` parked already (the newcomer is refused). */
  create(up: UpstreamSession, principal: string | undefined, cap: number): ParkedExchange | undefined {
    const release = this.slots.take(principal, cap);
    if (!release) return undefined;
    const x: ParkedExchange = new ParkedExchange(up, () => this.forget(x.id));
    this.parked.set(x.id, x);
    this.held.set(x.id, { principal, release });
    return x;
  }

  private forget(id: string): void {
    this.parked.delete(id);
    this.held.get(id)?.release();
    this.held.delete(id);
  }

  /** The sealed requestState naming a parked exchange, bound to the caller and the request it belongs to. */
  state(x: ParkedExchange, principal: string | undefined, method: string, name: string | undefined): string {
    const claims: StateClaims = { x: x.id, ...(principal !== undefined && { p: principal }), m: method, ...(name !== undefined && { n: name }), e: Date.now() + PARK_MS };
    return STATE_PREFIX + this.sealer.seal(claims);
  }

  /** Whether a requestState is one the gateway issued (otherwise it belongs to an upstream and is passed on). */
  static isOurs(state: unknown): state is string {
    return typeof state === 'string' && state.startsWith(STATE_PREFIX);
  }

  /** Takes the parked exchange a retry names; throws TG_MCP_REQUEST_STATE_INVALID when it is not this caller's. */
  take(state: string, principal: string | undefined, method: string, name: string | undefined): ParkedExchange {
    const c = this.sealer.open(state.slice(STATE_PREFIX.length)) as StateClaims | undefined;
    const x = c ? this.parked.get(c.x) : undefined;
    if (!c || !x || c.e < Date.now() || c.p !== principal || c.m !== method || c.n !== name) {
      throw new GatewayError(Errors.MCP_REQUEST_STATE_INVALID);
    }
    this.forget(c.x);
    return x;
  }

  /** Re-registers an exchange that needs another round trip (it keeps its place under its principal's cap). */
  keep(x: ParkedExchange, principal: string | undefined): void {
    this.parked.set(x.id, x);
    this.held.set(x.id, { principal, release: this.slots.take(principal, Number.POSITIVE_INFINITY)! });
  }
}

/**
 * Session-era client, 2026 upstream: turns each `input_required` result into server-to-client requests on the
 * call's stream and retries the upstream request with the answers, until the upstream completes.
 * Returns the sink to give the upstream for `msg`; `push` writes a message on the downstream stream as is.
 */
export function bridgeInputRequired(opts: {
  msg: RpcRequest;
  up: UpstreamSession;
  downstream: ReplySink;
  push: (message: string) => void;
  requests: ServerRequests;
  track: (handle: InflightHandle) => void;
}): ReplySink {
  const { msg, up, downstream, push, requests, track } = opts;
  const sink: ReplySink = {
    interim: (m) => downstream.interim(m),
    fail: (e) => downstream.fail(e),
    final: (m) => {
      const text = m.toString();
      if (!text.includes('"input_required"')) return downstream.final(m);
      let result: { resultType?: unknown; inputRequests?: Record<string, { method?: unknown; params?: unknown }>; requestState?: unknown };
      try {
        result = (JSON.parse(text) as { result?: typeof result }).result ?? {};
      } catch {
        return downstream.final(m);
      }
      if (result.resultType !== 'input_required') return downstream.final(m);
      const asks = Object.entries(result.inputRequests ?? {}).filter(([, r]) => typeof r?.method === 'string');
      const answers: Record<string, unknown> = {};
      let open = asks.length;
      const retry = (): void => {
        const params: Record<string, unknown> = { ...msg.params, inputResponses: answers };
        if (typeof result.requestState === 'string') params.requestState = result.requestState;
        else delete params.requestState;
        track(up.request({ ...msg, params }, undefined, sink));
      };
      if (open === 0) return retry();
      for (const [key, r] of asks) {
        const message = JSON.stringify({ jsonrpc: '2.0', id: 0, method: r.method, ...(r.params !== undefined && { params: r.params }) });
        const mapped = requests.outbound(message, key, (response) => {
          const parsed = JSON.parse(response) as { result?: unknown };
          if (parsed.result !== undefined) answers[key] = parsed.result;
          if (--open === 0) retry();
        });
        if (mapped === undefined) return downstream.fail(new GatewayError(Errors.MCP_SERVER_REQUEST_REFUSED, 'Too many unanswered server requests'));
        push(mapped);
      }
    },
  };
  return sink;
}
