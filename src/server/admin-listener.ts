/**
 * The admin listener: a listener of its own (loopback by default, its own port) serving the operational endpoints
 * and, only here, the operator console. Started by main.ts when `admin.listener.port` or TOLLGATE_ADMIN_PORT is set.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getRequestListener } from '@hono/node-server';
import { Errors, GatewayError, jsonRpcErrorObject } from '../core/errors.ts';
import type { Gateway } from '../gateway/gateway.ts';
import { createAdminApp, type AdminExtension } from './admin.ts';
import { sendJson } from './io.ts';

export class AdminServer {
  readonly server: Server;

  constructor(gateway: Gateway, extensions: readonly AdminExtension[]) {
    const listener = getRequestListener(createAdminApp(gateway, extensions).fetch, { overrideGlobalObjects: false });
    this.server = createServer({ keepAliveTimeout: 65_000, headersTimeout: 60_000, requestTimeout: 300_000 }, (req, res) => {
      listener(req, res).catch((err: unknown) => {
        gateway.log.error({ err }, 'admin endpoint failed');
        if (!res.headersSent) sendJson(res, 500, { error: jsonRpcErrorObject(new GatewayError(Errors.INTERNAL)) });
      });
    });
    this.server.on('clientError', (_err, socket) => socket.destroy());
  }

  listen(port: number, host: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  /** Closes the listener and every connection (live console streams included). */
  close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    return closed;
  }
}
