/**
 * The official conformance suite (`@modelcontextprotocol/conformance`, server mode, every scenario of the "all"
 * suite) run against the gateway, which serves a conformance upstream (test/helpers/conformance-server.ts) at
 * /mcp/conf. Every scenario the upstream supports must pass through the gateway. The route admits anonymous callers
 * (said explicitly in its config): the conformance client sends no credentials.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startConformanceUpstream, type ConformanceUpstream } from '../helpers/conformance-server.ts';
import { mcpBackend, route, startTestGateway, type TestGateway } from '../helpers/gateway.ts';

let upstream: ConformanceUpstream;
let gw: TestGateway;
let out: string;

beforeAll(async () => {
  upstream = await startConformanceUpstream();
  gw = await startTestGateway({ 'mcp.yaml': mcpBackend('conf', { url: upstream.url }) + route('mcp', '/mcp', ['conf'], { auth: { anonymous: true } }) });
  out = mkdtempSync(join(tmpdir(), 'tollgate-conformance-'));
});

afterAll(async () => {
  await gw?.stop();
  await upstream?.close();
  if (out) rmSync(out, { recursive: true, force: true });
});

it('passes every server conformance scenario through the gateway', async () => {
  const cli = join(process.cwd(), 'node_modules/@modelcontextprotocol/conformance/dist/index.js');
  const output = await new Promise<string>((resolve) => {
    execFile(process.execPath, [cli, 'server', '--suite', 'all', '--url', `${gw.url}/mcp/conf`, '-o', out], { timeout: 240_000, maxBuffer: 16 * 1024 * 1024 }, (_err, stdout, stderr) =>
      resolve(`${stdout}\n${stderr}`),
    );
  });
  const lines = output.split('\n').filter((l) => /^[✓✗] /.test(l));
  const failed = lines.filter((l) => l.startsWith('✗'));
  // The scenario list (pass/fail) goes to the test log for the record.
  console.log(lines.join('\n'));
  expect(lines.length, output.slice(-2000)).toBeGreaterThanOrEqual(30);
  expect(failed, output.slice(-4000)).toEqual([]);
  expect(output).toMatch(/Total: \d+ passed, 0 failed/);
}, 300_000);
