/**
 * A TCP proxy on loopback in front of a real server (an SDK MCP server, the vLLM-format backend, Redis) that injects
 * network faults on demand, for the resilience tests:
 *
 * - `pass`: bytes flow both ways;
 * - `stall`: connections stay open but nothing flows any more (a hung peer, a black-holed network: bytes wait, as
 *   TCP keeps them, and flow again on `pass`); new ones are accepted and held;
 * - `reset`: every open connection is reset (RST) now, and new ones as soon as they arrive;
 * - `drop`: every open connection is closed cleanly (FIN) now, and new ones at once;
 * - `garbage`: new connections get bytes that are not the protocol (open ones are closed);
 * - `slow`: every chunk is delayed by `slowMs` in each direction.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { listenLoopback } from './net.ts';

export type FaultMode = 'pass' | 'stall' | 'reset' | 'drop' | 'garbage' | 'slow';

export interface FaultProxy {
  readonly port: number;
  readonly url: string;
  /** Connections accepted so far. */
  readonly accepted: number;
  mode(m: FaultMode, opts?: { slowMs?: number; garbage?: Buffer | string }): void;
  close(): Promise<void>;
}

interface Pair {
  readonly client: Socket;
  readonly server: Socket;
}

export async function startFaultProxy(target: { host?: string; port: number }, scheme = 'http'): Promise<FaultProxy> {
  const host = target.host ?? '127.0.0.1';
  let mode: FaultMode = 'pass';
  let slowMs = 0;
  let garbage: Buffer = Buffer.from('\x00\xffnot the protocol you expected\r\n\r\n{{{{');
  let accepted = 0;
  const pairs = new Set<Pair>();
  const sockets = new Set<Socket>();

  const relay = (pair: Pair, from: Socket, to: Socket): void => {
    from.on('data', (chunk: Buffer) => {
      if (mode === 'stall') {
        // Held, not lost (TCP would retransmit): flows again when the stall ends.
        from.pause();
        from.unshift(chunk);
        return;
      }
      if (mode === 'slow' && slowMs > 0) {
        from.pause();
        setTimeout(() => {
          if (!to.destroyed) to.write(chunk);
          from.resume();
        }, slowMs);
        return;
      }
      if (!to.destroyed && !to.write(chunk)) {
        from.pause();
        to.once('drain', () => from.resume());
      }
    });
    from.on('end', () => to.end());
    from.on('error', () => to.destroy());
    from.on('close', () => {
      to.destroy();
      pairs.delete(pair);
    });
  };

  const server: Server = createServer((client) => {
    accepted++;
    sockets.add(client);
    client.once('close', () => sockets.delete(client));
    client.on('error', () => {});
    if (mode === 'reset') return void client.resetAndDestroy();
    if (mode === 'drop') return void client.end();
    if (mode === 'garbage') return void client.end(garbage);
    const upstream = connect({ host, port: target.port });
    sockets.add(upstream);
    upstream.once('close', () => sockets.delete(upstream));
    upstream.on('error', () => client.destroy());
    const pair: Pair = { client, server: upstream };
    pairs.add(pair);
    relay(pair, client, upstream);
    relay(pair, upstream, client);
  });
  const port = await listenLoopback(server, 0);

  return {
    port,
    url: `${scheme}://127.0.0.1:${port}`,
    get accepted() {
      return accepted;
    },
    mode(m, opts) {
      const wasStalled = mode === 'stall';
      mode = m;
      if (wasStalled && m !== 'stall') for (const p of pairs) (p.client.resume(), p.server.resume());
      slowMs = opts?.slowMs ?? slowMs;
      if (opts?.garbage !== undefined) garbage = Buffer.from(opts.garbage);
      if (m === 'reset' || m === 'drop' || m === 'garbage') {
        for (const p of [...pairs]) {
          if (m === 'reset') p.client.resetAndDestroy();
          else p.client.end();
          p.server.destroy();
        }
        pairs.clear();
      }
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
