/**
 * Real SPIRE: two spire-server processes (trust domains a.test and b.test) started here with temporary configs.
 * `spire-server jwt mint` issues real JWT-SVIDs, `spire-server bundle show -format spiffe` exports a.test's bundle,
 * and the gateway, trusting a.test only, accepts a.test's SVID over MCP (official SDK client) and refuses b.test's.
 * No spire-server binary means failure, not a skip (scripts/install-tools.sh builds it).
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectClient, mcpBackend, route, startTestGateway, type TestGateway, withIdentity } from '../helpers/gateway.ts';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { rawPost } from '../helpers/raw-http.ts';

const SPIRE = join(process.env.TOLLGATE_CACHE ?? join(homedir(), '.cache', 'tollgate'), 'bin', 'spire-server');
const AUD = 'https://gw.test';
const run = promisify(execFile);

interface Spire {
  readonly trustDomain: string;
  readonly socket: string;
  readonly process: ChildProcess;
}

let root: string;
const servers: Spire[] = [];
let fixture: FixtureServer;
let gw: TestGateway;
let tokenA: string;
let tokenB: string;

/** A free loopback port (spire-server treats bind_port 0 as its default 8081). */
async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

async function startSpire(trustDomain: string): Promise<Spire> {
  const dir = join(root, trustDomain);
  mkdirSync(join(dir, 'data'), { recursive: true });
  const socket = join(dir, 'api.sock');
  const conf = join(dir, 'server.conf');
  writeFileSync(
    conf,
    `server {
  bind_address = "127.0.0.1"
  bind_port = "${await freePort()}"
  socket_path = "${socket}"
  trust_domain = "${trustDomain}"
  data_dir = "${join(dir, 'data')}"
  log_level = "WARN"
  ca_ttl = "24h"
  default_jwt_svid_ttl = "1h"
}
plugins {
  DataStore "sql" {
    plugin_data {
      database_type = "sqlite3"
      connection_string = "${join(dir, 'data', 'datastore.sqlite3')}"
    }
  }
  KeyManager "memory" {
    plugin_data {}
  }
  NodeAttestor "join_token" {
    plugin_data {}
  }
}
`,
  );
  const child = spawn(SPIRE, ['run', '-config', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  const keep = (c: Buffer): void => {
    stderr = (stderr + c.toString()).slice(-4000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const spire = { trustDomain, socket, process: child };
  servers.push(spire);
  const until = Date.now() + 30_000;
  for (;;) {
    try {
      await run(SPIRE, ['healthcheck', '-socketPath', socket]);
      return spire;
    } catch {
      if (child.exitCode !== null) throw new Error(`spire-server for ${trustDomain} exited: ${stderr}`);
      if (Date.now() > until) throw new Error(`spire-server for ${trustDomain} not healthy after 30s: ${stderr}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

async function mint(spire: Spire, spiffeId: string): Promise<string> {
  const { stdout } = await run(SPIRE, ['jwt', 'mint', '-socketPath', spire.socket, '-spiffeID', spiffeId, '-audience', `${AUD}/mcp`, '-ttl', '10m']);
  return stdout.trim();
}

function header(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

beforeAll(async () => {
  if (!existsSync(SPIRE)) throw new Error(`spire-server not found at ${SPIRE}: run scripts/install-tools.sh`);
  root = mkdtempSync(join(tmpdir(), 'tollgate-spire-'));
  const [a, b] = await Promise.all([startSpire('a.test'), startSpire('b.test')]);
  const { stdout: bundle } = await run(SPIRE, ['bundle', 'show', '-socketPath', a!.socket, '-format', 'spiffe']);
  tokenA = await mint(a!, 'spiffe://a.test/agents/planner');
  tokenB = await mint(b!, 'spiffe://b.test/agents/planner');
  fixture = await startHttpMcpServer({ name: 'fixture' });
  gw = await startTestGateway(
    { 'a.test.bundle.json': bundle, 'mcp.yaml': mcpBackend('fixture', { url: fixture.url }) + route('mcp', '/mcp', ['fixture']) },
    {
      gatewayYaml: withIdentity(`    audiences: [${AUD}]
    trustDomains:
      - { name: a.test, bundle: { file: a.test.bundle.json } }
`),
    },
  );
}, 90_000);

afterAll(async () => {
  await gw?.stop();
  await fixture?.close();
  for (const s of servers) {
    s.process.kill('SIGTERM');
    if (s.process.exitCode === null) await new Promise((r) => s.process.once('exit', r));
  }
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('real SPIRE JWT-SVIDs', () => {
  it('mints what the notes say: ES256, typ JWT, a kid from the bundle', () => {
    expect(header(tokenA)).toMatchObject({ alg: 'ES256', typ: 'JWT' });
    expect(typeof header(tokenA).kid).toBe('string');
  });

  it('accepts the SVID of the trusted trust domain over MCP (official SDK client)', async () => {
    const client = await connectClient(`${gw.url}/mcp`, { headers: { authorization: `Bearer ${tokenA}` } });
    const sum = await client.callTool({ name: 'fixture__add', arguments: { a: 40, b: 2 } });
    expect(sum.content).toEqual([{ type: 'text', text: '42' }]);
    await client.close();
  });

  it('refuses the SVID of the second, untrusted SPIRE trust domain', async () => {
    await expect(connectClient(`${gw.url}/mcp`, { headers: { authorization: `Bearer ${tokenB}` } })).rejects.toThrow();
    const res = await rawPost(`${gw.url}/mcp`, { authorization: `Bearer ${tokenB}` });
    expect(res.status).toBe(401);
    expect(res.json().error?.data?.reason).toBe('trust domain b.test is not trusted');
  });

  it('refuses b.test SVIDs even when given b.test keys under the name a.test (keys never cross domains)', async () => {
    // Swap b.test's key into a token that claims a.test: its kid is unknown to a.test's bundle.
    const [h, , sig] = tokenB.split('.');
    const claims = JSON.parse(Buffer.from(tokenB.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
    const forged = `${h}.${Buffer.from(JSON.stringify({ ...claims, sub: 'spiffe://a.test/agents/planner' })).toString('base64url')}.${sig}`;
    const res = await rawPost(`${gw.url}/mcp`, { authorization: `Bearer ${forged}` });
    expect(res.status).toBe(401);
  });
});
