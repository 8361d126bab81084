/**
 * A TCP relay on loopback in front of a real server (a Triton), so a test can make one endpoint of a pool fail the
 * way a crashed or partitioned server does, without restarting the server itself: `down()` refuses new connections
 * and resets the open ones, `up()` listens again on the same port, `cut()` resets the open connections mid-answer.
 * It counts the bytes each way, and records when the client side (the gateway) closed a connection, so a test sees
 * what the backend saw.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { listenLoopback } from './net.ts';

export interface TcpProxy {
  readonly url: string;
  /** Bytes received from clients (requests), in all. */
  readonly fromClients: () => number;
  /** Bytes received from the server (answers), in all. */
  readonly fromServer: () => number;
  /** Connections the client side closed while the server side was still open (e.g. an aborted stream). */
  readonly clientCloses: () => number;
  /** Refuses connections and resets the open ones. */
  down(): Promise<void>;
  /** Accepts connections again (same port). */
  up(): Promise<void>;
  /** Resets the open connections (both sides), the listener stays. */
  cut(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(target: string): Promise<TcpProxy> {
  const { hostname, port: targetPort } = new URL(target);
  const pairs = new Set<{ client: Socket; server: Socket }>();
  let fromClients = 0;
  let fromServer = 0;
  let clientCloses = 0;
  const onConnection = (client: Socket): void => {
    const server = connect(Number(targetPort), hostname);
    const pair = { client, server };
    pairs.add(pair);
    client.on('data', (d: Buffer) => {
      fromClients += d.length;
    });
    server.on('data', (d: Buffer) => {
      fromServer += d.length;
    });
    client.pipe(server);
    server.pipe(client);
    client.on('close', () => {
      if (!server.destroyed) clientCloses++;
      server.destroy();
      pairs.delete(pair);
    });
    server.on('close', () => client.destroy());
    client.on('error', () => server.destroy());
    server.on('error', () => client.destroy());
  };
  let listener: Server = createServer(onConnection);
  const port = await listenLoopback(listener, 0);
  const cut = (): void => {
    for (const p of pairs) {
      p.client.resetAndDestroy();
      p.server.destroy();
    }
    pairs.clear();
  };
  const closeListener = (): Promise<void> => new Promise((r) => listener.close(() => r()));
  return {
    url: `http://127.0.0.1:${port}`,
    fromClients: () => fromClients,
    fromServer: () => fromServer,
    clientCloses: () => clientCloses,
    cut,
    async down() {
      const closed = closeListener();
      cut();
      await closed;
    },
    async up() {
      listener = createServer(onConnection);
      await listenLoopback(listener, port);
    },
    async close() {
      const closed = listener.listening ? closeListener() : Promise.resolve();
      cut();
      await closed;
    },
  };
}
