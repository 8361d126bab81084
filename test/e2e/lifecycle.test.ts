/**
 * Process lifecycle: a stdio upstream that dies is restarted and serves again; SIGTERM drains in-flight calls
 * before the gateway exits.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { McpProtocol } from '../../src/protocols/mcp/index.ts';
import { StdioMcpUpstream } from '../../src/protocols/mcp/upstream/stdio.ts';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { EVERYTHING_STDIO, GATEWAY_YAML, connectClient, devAuthHeaders, eventually, mcpBackend, route, startTestGateway } from '../helpers/gateway.ts';

const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

describe('stdio upstream supervision', () => {
  it('restarts a killed stdio server and the same session serves again', async () => {
    const gw = await startTestGateway({ 'mcp.yaml': mcpBackend('everything', EVERYTHING_STDIO) + route('mcp', '/mcp', ['everything']) });
    cleanups.push(() => gw.stop());
    const client = await connectClient(`${gw.url}/mcp`);
    cleanups.push(() => client.close());
    const echo = () => client.callTool({ name: 'everything__echo', arguments: { message: 'ping' } });
    expect((await echo()).content).toEqual([{ type: 'text', text: 'Echo: ping' }]);

    const up = (gw.gateway.adapter('mcp') as McpProtocol).upstreamSet.get('everything') as StdioMcpUpstream;
    const firstPid = up.pid;
    expect(firstPid).toBeGreaterThan(0);
    process.kill(firstPid!, 'SIGKILL');
    await eventually(() => up.pid !== undefined && up.pid !== firstPid && up.status().up, 15_000, 'the stdio server to be restarted');
    expect((await echo()).content).toEqual([{ type: 'text', text: 'Echo: ping' }]);
  });
});

describe('graceful shutdown', () => {
  let fixture: FixtureServer;

  it('drains an in-flight call on SIGTERM, then exits 0', async () => {
    fixture = await startHttpMcpServer({ name: 'fixture' });
    cleanups.push(() => fixture.close());
    // Nested, so the data dir (audit log) is <tmp>/tollgate-drain-X/.tollgate and not a /tmp/.tollgate shared by tests.
    const dir = join(mkdtempSync(join(tmpdir(), 'tollgate-drain-')), 'routes');
    mkdirSync(dir);
    writeFileSync(join(dir, 'gateway.yaml'), GATEWAY_YAML.replace('port: 0', 'port: 0').replace('drainMs: 2000', 'drainMs: 5000'));
    writeFileSync(join(dir, 'mcp.yaml'), mcpBackend('fixture', { url: fixture.url }) + route('mcp', '/mcp', ['fixture']));
    const child = spawn(process.execPath, ['bin/tollgate.mjs', 'serve', '--config', dir, '--port', '0'], {
      env: { ...process.env, TOLLGATE_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    cleanups.push(async () => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await eventually(() => /"address":"127\.0\.0\.1:(\d+)"/.test(out), 15_000, 'the gateway to listen');
    const port = /"address":"127\.0\.0\.1:(\d+)"/.exec(out)![1];
    const client = await connectClient(`http://127.0.0.1:${port}/mcp`, { headers: devAuthHeaders(dir, undefined, `http://127.0.0.1:${port}`) });
    const slowBefore = fixture.metas.filter((m) => m.tool === 'slow').length;
    const slow = client.callTool({ name: 'fixture__slow', arguments: { steps: 8 } });
    // SIGTERM once the call is in flight upstream (not after a guessed delay).
    await eventually(() => fixture.metas.filter((m) => m.tool === 'slow').length > slowBefore, 10_000, 'the slow call upstream');
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    const result = await slow;
    expect(result.content).toEqual([{ type: 'text', text: 'done after 8 steps' }]);
    expect(await exited).toBe(0);
    expect(out).toContain('"msg":"draining"');
    expect(out).toContain('"msg":"stopped"');
    await client.close().catch(() => {});
  });
});
