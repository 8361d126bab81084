/**
 * The caller's side of a translated HTTP+JSON call (translate.ts): the request is served by the A2A SDK's own REST
 * router of the caller's version (1.0: `restHandler`; 0.3: `legacyRestRouter`, its `/v1/...` paths), the Express
 * middleware the SDK ships for its servers, over the bridge to the agent. The SDK decodes the caller's body and path,
 * encodes the answer (status, body, SSE events) and the agent's errors (HTTP status and error body of the caller's
 * version); nothing is reshaped by hand.
 *
 * The gateway has already read and checked the request (authentication, policy, limits, task ownership, push URL):
 * the router gets the request with its parsed body (`req.body`; Express's body parser skips a request already read),
 * its path under the agent (`/v1` added or removed for the caller's version), and the caller's version in
 * `A2A-Version`. One router per version, loaded on the first REST translation; the bridge of each call reaches it
 * through an AsyncLocalStorage (the router's request handler is fixed when it is built).
 *
 * A gateway error met on the way to the agent (unreachable, timeout) is not written as the SDK's internal error: the
 * error answer the router was about to write is dropped and the gateway's own error is rendered in the REST shape.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { ServerResponse, type IncomingMessage } from 'node:http';
import type { A2ARequestHandler } from '@a2a-js/sdk/server';
import type { RequestHandler, Response } from 'express';
import { Errors, GatewayError } from '../../core/errors.ts';
import type { Exchange } from '../../gateway/adapter.ts';
import type { Handler } from './bridge.ts';
import type { EventSource } from './streams.ts';
import type { A2aVersion } from './methods.ts';

interface Turn {
  readonly handler: Handler;
  /** The gateway error met on the way to the agent, if any. */
  readonly failure: () => GatewayError | undefined;
  /** Ends the call with that error (rendered by the lifecycle, in the REST shape). */
  readonly fail: (err: GatewayError) => void;
}

type App = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;

let routers: Promise<{ readonly current: AsyncLocalStorage<Turn>; readonly apps: Record<A2aVersion, App> }> | undefined;

function load(): NonNullable<typeof routers> {
  return (routers ??= (async () => {
    const [express, v1, v03] = await Promise.all([import('express'), import('@a2a-js/sdk/server/express'), import('@a2a-js/sdk/compat/v0_3/server/express')]);
    const current = new AsyncLocalStorage<Turn>();
    // The router's request handler: the bridge of the call being served.
    const dispatcher = new Proxy({} as Handler, {
      get: (_target, key) => (...args: unknown[]) => (current.getStore()!.handler as unknown as Record<PropertyKey, (...a: unknown[]) => unknown>)[key]!(...args),
    }) as unknown as A2ARequestHandler;
    const make = (router: RequestHandler): App => {
      const app = express.default();
      app.disable('x-powered-by');
      app.set('etag', false);
      const json = app.response.json;
      app.response.json = function (this: Response, body: unknown) {
        const turn = current.getStore();
        const failure = turn?.failure();
        if (turn !== undefined && failure !== undefined && this.statusCode >= 400) {
          turn.fail(failure);
          return this;
        }
        return json.call(this, body);
      };
      app.use(router);
      return app as unknown as App;
    };
    const userBuilder = v1.UserBuilder.noAuthentication;
    return {
      current,
      apps: {
        '1.0': make(v1.restHandler({ requestHandler: dispatcher, userBuilder })),
        '0.3': make(v03.legacyRestRouter({ requestHandler: dispatcher, userBuilder })),
      },
    };
  })());
}

/** The path a REST request has in `version` (0.3: under `/v1`, the extended card at `/v1/card`). */
export function restPathIn(version: A2aVersion, path: string): string {
  const q = path.indexOf('?');
  let p = q < 0 ? path : path.slice(0, q);
  const query = q < 0 ? '' : path.slice(q);
  if (p.startsWith('/v1/')) p = p.slice(3);
  if (version === '1.0') return (p === '/card' ? '/extendedAgentCard' : p) + query;
  return `/v1${p === '/extendedAgentCard' ? '/card' : p}${query}`;
}

/**
 * Serves one translated REST call with the SDK's router of the caller's version; resolves when it is answered.
 * A stream (`message:stream`, `tasks/{id}:subscribe`) is not written by the router to the caller: the router writes
 * to a sink whose events `relay` passes on (resumably, with keep-alive comments: translate.ts), the answer before
 * a stream (an error) is copied to the caller.
 */
export async function serveRest(x: Exchange, handler: Handler, version: A2aVersion, path: string, body: unknown, failure: () => GatewayError | undefined, relay: (source: EventSource) => Promise<void>): Promise<void> {
  const { req, res } = x;
  const { current, apps } = await load();
  const url = req.url;
  req.url = restPathIn(version, path);
  req.headers['a2a-version'] = version;
  (req as IncomingMessage & { body?: unknown }).body = version === '0.3' ? legacyRestBody(req.method ?? 'GET', req.url, body) : body;
  const streams = STREAM_PATH.test(req.url.split('?', 1)[0]!);
  try {
    await new Promise<void>((resolve, reject) => {
      const out = streams ? routerSink(req, res, relay, failure, resolve, reject) : res;
      if (!streams) res.once('close', resolve);
      const turn: Turn = { handler, failure, fail: reject };
      current.run(turn, () =>
        apps[version](req, out, (err?: unknown) => {
          if (err instanceof GatewayError) reject(err);
          else if (err !== undefined && err !== 'router') reject(new GatewayError(Errors.INTERNAL, (err as Error).message ?? String(err)));
          else reject(new GatewayError(Errors.NOT_FOUND, `No A2A ${version} endpoint ${req.method ?? 'GET'} ${path}`));
        }),
      );
    });
  } finally {
    req.url = url;
  }
}

const STREAM_PATH = /:(stream|subscribe)$/;

const PUSH_CONFIGS_PATH = /^\/v1\/tasks\/[^/]+\/pushNotificationConfigs$/;

/**
 * A 0.3 REST body as the SDK's 0.3 router reads it. Creating a push config: the 0.3 proto maps
 * `POST /v1/{parent=tasks/*}/pushNotificationConfigs` with `body: "config"` (the TaskPushNotificationConfig), which
 * the JS SDK's router decodes; a2a-python 0.3's client (and server) send the whole CreateTaskPushNotificationConfig
 * request instead (`{parent, configId, config}`): its `config` is the body the router reads.
 */
function legacyRestBody(method: string, url: string, body: unknown): unknown {
  if (method !== 'POST' || !PUSH_CONFIGS_PATH.test(url.split('?', 1)[0]!) || typeof body !== 'object' || body === null) return body;
  const b = body as Record<string, unknown>;
  const config = b.config;
  if (b.pushNotificationConfig !== undefined || typeof config !== 'object' || config === null) return body;
  return config;
}

/**
 * The response the router writes a stream to. Its SSE events (one `res.write` each: `data: <json>`, an error event
 * `event: error` too) become an EventSource that `relay` reads once the router flushed the stream's headers; an
 * answer that is not a stream (an error before the first event) is copied to the caller as it is.
 */
function routerSink(req: IncomingMessage, res: ServerResponse, relay: (source: EventSource) => Promise<void>, failure: () => GatewayError | undefined, resolve: () => void, reject: (err: unknown) => void): ServerResponse {
  const sink = new ServerResponse(req);
  let ended = false;
  let relaying: Promise<void> | undefined;
  const queued: string[] = [];
  let deliver: ((e: { readonly data: string }) => unknown) | undefined;
  let finish: (() => void) | undefined;
  let aborted: GatewayError | undefined;
  const eventData = (chunk: string): string =>
    chunk
      .split('\n')
      .filter((l) => l.startsWith('data:'))
      .map((l) => l.slice(l.startsWith('data: ') ? 6 : 5))
      .join('\n');
  const start = (): void => {
    relaying ??= relay({
      events: (onEvent) =>
        new Promise<void>((done, fail) => {
          for (const data of queued.splice(0)) onEvent({ data });
          deliver = onEvent;
          finish = () => (aborted === undefined ? done() : fail(aborted));
          if (ended) finish();
        }),
      // `relay` aborts the agent's streams too (translate.ts): the router's stream then ends.
      abort: (reason) => void (aborted ??= reason),
    }).then(resolve, reject);
  };
  const own = sink as unknown as Record<string, unknown>;
  own.flushHeaders = () => start();
  own.write = (chunk: unknown): boolean => {
    if (relaying === undefined) start();
    if (aborted !== undefined) return true;
    const text = String(chunk);
    if (text.startsWith('event: error')) {
      // The stream failed after its first event: it breaks (a REST stream has no in-band error the feed could
      // buffer), and the client sees it did not end cleanly (it may resume).
      aborted = failure() ?? new GatewayError(Errors.A2A_INVALID_AGENT_RESPONSE, `The translated stream failed: ${eventData(text).slice(0, 200)}`);
      return true;
    }
    const data = eventData(text);
    if (data !== '') {
      if (deliver !== undefined) deliver({ data });
      else queued.push(data);
    }
    return true;
  };
  own.end = (chunk?: unknown): ServerResponse => {
    if (ended) return sink;
    ended = true;
    if (relaying !== undefined) {
      finish?.();
      return sink;
    }
    // Not a stream: the router's answer (status, headers, body) goes to the caller as it is (a resumed client's
    // stream is open already: it breaks, and the client may subscribe afresh).
    res.once('close', resolve);
    if (res.headersSent) return void res.destroy(), sink;
    res.writeHead(sink.statusCode, sink.getHeaders());
    res.end(typeof chunk === 'string' || chunk instanceof Uint8Array ? chunk : undefined);
    return sink;
  };
  Object.defineProperty(sink, 'writableEnded', { get: () => ended });
  Object.defineProperty(sink, 'headersSent', { get: () => relaying !== undefined || ended });
  return sink;
}
