/**
 * Issue 12, defect 10: SIGHUP killed the process the second time (`process.once`), leaving the audit log unsealed and
 * its lock file behind; a second SIGTERM did the same.
 *
 * Now every SIGHUP reloads the routes and every policy source (here a bundle file with `watch: false`, so only the
 * signal can bring the new policy in), and the process keeps serving; the decisions each policy made are audited. The
 * first SIGTERM drains; a second one exits at once (exit 143, not the drain's 0) without waiting for the call still
 * running, and still seals the audit log and releases its lock: `tollgate audit verify` passes and the next start
 * continues the chain without a recovered seal.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpMcpServer, type FixtureServer } from '../../helpers/mcp-http-server.ts';
import { connectClient, eventually, mcpBackend, route } from '../../helpers/gateway.ts';
import { buildBytes, ECHO_ENTRYPOINTS, echoRego } from '../../helpers/policy.ts';
import { bearer, cleanRoots, startGateUpstream, startSecureGateway, type GateUpstream, type SecureGateway } from './harness.ts';

const bundles: Record<string, Buffer> = {};
let fixture: FixtureServer;
let gate: GateUpstream;
const gateways: SecureGateway[] = [];

beforeAll(async () => {
  fixture = await startHttpMcpServer({ name: 'fixture' });
  gate = await startGateUpstream();
  for (const [v, open] of [['v1', true], ['v2', false], ['v3', true]] as const) {
    bundles[v] = await buildBytes({ 'tollgate/main.rego': echoRego(v, open) }, ECHO_ENTRYPOINTS);
  }
});

afterAll(async () => {
  for (const g of gateways) if (g.proc.child.exitCode === null && g.proc.child.signalCode === null) g.proc.child.kill('SIGKILL');
  await fixture?.close();
  await gate?.close();
  cleanRoots();
});

function auditVerify(dir: string): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, ['bin/tollgate.mjs', 'audit', 'verify', dir], { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('defect 10: signals', () => {
  it('every SIGHUP reloads routes and policy, and the process keeps serving', async () => {
    const root = mkdtempSync(join(tmpdir(), 'tollgate-sec-d10-'));
    mkdirSync(join(root, 'routes'));
    const bundle = join(root, 'routes', 'policy.tar.gz');
    writeFileSync(bundle, bundles.v1!);
    const gw = await startSecureGateway({
      root,
      gatewaySpec: '  policy: { bundle: policy.tar.gz, watch: false }\n',
      files: { 'mcp.yaml': mcpBackend('fixture', { url: fixture.url }) + route('mcp', '/mcp', ['fixture']) },
    });
    gateways.push(gw);
    const victim = await connectClient(`${gw.url}/mcp`, { headers: bearer(gw.dev('victim')) });
    const echo = async (): Promise<string> => {
      try {
        await victim.callTool({ name: 'fixture__echo', arguments: { message: 'hi' } });
        return 'allowed';
      } catch (err) {
        if (err instanceof McpError && err.code === -32062) return 'denied';
        throw err;
      }
    };
    expect(await echo()).toBe('allowed');
    // Three SIGHUPs, each with a new policy on disk (no watcher: only the signal loads it).
    for (const [n, v, expected] of [[1, 'v2', 'denied'], [2, 'v3', 'allowed'], [3, 'v2', 'denied']] as const) {
      writeFileSync(`${bundle}.new`, bundles[v]!);
      renameSync(`${bundle}.new`, bundle);
      gw.proc.child.kill('SIGHUP');
      await eventually(async () => (await echo()) === expected, 15_000, `SIGHUP ${n}: policy ${v} in force`);
      expect(gw.proc.child.exitCode).toBeNull();
      expect(gw.proc.child.signalCode).toBeNull();
    }
    // The routes reload too: a route added on disk serves after a SIGHUP.
    writeFileSync(join(gw.config, 'more.yaml'), route('more', '/more-mcp', ['fixture']));
    gw.proc.child.kill('SIGHUP');
    // The reload runs after the signal: until it lands the new path is a 404, so wait for it to serve.
    await eventually(
      async () => (await fetch(`${gw.url}/more-mcp`, { method: 'POST', headers: bearer(gw.dev('victim', '/more-mcp')) })).status !== 404,
      15_000,
      'the route added on disk served after SIGHUP 4',
    );
    const other = await connectClient(`${gw.url}/more-mcp`, { headers: bearer(gw.dev('victim', '/more-mcp')) });
    // Served, and under the policy in force (v2): the policy's refusal, not a 404.
    await expect(other.callTool({ name: 'fixture__echo', arguments: { message: 'hi' } })).rejects.toThrow(/v2: echo closed/);
    await other.close();
    // The refusals under v2 are audited with the policy's reason.
    await gw.record((r) => r.operation === 'tools/call' && r.decision?.allow === false && /v2: echo closed/.test(r.decision.reason ?? ''), 'a v2 refusal');
    await eventually(() => (gw.proc.stdout().match(/reload requested \(SIGHUP\)/g) ?? []).length === 4, 10_000, 'four SIGHUPs logged');
    await victim.close();
    expect(await gw.stop()).toBe(0);
    expect(auditVerify(join(gw.dataDir, 'audit')).status).toBe(0);
  });

  it('a second SIGTERM exits at once, without the drain, and still seals the audit log', async () => {
    const gw = await startSecureGateway({ files: { 'mcp.yaml': mcpBackend('gate', { url: gate.url }) + route('mcp', '/mcp', ['gate']) } });
    gateways.push(gw);
    const victim = await connectClient(`${gw.url}/mcp`, { headers: bearer(gw.dev('victim')) });
    await victim.callTool({ name: 'gate__echo', arguments: { message: 'before' } });
    // A call that never finishes by itself: the first SIGTERM's drain would wait for it up to drainMs (3 s), then exit 0.
    const pending = victim.callTool({ name: 'gate__wait', arguments: { tag: 'held' } }).catch(() => 'cut');
    await eventually(() => gate.waiting() === 1, 10_000, 'the held call reached the upstream');
    gw.proc.child.kill('SIGTERM');
    await eventually(() => /"msg":"draining"/.test(gw.proc.stdout()), 10_000, 'the drain began');
    gw.proc.child.kill('SIGTERM');
    const code = await gw.proc.exited;
    expect(gw.proc.child.signalCode).toBeNull(); // not killed by the signal's default action
    expect(code).toBe(143);
    expect(gate.waiting()).toBe(1); // it did not wait for the held call
    await pending;
    gate.release();
    const audit = join(gw.dataDir, 'audit');
    expect(existsSync(join(audit, 'LOCK'))).toBe(false);
    const segments = readdirSync(audit).filter((f) => f.endsWith('.jsonl')).sort();
    const lines = readFileSync(join(audit, segments.at(-1)!), 'utf8').trim().split('\n');
    const last = JSON.parse(lines.at(-1)!) as { kind: string; recovered?: boolean };
    expect(last.kind).toBe('seal');
    expect(last.recovered).toBeUndefined();
    const verified = auditVerify(audit);
    expect(verified.out).not.toMatch(/recovered/);
    expect(verified.status).toBe(0);
  });
});
