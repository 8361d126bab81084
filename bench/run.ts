/**
 * `npm run bench [-- options]`: direct-to-backend vs bare reference proxy vs gateway, per scenario, interleaved over
 * rounds; writes bench/results/bench-<time>-<commit>.json and prints a Markdown table.
 *
 *   --scenario a,b      scenarios to run (default: all runnable; see bench/scenarios.ts; stream-completion is the
 *                       OpenAI-compatible streamed completion, bench/lib/streams.ts: time to first byte and total;
 *                       policy-reload is save -> first decision under the new policy, bench/lib/policy-reload.ts;
 *                       kserve-infer is KServe v2 infer against a real Triton, bench/lib/kserve.ts; a2a is A2A
 *                       SendMessage to an @a2a-js/sdk agent, bench/lib/a2a.ts)
 *   --rounds N          interleaved rounds (default 3)
 *   --duration S        seconds per measured run (default 3)
 *   --warmup S          seconds of unrecorded load per target first (default 1)
 *   --connections N     connections for the throughput phase (default 32)
 *   --rate R            fixed rate for the latency-under-load phase (default: half the gateway's throughput)
 *   --phases list       c1,rate,tput (default all)
 *   --no-each           only the gateway with every stage on (not each stage alone)
 *   --stages a,b        only these stages (and the stages they need), e.g. --stages limits: gateway[limits] vs [none]
 *                       (TOLLGATE_BENCH_LIMITS=rate: the limits stage without its budget, to see rate-limit leases)
 *   --without a,b       also run the gateway with every stage but these (e.g. --without telemetry,audit: a variant
 *                       without telemetry and one without audit), to see what one stage costs the others' numbers
 *   --log-level L       gateway log level (default info: one line per call, to a file)
 *   --profile           write a CPU profile of each gateway process and print its summary
 *   --baseline REV      also run the gateway of git revision REV (interleaved, same run): before/after numbers
 *   --log-levels a,b    also run the gateway at these log levels (e.g. warn: the access log's share)
 *   --node-options "..." also run the gateway with these Node/V8 options (e.g. --max-semi-space-size=32)
 *   --env K=V,K2=V2     also run the gateway with this environment (e.g. OTEL_TRACES_SAMPLER=traceidratio);
 *                       several such variants separated by ';'
 *   --quick             2 rounds of 1.5 s (for development; noisier)
 *   --out FILE          results file (default bench/results/bench-<time>-<commit>.json)
 *   --compare OLD.json  print the change from OLD to this run (with --against NEW.json: compare two files, no run)
 */
import { mkdirSync, readdirSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { A2A_PLAN, a2aMarkdown, runA2a, type A2aResult } from './lib/a2a.ts';
import { SCENARIOS, SLOTS } from './scenarios.ts';
import { PENDING_STAGES, availableStages, variants, type Variant } from './stages.ts';
import { compareMarkdown, markdown } from './lib/report.ts';
import { machineInfo, newResult, readResult, recordedTargets, writeResult, type ScenarioResult } from './lib/results.ts';
import { PHASES, calibrateRate, measureRound, setupScenario, summarizeTargets, warmUp, type Phase, type PhaseOptions, type RoundResult } from './lib/runner.ts';
import { profileMarkdown, summarizeProfile } from './lib/profile.ts';
import { ROOT } from './lib/targets.ts';
import { addBaseline } from './lib/baseline.ts';
import { runStreams, STREAM_PLAN, streamMarkdown, type StreamResult } from './lib/streams.ts';
import { RELOAD_PLAN, reloadMarkdown, runPolicyReload, type ReloadResult } from './lib/policy-reload.ts';
import { KSERVE_PLAN, kserveMarkdown, runKServe, type KServeResult } from './lib/kserve.ts';

const { values } = parseArgs({
  options: {
    scenario: { type: 'string' },
    rounds: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    connections: { type: 'string' },
    rate: { type: 'string' },
    phases: { type: 'string' },
    'no-each': { type: 'boolean' },
    stages: { type: 'string' },
    without: { type: 'string' },
    'log-level': { type: 'string' },
    profile: { type: 'boolean' },
    baseline: { type: 'string' },
    'log-levels': { type: 'string' },
    'node-options': { type: 'string' },
    env: { type: 'string' },
    quick: { type: 'boolean' },
    out: { type: 'string' },
    compare: { type: 'string' },
    against: { type: 'string' },
  },
});

if (values.compare && values.against) {
  process.stdout.write(`${compareMarkdown(readResult(values.compare), readResult(values.against))}\n`);
  process.exit(0);
}

const num = (v: string | undefined, d: number): number => (v === undefined ? d : Number(v));
const quick = values.quick === true;
const rounds = num(values.rounds, quick ? 2 : 3);
const phaseOpts: PhaseOptions = {
  durationS: num(values.duration, quick ? 1.5 : 3),
  warmupS: num(values.warmup, quick ? 0.5 : 1),
  connections: num(values.connections, 32),
  rate: values.rate === undefined ? undefined : Number(values.rate),
};
const phases = (values.phases?.split(',') ?? PHASES) as Phase[];
for (const p of phases) if (!PHASES.includes(p)) throw new Error(`unknown phase ${p} (phases: ${PHASES.join(', ')})`);
const wanted = values.scenario?.split(',');
for (const w of wanted ?? []) {
  if (!SCENARIOS.some((s) => s.name === w) && !SLOTS.some((s) => s.name === w) && w !== 'stream-completion' && w !== 'policy-reload' && w !== 'kserve-infer' && w !== 'a2a') throw new Error(`unknown scenario ${w}`);
}
const logLevel = values['log-level'] ?? 'info';
const only = values.stages?.split(',');
const available = availableStages(ROOT);
for (const n of only ?? []) if (!available.some((s) => s.name === n)) throw new Error(`unknown or unavailable stage ${n} (stages: ${available.map((s) => s.name).join(', ')})`);
const stages = only === undefined ? available : available.filter((s) => only.includes(s.name) || only.some((n) => available.find((x) => x.name === n)?.needs?.includes(s.name)));
const noEach = values['no-each'] === true;
const vs = variants(stages, { each: !noEach });
const extra: Variant[] = [];
for (const n of values.without?.split(',') ?? []) {
  if (!stages.some((s) => s.name === n)) throw new Error(`--without ${n}: not a stage of this run (stages: ${stages.map((s) => s.name).join(', ')})`);
  // A stage others need goes with them (no policy without identity).
  const kept = stages.filter((s) => s.name !== n && !s.needs?.includes(n));
  extra.push({ label: `gateway(-${n})`, stages: kept });
}
for (const level of values['log-levels']?.split(',') ?? []) extra.push({ label: `gateway(log=${level})`, stages, logLevel: level });
if (values['node-options']) extra.push({ label: `gateway(${values['node-options']})`, stages, nodeOptions: values['node-options'].split(' ').filter(Boolean) });
for (const variant of values.env?.split(';') ?? []) {
  const env = Object.fromEntries(variant.split(',').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  extra.push({ label: `gateway(${variant})`, stages, env });
}
const baseline = values.baseline ? addBaseline(values.baseline) : undefined;
// The baseline runs the stages it has of those this run measures (--stages narrows both sides alike).
const baselineStages = baseline ? availableStages(baseline.root).filter((s) => stages.some((x) => x.name === s.name)) : [];
if (baseline) extra.push({ label: `gateway@${baseline.rev}`, stages: baselineStages, root: baseline.root });
const startedAt = new Date().toISOString();
const profileDir = values.profile ? join(ROOT, 'bench/results/profiles', startedAt.replace(/[:.]/g, '-')) : undefined;
if (profileDir) mkdirSync(profileDir, { recursive: true });

const machine = machineInfo();
const scenarios: ScenarioResult[] = [];
if (baseline) process.once('exit', () => baseline.remove());
for (const scenario of SCENARIOS) {
  if (wanted && !wanted.includes(scenario.name)) continue;
  process.stderr.write(`bench: ${scenario.name}: starting backends, proxy, gateways (loadavg ${loadavg()[0]!.toFixed(2)})\n`);
  const scenarioProfDir = profileDir ? join(profileDir, scenario.name) : undefined;
  // Each stage alone where the scenario asks for it (call-small); elsewhere the full pipeline and no stage.
  const off = scenario.withoutStages?.names ?? [];
  const scenarioStages = stages.filter((s) => !off.includes(s.name));
  const scenarioVariants = [...(scenario.eachStage ? variants(scenarioStages, { each: !noEach }) : variants(scenarioStages, { each: false, none: !noEach })), ...extra];
  const setup = await setupScenario(scenario, { variants: scenarioVariants, logLevel, proxyPoolConnections: 16, withProxy: true, cpuProfDir: scenarioProfDir });
  const results: RoundResult[] = [];
  let rate = 0;
  try {
    await warmUp(setup, phaseOpts);
    rate = phases.includes('rate') ? await calibrateRate(setup, phaseOpts) : 0;
    for (let r = 0; r < rounds; r++) {
      results.push(await measureRound(setup, r, phases, phaseOpts, rate));
      process.stderr.write(`bench: ${scenario.name}: round ${r + 1}/${rounds} done (loadavg ${loadavg()[0]!.toFixed(2)})\n`);
    }
  } finally {
    await setup.teardown();
  }
  scenarios.push({
    name: scenario.name,
    what: scenario.what,
    ...(scenario.withoutStages ? { stagesOff: scenario.withoutStages } : {}),
    rate,
    targets: recordedTargets(setup.targets),
    rounds: results,
    summary: summarizeTargets(setup.targets, results),
  });
  if (scenarioProfDir) {
    for (const f of readdirSync(scenarioProfDir).filter((f) => f.endsWith('.cpuprofile'))) {
      const file = join(scenarioProfDir, f);
      process.stdout.write(`\n${scenario.name}: ${profileMarkdown(file, summarizeProfile(file))}\n`);
    }
  }
}
for (const slot of SLOTS) if (!wanted || wanted.includes(slot.name)) scenarios.push({ name: slot.name, what: slot.what, pending: slot.pending });
let streams: StreamResult | undefined;
if (!wanted || wanted.includes('stream-completion')) {
  process.stderr.write(`bench: stream-completion: starting the model backend and gateways (loadavg ${loadavg()[0]!.toFixed(2)})\n`);
  const plan = quick ? { ...STREAM_PLAN, rounds: 2, requests: 60, warmup: 10 } : { ...STREAM_PLAN, rounds };
  const streamProfDir = profileDir ? join(profileDir, 'stream-completion') : undefined;
  streams = await runStreams([...variants(stages, { each: false, none: !noEach }), ...extra], plan, { logLevel, cpuProfDir: streamProfDir, withProxy: true });
  if (streamProfDir) {
    for (const f of readdirSync(streamProfDir).filter((f) => f.endsWith('.cpuprofile'))) {
      const file = join(streamProfDir, f);
      process.stdout.write(`\nstream-completion: ${profileMarkdown(file, summarizeProfile(file))}\n`);
    }
  }
}
let policyReload: ReloadResult | undefined;
if (!wanted || wanted.includes('policy-reload')) {
  process.stderr.write(`bench: policy-reload: building bundles, starting gateways (loadavg ${loadavg()[0]!.toFixed(2)})\n`);
  policyReload = await runPolicyReload(quick ? { ...RELOAD_PLAN, samples: 10 } : RELOAD_PLAN, { logLevel });
}
let kserve: KServeResult | undefined;
if (!wanted || wanted.includes('kserve-infer')) {
  process.stderr.write(`bench: kserve-infer: starting Triton and gateways (loadavg ${loadavg()[0]!.toFixed(2)})\n`);
  const plan = quick ? { ...KSERVE_PLAN, rounds: 2, requests: 60, warmup: 10 } : { ...KSERVE_PLAN, rounds };
  const kserveProfDir = profileDir ? join(profileDir, 'kserve-infer') : undefined;
  if (kserveProfDir) mkdirSync(kserveProfDir, { recursive: true });
  kserve = await runKServe([...variants(stages, { each: false, none: !noEach }), ...extra], plan, { logLevel, withProxy: true, cpuProfDir: kserveProfDir });
  if (kserveProfDir) {
    for (const f of readdirSync(kserveProfDir).filter((f) => f.endsWith('.cpuprofile'))) process.stdout.write(`\nkserve-infer: ${profileMarkdown(join(kserveProfDir, f), summarizeProfile(join(kserveProfDir, f)))}\n`);
  }
}

let a2a: A2aResult | undefined;
if (!wanted || wanted.includes('a2a')) {
  process.stderr.write(`bench: a2a: starting the agent and gateways (loadavg ${loadavg()[0]!.toFixed(2)})\n`);
  const plan = quick ? { ...A2A_PLAN, rounds: 2, requests: 100, warmup: 20, throughputRequests: 300 } : { ...A2A_PLAN, rounds };
  const a2aProfDir = profileDir ? join(profileDir, 'a2a') : undefined;
  if (a2aProfDir) mkdirSync(a2aProfDir, { recursive: true });
  // The extra variants (--baseline, --log-levels, --node-options, --env) run here too: before/after in one run.
  a2a = await runA2a([...variants(stages, { each: false, none: !noEach }), ...extra], plan, { logLevel, cpuProfDir: a2aProfDir });
  if (a2aProfDir) {
    for (const f of readdirSync(a2aProfDir).filter((f) => f.endsWith('.cpuprofile'))) process.stdout.write(`\na2a: ${profileMarkdown(join(a2aProfDir, f), summarizeProfile(join(a2aProfDir, f)))}\n`);
  }
}

const result = newResult('bench', { at: startedAt, machine }, {
  config: {
    rounds,
    ...phaseOpts,
    phases,
    logLevel,
    variants: [...vs, ...extra].map((v) => v.label),
    baseline: baseline ? { rev: baseline.rev, sha: baseline.sha } : undefined,
    proxyPoolConnections: 16,
    gatewayPoolConnections: 16,
  },
  stages: { on: stages.map((s) => s.name), pending: [...PENDING_STAGES] },
  scenarios,
  streams,
  policyReload,
  kserve,
  a2a,
  notes: [
    'c1 and tput: autocannon (programmatic API), latency recorded per response in microseconds.',
    'rate: open-loop paced generator over an undici Pool (autocannon rate mode sends per-second bursts); corrected = from intended send time.',
    'added = target minus direct in the same round; medians over rounds with min..max spread.',
  ],
});
const file = writeResult(result, values.out);
process.stdout.write(`\n${markdown(result)}\n${streams ? `\n${streamMarkdown(streams)}\n` : ''}${policyReload ? `\n${reloadMarkdown(policyReload)}\n` : ''}${kserve ? `\n${kserveMarkdown(kserve)}\n` : ''}${a2a ? `\n${a2aMarkdown(a2a)}\n` : ''}\nresults: ${file}\n`);
if (values.compare) process.stdout.write(`\n${compareMarkdown(readResult(values.compare), result)}\n`);
const errors = scenarios.reduce((n, s) => n + Object.values(s.summary ?? {}).reduce((m, t) => m + t.errors, 0), 0) + (streams?.errors ?? 0) + (policyReload?.errors ?? 0) + (kserve?.errors ?? 0) + (a2a?.errors ?? 0);
if (errors > 0) process.stderr.write(`bench: ${errors} failed requests: results are not trustworthy\n`);
// Exit explicitly: a shared fixture (the limits stage's Redis) would keep the process alive; the exit hook kills it.
process.exit(errors > 0 ? 1 : 0);
