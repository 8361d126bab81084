/**
 * Raw MCP POSTs over node:http, for what an SDK client will not send: duplicated Authorization headers, tokens in the
 * query string, arbitrary bearer strings.
 */
import { request } from 'node:http';

export interface RawResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
  json(): { error?: { code: number; message: string; data?: { code?: string; reason?: string } }; result?: unknown };
}

export const INITIALIZE = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
});

/** POSTs a JSON-RPC body; `authorization` may be repeated (each value becomes its own header line). */
export function rawPost(url: string, opts: { authorization?: string | string[]; body?: string; headers?: Record<string, string> } = {}): Promise<RawResponse> {
  const u = new URL(url);
  const headers: Record<string, string | string[]> = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    ...opts.headers,
  };
  if (opts.authorization !== undefined) headers.authorization = opts.authorization;
  const body = opts.body ?? INITIALIZE;
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path: `${u.pathname}${u.search}`, method: 'POST', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text, json: () => JSON.parse(text) });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}
