/**
 * SIGTERM during load loses no audit record: the gateway runs as its own process (`node bin/tollgate.mjs serve`),
 * SDK clients call tools in a loop, the gateway is told to stop mid-load, and afterwards every call a client saw
 * answered is in the log exactly once, and the log verifies (sealed) without --allow-open.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import type { AuditRecord } from '../../src/audit/format.ts';
import { queryLog } from '../../src/audit/query.ts';
import { verifyLog } from '../../src/audit/verify.ts';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { devAuthHeaders, mcpBackend, route } from '../helpers/gateway.ts';
import { sigtermUnderLoad, startGatewayProcess } from '../helpers/gateway-process.ts';

let fixture: FixtureServer | undefined;
let child: ChildProcess | undefined;
const root = mkdtempSync(join(tmpdir(), 'tollgate-sigterm-'));

afterAll(async () => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  await fixture?.close();
  rmSync(root, { recursive: true, force: true });
});

it('flushes every record of an interrupted load before exiting', async () => {
  fixture = await startHttpMcpServer({ name: 'fixture', json: true });
  const config = join(root, 'routes');
  mkdirSync(config);
  writeFileSync(
    join(config, 'gateway.yaml'),
    `apiVersion: tollgate.dev/v1alpha1
kind: Gateway
metadata: { name: sigterm }
spec:
  listener: { host: 127.0.0.1, port: 0 }
  shutdown: { drainMs: 5000 }
  audit:
    segment: { maxRecords: 500 }
    sinks: { stdout: true }
`,
  );
  writeFileSync(join(config, 'mcp.yaml'), mcpBackend('fixture', { url: fixture.url }) + route('mcp', '/mcp', ['fixture']));
  const gw = await startGatewayProcess(config, { ...process.env, TOLLGATE_LOG_LEVEL: 'info' });
  // A dev SVID from the config's data dir, for the resources at the URL the gateway listens at.
  const headers = devAuthHeaders(config, undefined, gw.url);
  child = gw.child;
  const { answered, code } = await sigtermUnderLoad(gw, {
    headers,
    tool: 'fixture__echo',
    clients: 4,
    before: 300,
    call: (k, i) => ({ name: `c${k}-${i}` }),
  });
  const stdout = gw.stdout();
  const stderr = gw.stderr();
  expect(code, stderr).toBe(0);

  const dir = join(root, '.tollgate', 'audit');
  const records = [...queryLog(dir, { target: 'fixture__echo' })].map((l) => JSON.parse(l) as AuditRecord);
  const recorded = records.filter((r) => r.outcome === 'ok').map((r) => (r.args as { message: string }).message);
  expect(answered.length).toBeGreaterThanOrEqual(300);
  // Every answered call is recorded, once; nothing is recorded twice.
  const counts = new Map<string, number>();
  for (const m of recorded) counts.set(m, (counts.get(m) ?? 0) + 1);
  expect(answered.filter((m) => counts.get(m) !== 1)).toEqual([]);
  expect(new Set(records.map((r) => r.call)).size).toBe(records.length);
  // The stdout sink got the same records, flushed before exit.
  const onStdout = new Set(
    stdout
      .split('\n')
      .filter((l) => l.startsWith('{"seq":'))
      .map((l) => (JSON.parse(l) as AuditRecord).call),
  );
  expect(records.filter((r) => !onStdout.has(r.call)).map((r) => r.call)).toEqual([]);
  const v = verifyLog(dir);
  expect(v.problem).toBeUndefined();
  expect(v.ok).toBe(true);
});
