/**
 * SIGTERM during load loses no audit record: the gateway runs as its own process (`node bin/tollgate.mjs serve`),
 * SDK clients call tools in a loop, the gateway is told to stop mid-load, and afterwards every call a client saw
 * answered is in the log exactly once, and the log verifies (sealed) without --allow-open.
 */
import { afterAll, expect, it } from 'vitest';
import type { AuditRecord } from '../../src/audit/format.ts';
import { queryLog } from '../../src/audit/query.ts';
import { verifyLog } from '../../src/audit/verify.ts';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { devAuthHeaders, mcpBackend, route } from '../helpers/gateway.ts';
import { sigtermUnderLoad, startConfiguredGateway, type ConfiguredGateway } from '../helpers/gateway-process.ts';

let fixture: FixtureServer | undefined;
let started: ConfiguredGateway | undefined;

afterAll(async () => {
  started?.dispose();
  await fixture?.close();
});

it('flushes every record of an interrupted load before exiting', async () => {
  fixture = await startHttpMcpServer({ name: 'fixture', json: true });
  const gw = (started = await startConfiguredGateway({
    label: 'sigterm',
    name: 'sigterm',
    drainMs: 5000,
    spec: `  audit:
    segment: { maxRecords: 500 }
    sinks: { stdout: true }
`,
    routes: mcpBackend('fixture', { url: fixture.url }) + route('mcp', '/mcp', ['fixture']),
  }));
  // A dev SVID from the config's data dir, for the resources at the URL the gateway listens at.
  const headers = devAuthHeaders(gw.config, undefined, gw.url);
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

  const dir = gw.auditDir;
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
