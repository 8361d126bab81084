/**
 * A real HTTP upstream for the "echo" test protocol and the forwarder tests (node:http on loopback). By path:
 * - default: answers 200 and streams the request body back as it arrives (`x-echo-*` headers say what it saw);
 * - `/hang`: reads the request, never answers;
 * - `/stall`: answers headers and one chunk, then goes silent;
 * - `/drip`: answers headers, then a chunk every 20 ms until the client goes away;
 * - `/sse`: three SSE events 30 ms apart, then the end;
 * - `/flaky`: 503 on the first request of each `x-echo-key`, 200 afterwards;
 * - `/sink`: reads the whole body, then answers `{"bytes":N,"sha256":".."}` (an upstream that answers after reading).
 * Every request is recorded, with a promise that resolves when its exchange ends and says whether the gateway
 * aborted it (the connection closed before the answer was complete).
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SeenRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingMessage['headers'];
  /** Request body bytes received. */
  bytes: number;
  /** Resolves when the exchange ends: true when it was cut before the answer was complete. */
  readonly ended: Promise<boolean>;
}

export interface EchoServer {
  readonly url: string;
  readonly seen: SeenRequest[];
  close(): Promise<void>;
}

export async function startEchoServer(): Promise<EchoServer> {
  const seen: SeenRequest[] = [];
  const flaky = new Set<string>();
  const server: Server = createServer((req, res) => {
    let resolveEnded!: (aborted: boolean) => void;
    const record: SeenRequest = {
      method: req.method ?? '',
      path: req.url ?? '',
      headers: req.headers,
      bytes: 0,
      ended: new Promise((r) => (resolveEnded = r)),
    };
    seen.push(record);
    res.once('close', () => resolveEnded(!res.writableFinished));
    req.on('data', (c: Buffer) => (record.bytes += c.length));
    const path = (req.url ?? '').split('?')[0]!;
    const seenHeaders = {
      'x-echo-method': record.method,
      'x-echo-path': record.path,
      'x-echo-authorization': req.headers.authorization ?? '',
      'x-echo-cookie': req.headers.cookie ?? '',
      'x-echo-saw-secret': req.headers['x-secret-header'] ?? '',
      'x-upstream-private': 'not for the client',
    };
    switch (path) {
      case '/hang':
        req.resume();
        return;
      case '/stall':
        req.resume();
        res.writeHead(200, { 'content-type': 'application/octet-stream', ...seenHeaders });
        res.write('first chunk');
        return;
      case '/drip': {
        req.resume();
        res.writeHead(200, { 'content-type': 'application/octet-stream', ...seenHeaders });
        const timer = setInterval(() => res.write('drip\n'), 20);
        res.once('close', () => clearInterval(timer));
        return;
      }
      case '/sse': {
        req.resume();
        res.writeHead(200, { 'content-type': 'text/event-stream', ...seenHeaders });
        let n = 0;
        const timer = setInterval(() => {
          n++;
          res.write(`id: ${n}\ndata: event ${n}\n\n`);
          if (n === 3) {
            clearInterval(timer);
            res.end();
          }
        }, 30);
        res.once('close', () => clearInterval(timer));
        return;
      }
      case '/flaky': {
        req.resume();
        const key = String(req.headers['x-echo-key'] ?? '');
        if (!flaky.has(key)) {
          flaky.add(key);
          res.writeHead(503, { 'content-type': 'text/plain' }).end('try again');
          return;
        }
        res.writeHead(200, { 'content-type': 'text/plain', ...seenHeaders }).end('second time lucky');
        return;
      }
      case '/sink': {
        const hash = createHash('sha256');
        let bytes = 0;
        req.on('data', (c: Buffer) => {
          bytes += c.length;
          hash.update(c);
        });
        req.on('end', () => res.writeHead(200, { 'content-type': 'application/json', ...seenHeaders }).end(JSON.stringify({ bytes, sha256: hash.digest('hex') })));
        return;
      }
      default:
        echo(req, res, seenHeaders);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** Streams the request body back as it arrives, with backpressure (nothing is buffered here either). */
function echo(req: IncomingMessage, res: ServerResponse, headers: Record<string, string | string[]>): void {
  res.writeHead(200, { 'content-type': req.headers['content-type'] ?? 'application/octet-stream', ...headers });
  req.pipe(res);
}
