/**
 * One replica of a pooled HTTP backend, for pool tests (node:http on loopback, a fixed port once started so it can
 * be stopped and started again at the same address). By path:
 * - `GET /health`: `health` (200 by default; set it to 503 to fail the health checks);
 * - `/id`: answers 200 with the replica's name;
 * - `/hold`: answers headers and a first chunk, then holds the response open until `releaseHeld()`;
 * - `/fail`: answers 500;
 * - `/break`: answers headers and a chunk, then destroys the connection (a body that breaks).
 * Every request but health probes is counted by path in `hits`; probes are counted in `probes`.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReplicaServer {
  readonly name: string;
  readonly url: string;
  readonly port: number;
  /** Requests by path (health probes excepted). */
  readonly hits: Map<string, number>;
  probes: number;
  /** Status GET /health answers. */
  health: number;
  /** Responses of /hold still open. */
  readonly held: number;
  releaseHeld(): void;
  /** Stops listening and cuts every connection (the replica is gone: connections are refused). */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
}

export async function startReplica(name: string): Promise<ReplicaServer> {
  const hits = new Map<string, number>();
  const held = new Set<ServerResponse>();
  const count = (path: string): void => {
    hits.set(path, (hits.get(path) ?? 0) + 1);
  };
  let server: Server | undefined;
  let port = 0;
  const replica = {
    name,
    url: '',
    port: 0,
    hits,
    probes: 0,
    health: 200,
    get held(): number {
      return held.size;
    },
    releaseHeld(): void {
      for (const res of held) res.end('released\n');
      held.clear();
    },
    async stop(): Promise<void> {
      const s = server;
      if (s === undefined) return;
      server = undefined;
      held.clear();
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    },
    async start(): Promise<void> {
      const s = createServer((req, res) => {
        const path = (req.url ?? '').split('?')[0]!;
        req.resume();
        if (path === '/health') {
          replica.probes++;
          res.writeHead(replica.health, { 'content-type': 'text/plain' }).end(replica.health === 200 ? 'ok' : 'not ready');
          return;
        }
        count(path);
        switch (path) {
          case '/hold':
            res.writeHead(200, { 'content-type': 'text/plain', 'x-replica': name });
            res.write(`${name} holding\n`);
            held.add(res);
            res.once('close', () => held.delete(res));
            return;
          case '/fail':
            res.writeHead(500, { 'content-type': 'text/plain', 'x-replica': name }).end('failed');
            return;
          case '/break':
            res.writeHead(200, { 'content-type': 'text/plain', 'x-replica': name });
            res.write('partial');
            setTimeout(() => res.socket?.destroy(), 5);
            return;
          default:
            res.writeHead(200, { 'content-type': 'text/plain', 'x-replica': name }).end(name);
        }
      });
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(port, '127.0.0.1', () => {
          s.off('error', reject);
          resolve();
        });
      });
      server = s;
      port = (s.address() as AddressInfo).port;
      replica.port = port;
      replica.url = `http://127.0.0.1:${port}`;
    },
  };
  await replica.start();
  return replica;
}
