/**
 * The admin listener: a listener of its own (loopback by default, its own port) serving the operational endpoints
 * and, only here, the operator console. Started by main.ts when `admin.listener.port` or TOLLGATE_ADMIN_PORT is set.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getRequestListener } from '@hono/node-server';
import type { Gateway } from '../gateway/gateway.ts';
import { createAdminApp, type AdminExtension } from './admin.ts';
import { listenOn, sendInternalError } from './io.ts';

export class AdminServer {
  readonly server: Server;

  constructor(gateway: Gateway, extensions: readonly AdminExtension[]) {
    const listener = getRequestListener(createAdminApp(gateway, extensions).fetch, { overrideGlobalObjects: false });
    this.server = createServer({ keepAliveTimeout: 65_000, headersTimeout: 60_000, requestTimeout: 300_000 }, (req, res) => {
      listener(req, res).catch((err: unknown) => {
        gateway.log.error({ err }, 'admin endpoint failed');
        sendInternalError(res);
      });
    });
    this.server.on('clientError', (_err, socket) => socket.destroy());
  }

  listen(port: number, host: string): Promise<AddressInfo> {
    return listenOn(this.server, port, host);
  }

  /** Closes the listener and every connection (live console streams included). */
  close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    return closed;
  }
}
