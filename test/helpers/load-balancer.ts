/**
 * A small HTTP load balancer in front of gateway replicas, as a Kubernetes Service or an L7 proxy would be: round
 * robin per request (no session affinity: consecutive requests of one MCP session land on different replicas),
 * responses streamed through (SSE included), a backend that refuses the connection is skipped for that request and
 * the request goes to the next one (nothing was accepted, so the retry is safe, as Envoy's connect-failure retry).
 * Endpoints can be removed, as the endpoints controller does when a pod starts terminating.
 */
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface LoadBalancer {
  readonly url: string;
  /** Requests answered per backend (by the backend's URL). */
  readonly served: Map<string, number>;
  /** For each MCP session id seen in a request header: the backends that served it. */
  readonly sessions: Map<string, Set<string>>;
  /** Stops routing new requests to a backend (its endpoint removed). */
  remove(backend: string): void;
  /** Routes requests to one more backend (an endpoint added: a replica became ready). */
  add(backend: string): void;
  close(): Promise<void>;
}

export async function startLoadBalancer(backends: readonly string[]): Promise<LoadBalancer> {
  const active = [...backends];
  let next = 0;
  const served = new Map<string, number>();
  const sessions = new Map<string, Set<string>>();
  const sockets = new Set<import('node:net').Socket>();

  const forward = (req: IncomingMessage, res: ServerResponse, body: Buffer, tried: Set<string>): void => {
    const candidates = active.filter((b) => !tried.has(b));
    if (candidates.length === 0) {
      res.writeHead(503, { 'content-type': 'text/plain' }).end('no backend available');
      return;
    }
    const backend = candidates[next++ % candidates.length]!;
    tried.add(backend);
    const target = new URL(req.url ?? '/', backend);
    const headers = { ...req.headers, host: target.host };
    const up = request(target, { method: req.method, headers }, (upRes) => {
      served.set(backend, (served.get(backend) ?? 0) + 1);
      const session = req.headers['mcp-session-id'];
      if (typeof session === 'string') {
        let set = sessions.get(session);
        if (!set) sessions.set(session, (set = new Set()));
        set.add(backend);
      }
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      upRes.pipe(res);
      upRes.on('error', () => res.destroy());
    });
    up.on('error', (err: NodeJS.ErrnoException) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      // Connection refused: the replica is gone or not listening yet; nothing reached it, try the next one.
      if (err.code === 'ECONNREFUSED') return forward(req, res, body, tried);
      res.writeHead(502, { 'content-type': 'text/plain' }).end(`upstream ${err.code ?? err.message}`);
    });
    res.on('close', () => {
      if (!res.writableFinished) up.destroy();
    });
    up.end(body);
  };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => forward(req, res, Buffer.concat(chunks), new Set()));
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    served,
    sessions,
    remove: (backend) => {
      const i = active.indexOf(backend);
      if (i >= 0) active.splice(i, 1);
    },
    add: (backend) => {
      if (!active.includes(backend)) active.push(backend);
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
