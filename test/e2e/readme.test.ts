/**
 * The README's quick start, as written: `npm start` serves the committed example config, and the first-call
 * commands (mint a dev SVID, call through the MCP Inspector CLI) work against it. The commands are read from the
 * README itself so the README cannot drift from what works. (`npm ci` and `npm test` run in CI from a clean clone.)
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../helpers/gateway.ts';

const readme = readFileSync('README.md', 'utf8');
const quickStart = readme.slice(readme.indexOf('## Quick start'), readme.indexOf('\n## ', readme.indexOf('## Quick start') + 5));
const blocks = [...quickStart.matchAll(/```bash\n([\s\S]*?)```/g)].map((m) => m[1]!);

let server: ChildProcess;
let port: number;
/** The admin listener (/readyz) of the `npm start` gateway. */
let adminPort: number;
let output = '';

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

beforeAll(async () => {
  expect(blocks[0]).toContain('npm ci && npm start');
  expect(blocks[0]).toContain('npm test');
  port = await freePort();
  adminPort = await freePort();
  // Exactly the README's start command (after `npm ci`), on a free port.
  server = spawn('npm', ['start'], { env: { ...process.env, PORT: String(port), TOLLGATE_ADMIN_PORT: String(adminPort), TOLLGATE_LOG_LEVEL: 'info' }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  server.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  server.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  await eventually(async () => {
    try {
      const r = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
      return r.status === 200;
    } catch {
      return false;
    }
  }, 60_000, `npm start to be ready (output: ${output.slice(-500)})`);
});

afterAll(async () => {
  if (server?.pid) {
    const exited = new Promise((r) => server.once('exit', r));
    process.kill(-server.pid, 'SIGTERM');
    await exited;
  }
});

describe('README quick start', () => {
  it('the first MCP call commands work against `npm start`', () => {
    const script = blocks[1]!.replaceAll('http://127.0.0.1:8080/mcp', `http://127.0.0.1:${port}/mcp`);
    expect(script).toContain('svid mint');
    expect(script).toContain('--cli');
    // The gateway runs on PORT: the same PORT tells `svid mint` which resource URIs (http://127.0.0.1:PORT/mcp) to name.
    const run = spawnSync('bash', ['-euo', 'pipefail', '-c', script], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, PORT: String(port) } });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toContain('"everything__echo"');
    expect(run.stdout).toContain('Echo: hello');
  });

  it('refuses the same call without a token, as the README says', async () => {
    const r = await fetch(`http://127.0.0.1:${port}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } } }),
    });
    expect(r.status).toBe(401);
    expect(r.headers.get('www-authenticate')).toContain('resource_metadata=');
  });

  it('serves the example model route at /v1 and is ready with no model server running behind it', async () => {
    const ready = (await (await fetch(`http://127.0.0.1:${adminPort}/readyz`)).json()) as { ready: boolean; upstreams: Record<string, unknown> };
    expect(ready.ready).toBe(true);
    expect(ready.upstreams.vllm).toBeDefined();
    const r = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":"llama","messages":[]}' });
    expect(r.status).toBe(401);
    expect(await r.json()).toMatchObject({ error: { type: 'authentication_error', code: 'TG_UNAUTHENTICATED' } });
  });
});
