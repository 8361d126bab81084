/**
 * What the attack catalogue (test/e2e/security/*.test.ts, one file per defect of issue 12) shares: a gateway run as
 * its own process (`tollgate serve`) with two trust domains, the embedded dev one and a partner domain whose bundle is
 * a file (real ES256 keys, real JWT-SVIDs from each), real SDK upstreams, and reading its audit log back.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';
import type { AuditRecord } from '../../../src/audit/format.ts';
import { queryLog } from '../../../src/audit/query.ts';
import { loadOrCreateDevAuthority, mintDevSvid } from '../../../src/guards/identity/dev.ts';
import { eventually } from '../../helpers/gateway.ts';
import { startGatewayProcess, type GatewayProcess } from '../../helpers/gateway-process.ts';
import { newSigner, nowS, signJwt, spiffeBundle, type Signer } from '../../helpers/jwt.ts';

export const PARTNER_TD = 'partner.test';

export interface SecureGateway {
  readonly proc: GatewayProcess;
  /** Public listener base URL, e.g. http://127.0.0.1:41234. */
  readonly url: string;
  /** Admin listener base URL, when the gateway logged one. */
  readonly adminUrl: string | undefined;
  readonly config: string;
  readonly dataDir: string;
  readonly partnerSigner: Signer;
  /** A dev-trust-domain JWT-SVID for `spiffe://dev.tollgate.local/<name>`, `aud` = the resource URIs of `paths`. */
  dev(name: string, paths?: string[] | string): string;
  /** A partner-trust-domain JWT-SVID for `spiffe://partner.test/<name>`; `header` overrides the JWS header. */
  partner(name: string, paths?: string[] | string, header?: Record<string, unknown>): string;
  /** Every audit record written so far. */
  records(): AuditRecord[];
  /** Waits (generous deadline) for an audit record matching `pred`. */
  record(pred: (r: AuditRecord) => boolean, what: string): Promise<AuditRecord>;
  /** SIGTERM, waits for the exit; returns the exit code. */
  stop(): Promise<number | null>;
}

export interface SecureOptions {
  /** Extra lines of the Gateway spec (YAML, indented two spaces). */
  readonly gatewaySpec?: string;
  /** Other config files (name -> YAML). */
  readonly files: Record<string, string>;
  readonly env?: NodeJS.ProcessEnv;
  /** Reuse this root (config in <root>/routes, data dir <root>/.tollgate). */
  readonly root?: string;
  /** The partner trust domain's signer (to share one between two gateways). */
  readonly partnerSigner?: Signer;
  /** listener.publicUrl (replicas behind one name): tokens then name resources under it. */
  readonly publicUrl?: string;
}

const roots: string[] = [];

export function gatewayYaml(spec = '', publicUrl?: string): string {
  return `apiVersion: tollgate.dev/v1alpha1
kind: Gateway
metadata: { name: security }
spec:
  listener: { host: 127.0.0.1, port: 0${publicUrl ? `, publicUrl: ${publicUrl}` : ''} }
  shutdown: { drainMs: 3000 }
  identity:
    dev: { enabled: true }
    trustDomains:
      - { name: ${PARTNER_TD}, bundle: { file: partner-bundle.json } }
${spec}`;
}

export async function startSecureGateway(o: SecureOptions): Promise<SecureGateway> {
  const root = o.root ?? mkdtempSync(join(tmpdir(), 'tollgate-sec-'));
  if (o.root === undefined) roots.push(root);
  const config = join(root, 'routes');
  mkdirSync(config, { recursive: true });
  const partnerSigner = o.partnerSigner ?? newSigner('ES256', 'partner-1');
  writeFileSync(join(config, 'partner-bundle.json'), JSON.stringify(spiffeBundle([partnerSigner])));
  writeFileSync(join(config, 'gateway.yaml'), gatewayYaml(o.gatewaySpec, o.publicUrl));
  for (const [name, text] of Object.entries(o.files)) writeFileSync(join(config, name), text);
  const dataDir = join(root, '.tollgate');
  // The dev trust domain key exists before the gateway starts (it loads it; tokens minted here verify there).
  const authority = loadOrCreateDevAuthority(dataDir, 'dev.tollgate.local');
  const proc = await startGatewayProcess(config, { ...process.env, TOLLGATE_LOG_LEVEL: 'info', ...o.env });
  const url = proc.url;
  const base = o.publicUrl ?? url;
  const auds = (paths: string[] | string | undefined): string[] => (Array.isArray(paths) ? paths : [paths ?? '/mcp']).map((p) => `${base}${p}`);
  const auditDir = join(dataDir, 'audit');
  const records = (): AuditRecord[] => [...queryLog(auditDir, {})].map((l) => JSON.parse(l) as AuditRecord);
  return {
    proc,
    url,
    adminUrl: proc.adminUrl,
    config,
    dataDir,
    partnerSigner,
    dev: (name, paths) => mintDevSvid(authority, { spiffeId: `spiffe://dev.tollgate.local/${name}`, audiences: auds(paths), ttlSeconds: 600 }),
    partner: (name, paths, header) => signJwt(partnerSigner, { sub: `spiffe://${PARTNER_TD}/${name}`, aud: auds(paths), iat: nowS(), exp: nowS() + 600 }, header),
    records,
    record: async (pred, what) => {
      let found: AuditRecord | undefined;
      await eventually(() => (found = records().find(pred)) !== undefined, 15_000, `audit record: ${what}`);
      return found!;
    },
    stop: async () => {
      if (proc.child.exitCode === null) proc.child.kill('SIGTERM');
      return proc.exited;
    },
  };
}

/** Removes the temporary roots of every gateway started here (afterAll). */
export function cleanRoots(): void {
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
}

export function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

export const MCP_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' } as const;

/** A JSON-RPC POST with fetch; returns status, headers and the parsed body (or text when not JSON). */
export async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; body: Record<string, unknown> | string }> {
  const res = await fetch(url, { method: 'POST', headers: { ...MCP_HEADERS, ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  let parsed: Record<string, unknown> | string = text;
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // SSE or empty
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

/** The stable code in a JSON-RPC error body. */
export function codeOf(body: Record<string, unknown> | string): string | undefined {
  if (typeof body === 'string') return undefined;
  return ((body.error as { data?: { code?: string } } | undefined)?.data?.code);
}

/** `_meta` of a 2026-07-28 request (stateless era), with the mirrored headers it needs. */
export function modernRequest(id: number, method: string, params: Record<string, unknown>, client: { name: string; version: string }): { body: unknown; headers: Record<string, string> } {
  const meta = {
    'io.modelcontextprotocol/protocolVersion': '2026-07-28',
    'io.modelcontextprotocol/clientCapabilities': {},
    'io.modelcontextprotocol/clientInfo': client,
  };
  const headers: Record<string, string> = { 'mcp-protocol-version': '2026-07-28', 'mcp-method': method };
  if (typeof params.name === 'string') headers['mcp-name'] = params.name;
  return { body: { jsonrpc: '2.0', id, method, params: { ...params, _meta: meta } }, headers };
}

export interface GateUpstream {
  readonly url: string;
  /** Calls of `wait` that are in progress. */
  waiting(): number;
  /** Lets every `wait` call in progress finish. */
  release(): void;
  close(): Promise<void>;
}

/**
 * A real SDK MCP server (stateless Streamable HTTP, JSON answers) with `wait` (answers only once the test releases
 * it: an in-flight call the test controls) and `echo`.
 */
export async function startGateUpstream(): Promise<GateUpstream> {
  let waiters: Array<() => void> = [];
  const make = (): McpServer => {
    const server = new McpServer({ name: 'gate', version: '1.0.0' });
    server.registerTool('wait', { description: 'Answers once released', inputSchema: { tag: z.string().optional() } }, async ({ tag }) => {
      await new Promise<void>((r) => waiters.push(r));
      return { content: [{ type: 'text', text: `released ${tag ?? ''}`.trim() }] };
    });
    server.registerTool('echo', { description: 'Echoes', inputSchema: { message: z.string().optional() } }, ({ message }) => ({ content: [{ type: 'text', text: message ?? '' }] }));
    return server;
  };
  const http: HttpServer = createServer((req, res) => {
    void (async () => {
      if (req.method !== 'POST') {
        res.writeHead(405).end();
        return;
      }
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
      const server = make();
      res.on('close', () => {
        void transport.close();
        void server.close();
      });
      await server.connect(transport);
      await transport.handleRequest(req, res, JSON.parse(Buffer.concat(chunks).toString('utf8')));
    })().catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(err));
    });
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`,
    waiting: () => waiters.length,
    release: () => {
      const w = waiters;
      waiters = [];
      for (const f of w) f();
    },
    close: async () => {
      const w = waiters;
      waiters = [];
      for (const f of w) f();
      http.closeAllConnections();
      await new Promise<void>((r) => http.close(() => r()));
    },
  };
}
