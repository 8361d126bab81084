/**
 * A local HTTP server publishing JSON documents that tests change at will: SPIFFE https_web bundle endpoints, OIDC
 * discovery documents and JWKS, a Kubernetes issuer's JWKS. Counts GETs per path.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface JsonServer {
  readonly url: string;
  set(path: string, doc: unknown): void;
  /** Answer this path with an HTTP error (to test that the last good document is kept). */
  fail(path: string, status?: number): void;
  hits(path: string): number;
  close(): Promise<void>;
}

export async function startJsonServer(): Promise<JsonServer> {
  const docs = new Map<string, { status: number; body: string }>();
  const hits = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const doc = docs.get(path);
    if (!doc) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(doc.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(doc.body) }).end(doc.body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    set: (path, doc) => docs.set(path, { status: 200, body: JSON.stringify(doc) }),
    fail: (path, status = 503) => docs.set(path, { status, body: '{"error":"down"}' }),
    hits: (path) => hits.get(path) ?? 0,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
