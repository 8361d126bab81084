/**
 * `node bench/policy-reload.ts [--samples N] [--quick] [--out FILE]`: the policy-reload scenario alone (also part of
 * `npm run bench`): save a policy -> first call decided by it, for a Rego directory and a bundle file, each saved in
 * place and replaced by rename. Writes bench/results/policy-reload-<time>-<commit>.json and prints a table.
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { machineInfo, newResult, writeResult } from './lib/results.ts';
import { RELOAD_PLAN, reloadMarkdown, runPolicyReload } from './lib/policy-reload.ts';

const { values } = parseArgs({ options: { samples: { type: 'string' }, quick: { type: 'boolean' }, out: { type: 'string' }, 'log-level': { type: 'string' } } });
const samples = values.samples ? Number(values.samples) : values.quick ? 10 : RELOAD_PLAN.samples;
const startedAt = new Date().toISOString();
const machine = machineInfo();
process.stderr.write(`bench: policy-reload: ${samples} samples per mode (loadavg ${loadavg()[0]!.toFixed(2)})\n`);
const reload = await runPolicyReload({ ...RELOAD_PLAN, samples }, { logLevel: values['log-level'] });
const result = newResult('policy-reload', { at: startedAt, machine }, { config: { samples }, stages: { on: [], pending: [] }, scenarios: [], policyReload: reload, notes: [] });
const file = writeResult(result, values.out);
process.stdout.write(`\n${reloadMarkdown(reload)}\n\nresults: ${file}\n`);
process.exit(reload.errors > 0 ? 1 : 0);
