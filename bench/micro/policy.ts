/**
 * Policy on the hot path: one WASM evaluation per call (the default policies, committed bundle), the list filter
 * (one evaluation for 500 tools), and how the cost grows with the input (tool arguments of 100 B .. 64 KB).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Target } from '../../src/core/call.ts';
import { DECISIONS_KEY, recordPolicyDecisions } from '../../src/audit/decisions.ts';
import { recordsOf, type PendingRecord } from '../../src/audit/record.ts';
import { ArgumentPolicy } from '../../src/audit/redact.ts';
import { readBundle } from '../../src/guards/policy/bundle.ts';
import { DecisionLog } from '../../src/guards/policy/decision-log.ts';
import { PolicyEngine } from '../../src/guards/policy/engine.ts';
import { PolicyGuard, type PolicyRuntime } from '../../src/guards/policy/guard.ts';
import { InputBuilder } from '../../src/guards/policy/input.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { makeCall, spiffe, tool } from '../../test/helpers/calls.ts';

/** The bench runner's contract (bench/micro.ts). */
interface MicroBench {
  name: string;
  setup?(): Promise<void> | void;
  fn(): unknown;
  iterations?: number;
}

const log = createLogger('silent');
const DEV = spiffe('spiffe://dev.tollgate.local/alice');
const SUPPORT = spiffe('spiffe://example.org/agents/support');
const inputs = new InputBuilder({ shape: 'tollgate', headers: [], claims: 'all', dropArguments: ['messages'] });
let engine: PolicyEngine;
let guard: PolicyGuard;
let logged: PolicyGuard;
let audited: PolicyGuard;
const auditArgs = new ArgumentPolicy({ mode: 'include', maxBytes: 16_384, redactKeys: ['password', 'secret', 'token', 'api[-_]?key'] } as ConstructorParameters<typeof ArgumentPolicy>[0]);
const records: PendingRecord[] = [];

async function load(): Promise<void> {
  if (engine) return;
  const bytes = readFileSync(join(import.meta.dirname, '../../bundles/tollgate.tar.gz'));
  engine = await PolicyEngine.load(await readBundle(bytes, { source: 'bundles/tollgate.tar.gz' }), { initialPages: 16, maxPages: 512 });
  const runtime: PolicyRuntime = { engine, decisionLog: new DecisionLog(log), log };
  const entrypoints = { decision: 'tollgate/decision', visible: 'tollgate/visible' };
  guard = new PolicyGuard({ runtime, inputs, entrypoints, mask: [] });
  const withLog: PolicyRuntime = { engine, decisionLog: new DecisionLog(log), log };
  let events = 0;
  withLog.decisionLog.subscribe(() => {
    events++;
  });
  logged = new PolicyGuard({ runtime: withLog, inputs, entrypoints, mask: ['/target/arguments/message'] });
  const withAudit: PolicyRuntime = { engine, decisionLog: new DecisionLog(log), log };
  recordPolicyDecisions(withAudit.decisionLog);
  audited = new PolicyGuard({ runtime: withAudit, inputs, entrypoints, mask: [] });
}

/** What a policy decision costs with audit on (the default): the event, the audit listener, both record bodies. */
function admitAndRecord(): unknown {
  echo.scratch.delete(DECISIONS_KEY);
  audited.admit(echo);
  records.length = 0;
  recordsOf(echo, 0.5, auditArgs, records);
  return records[0];
}

const echo = makeCall({ operation: 'tools/call', target: tool('everything', 'echo'), args: { message: 'hello from the bench' }, principal: DEV });
const denied = makeCall({ operation: 'tools/call', target: tool('everything', 'get-env'), args: {}, principal: SUPPORT });
const sql = makeCall({ operation: 'tools/call', target: tool('db', 'query'), args: { sql: 'SELECT * FROM orders WHERE id = 42' }, principal: spiffe('spiffe://example.org/agents/ops') });
const echoInput = inputs.forCall(echo);

const targets: Target[] = Array.from({ length: 500 }, (_, i) => tool(i < 20 ? 'everything' : `server-${i % 7}`, i < 20 ? ['echo', 'get-sum', 'get-env', 'get-tiny-image'][i % 4]! : `tool-${i}`));
const listSupport = makeCall({ operation: 'tools/list', principal: SUPPORT });
const listDev = makeCall({ operation: 'tools/list', principal: DEV });

/** A tool call whose arguments serialise to about `bytes` bytes. */
function sized(bytes: number) {
  return makeCall({ operation: 'tools/call', target: tool('everything', 'echo'), args: { message: 'x'.repeat(Math.max(0, bytes - 14)) }, principal: DEV });
}
const args100 = sized(100);
const args1k = sized(1024);
const args10k = sized(10 * 1024);
const args64k = sized(64 * 1024);

function admit(g: () => PolicyGuard, call: ReturnType<typeof makeCall>) {
  return () => g().admit(call);
}

export const benches: MicroBench[] = [
  { name: 'input document build (tools/call)', setup: load, fn: () => inputs.forCall(echo) },
  { name: 'engine.evaluate decision (prebuilt input)', setup: load, fn: () => engine.evaluate('tollgate/decision', echoInput) },
  { name: 'guard.admit allowed call (input + eval + decision)', setup: load, fn: admit(() => guard, echo) },
  { name: 'guard.admit argument rule (SQL)', setup: load, fn: admit(() => guard, sql) },
  {
    name: 'guard.admit denied call (throws TG_POLICY_DENIED)',
    setup: load,
    fn: () => {
      try {
        guard.admit(denied);
      } catch (err) {
        return err;
      }
      return undefined;
    },
  },
  { name: 'guard.admit with a decision-log listener (event + masking)', setup: load, fn: admit(() => logged, echo), iterations: 50_000 },
  { name: 'guard.admit + audit decision and call records (audit listener, defaults)', setup: load, fn: admitAndRecord, iterations: 50_000 },
  { name: 'guard.visible 500 tools, 1 evaluation (support: 3 visible)', setup: load, fn: () => guard.visible(listSupport, targets), iterations: 5_000 },
  { name: 'guard.visible 500 tools, 1 evaluation (dev: all visible)', setup: load, fn: () => guard.visible(listDev, targets), iterations: 5_000 },
  { name: 'guard.admit arguments 100 B', setup: load, fn: admit(() => guard, args100) },
  { name: 'guard.admit arguments 1 KB', setup: load, fn: admit(() => guard, args1k) },
  { name: 'guard.admit arguments 10 KB', setup: load, fn: admit(() => guard, args10k), iterations: 20_000 },
  { name: 'guard.admit arguments 64 KB', setup: load, fn: admit(() => guard, args64k), iterations: 5_000 },
];

/**
 * Standalone run (`node bench/micro/policy.ts`): us/op in CPU time of this process (robust on a shared machine)
 * and in wall time, median of 5 slices after a warm-up.
 */
async function standalone(): Promise<void> {
  for (const b of benches) {
    await b.setup?.();
    const n = b.iterations ?? 100_000;
    for (let i = 0; i < n / 10; i++) b.fn();
    const cpu: number[] = [];
    const wall: number[] = [];
    for (let s = 0; s < 5; s++) {
      const c0 = process.cpuUsage();
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < n / 5; i++) b.fn();
      const c = process.cpuUsage(c0);
      wall.push(Number(process.hrtime.bigint() - t0) / 1e3 / (n / 5));
      cpu.push((c.user + c.system) / (n / 5));
    }
    const median = (xs: number[]): number => xs.sort((a, b) => a - b)[2]!;
    process.stdout.write(`${b.name.padEnd(64)} ${median(cpu).toFixed(2).padStart(8)} us cpu ${median(wall).toFixed(2).padStart(8)} us wall\n`);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await standalone();
