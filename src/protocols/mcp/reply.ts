/**
 * Relays one request's answer downstream: a single JSON body when the upstream's first message is the response,
 * otherwise an SSE stream carrying interim messages (progress, logs, server-to-client requests) and then the
 * response. In the session era the stream's events get ids and are recorded for Last-Event-ID replay.
 */
import type { ServerResponse } from 'node:http';
import type { GatewayError } from '../../core/errors.ts';
import { sendBody } from '../../server/io.ts';
import { SseWriter } from '../../server/sse.ts';
import { errorResponse, peekOutcome, spliceId, type RpcId } from './jsonrpc.ts';
import type { ReplayLog, ReplayStream } from './replay.ts';
import type { ReplySink } from './upstream/types.ts';

export type ReplyOutcome = 'ok' | 'rpc-error' | GatewayError;

export interface ReplyOptions {
  readonly keepAliveMs: number;
  /** Rewrites the final response text (federated resource URIs, a 2026 client's resultType). */
  readonly transform?: ((final: string) => string) | undefined;
  /** Text the final response must contain for `transform` to change it: without it, the bytes go as they came. */
  readonly transformIf?: string | undefined;
  /** Records SSE events for resumability (session era). */
  readonly replay?: ReplayLog | undefined;
  /** Server-to-client requests met in the answer; returns the message to write instead (undefined: drop it). */
  readonly serverRequest?: ((message: string) => string | undefined) | undefined;
  /** Interim notifications this client must not get (a 2026 request's unrequested log messages). */
  readonly drop?: ((message: string) => boolean) | undefined;
  /** Interim notifications as this client gets them (undefined: not at all); see notifications.ts. */
  readonly notification?: ((message: string) => string | undefined) | undefined;
  /** Status for a transport-level error written as a whole body (default: the error's own). */
  readonly errorStatus?: ((err: GatewayError) => number) | undefined;
  /** The JSON-RPC error answer of a gateway error (default: errorResponse; a 2026-07-28 client's codes differ). */
  readonly errorBody?: ((id: RpcId, err: GatewayError) => string) | undefined;
  /** Status for an upstream's JSON-RPC error relayed as a whole body, by its code (default: 200). */
  readonly relayedErrorStatus?: ((code: number | undefined) => number) | undefined;
  readonly onDone: (outcome: ReplyOutcome) => void;
}

export class DownstreamReply implements ReplySink {
  done = false;
  /** Once set, everything the upstream still sends goes there (a parked multi round-trip exchange). */
  redirect: ReplySink | undefined;
  /** Set when this reply continues an exchange begun under another request id: the final id is rewritten. */
  resplice = false;
  private sse: SseWriter | undefined;
  private stream: ReplayStream | undefined;
  private readonly res: ServerResponse;
  readonly id: RpcId;
  private readonly o: ReplyOptions;

  constructor(res: ServerResponse, id: RpcId, options: ReplyOptions) {
    this.res = res;
    this.id = id;
    this.o = options;
  }

  /** True when the answer went out as a resumable SSE stream (a client disconnect is then not the end). */
  get resumable(): boolean {
    return this.stream !== undefined;
  }

  private write(message: string): void {
    if (!this.sse) {
      const replay = this.o.replay;
      this.sse = new SseWriter(this.res, {}, this.o.keepAliveMs, replay?.retryMs === undefined ? undefined : { retryMs: replay.retryMs });
      if (replay) this.stream = replay.open(this.sse);
    }
    if (this.stream) this.stream.send(message);
    else this.sse.send(message);
  }

  interim(message: string): void {
    if (this.redirect) return this.redirect.interim(message);
    if (this.done) return;
    if (this.o.serverRequest && message.includes('"method"') && isRequest(message)) {
      const mapped = this.o.serverRequest(message);
      if (mapped === undefined || this.redirect) return;
      return this.write(mapped);
    }
    if (this.o.drop?.(message)) return;
    if (this.o.notification) {
      const relayed = this.o.notification(message);
      if (relayed !== undefined) this.write(relayed);
      return;
    }
    this.write(message);
  }

  final(message: string | Buffer): void {
    if (this.redirect) return this.redirect.final(message);
    if (this.done) return;
    this.done = true;
    let body: string | Buffer = message;
    if (this.resplice) body = spliceId(message.toString('utf8'), this.id);
    if (this.o.transform && (this.o.transformIf === undefined || body.includes(this.o.transformIf))) body = this.o.transform(body.toString('utf8'));
    const isError = responseIsError(body);
    if (this.sse) {
      this.write(typeof body === 'string' ? body : body.toString('utf8'));
      this.end();
    } else sendBody(this.res, isError && this.o.relayedErrorStatus ? this.o.relayedErrorStatus(errorCode(body)) : 200, 'application/json', body);
    this.o.onDone(isError ? 'rpc-error' : 'ok');
  }

  fail(err: GatewayError): void {
    if (this.redirect) return this.redirect.fail(err);
    if (this.done) return;
    this.done = true;
    const body = (this.o.errorBody ?? errorResponse)(this.id, err);
    if (this.sse) {
      this.write(body);
      this.end();
    } else {
      const status = err.def.inBand ? 200 : (this.o.errorStatus?.(err) ?? err.def.status);
      sendBody(this.res, status, 'application/json', body, err.headers);
    }
    this.o.onDone(err);
  }

  /**
   * Ends the exchange without a response: the request was cancelled, and a receiver SHOULD NOT answer a cancelled
   * request (basic/utilities/cancellation). A stream ends after what it carried; a reply not begun yet goes out as
   * an SSE stream that ends at once (a request's POST must still be answered with a stream or JSON).
   */
  abandon(err: GatewayError): void {
    if (this.redirect) return this.redirect.fail(err);
    if (this.done) return;
    this.done = true;
    if (!this.sse && !this.res.headersSent && !this.res.destroyed) this.sse = new SseWriter(this.res, {}, this.o.keepAliveMs);
    if (this.sse) this.end();
    this.o.onDone(err);
  }

  /** Writes a message on the reply's stream as it is (opening the stream if needed). */
  push(message: string): void {
    if (!this.done) this.write(message);
  }

  /** Answers with a result the gateway built (e.g. an input_required result), ending the exchange downstream. */
  answer(body: string): void {
    if (this.done) return;
    this.done = true;
    if (this.sse) {
      this.write(body);
      this.end();
    } else sendBody(this.res, 200, 'application/json', body);
    this.o.onDone('ok');
  }

  private end(): void {
    if (this.stream) this.stream.end();
    else this.sse!.end();
  }

  /** The client connection went away: a recorded stream keeps recording for a resume. */
  detach(): void {
    this.stream?.detach(this.sse);
  }
}

function isRequest(message: string): boolean {
  // A request has both a method and an id; cheap checks first, parse only when both keys are present.
  if (!message.includes('"id"')) return false;
  try {
    const m = JSON.parse(message) as { method?: unknown; id?: unknown };
    return typeof m.method === 'string' && (typeof m.id === 'string' || typeof m.id === 'number');
  } catch {
    return false;
  }
}

/** Whether a serialized response is a JSON-RPC error (decided from its first top-level keys; bounded cost). */
function responseIsError(body: string | Buffer): boolean {
  // The decisive key comes first or after "jsonrpc"/"id" in every SDK's output; a prefix is enough to find it.
  const head = typeof body === 'string' ? body.slice(0, 256) : body.subarray(0, 256).toString('latin1');
  return peekOutcome(head) === 'error';
}

/** The code of a serialized JSON-RPC error response (undefined when unreadable). */
function errorCode(body: string | Buffer): number | undefined {
  try {
    const code = (JSON.parse(body.toString()) as { error?: { code?: unknown } }).error?.code;
    return typeof code === 'number' ? code : undefined;
  } catch {
    return undefined;
  }
}
