#!/usr/bin/env node
// Summarises a mutation run (reports/mutation/<scope>/mutation.json, or the incremental file a stopped run leaves)
// as Markdown: counts, score, and every surviving mutant with its place and replacement. With
// `--new <pattern>` (repeatable: a test file or a test name prefix), also the score the other tests alone give:
// meaningful for a run with TOLLGATE_MUTATION_ALL_KILLERS=1, where killedBy lists every test that catches a mutant.
//   node scripts/mutation-summary.mjs <scope> [--new test/unit/x.test.ts] [--new "describe name"]
import { existsSync, readFileSync } from 'node:fs';

const [scope, ...rest] = process.argv.slice(2);
if (!scope) {
  console.error('usage: mutation-summary.mjs <scope> [--new <test file or name prefix>]...');
  process.exit(2);
}
const fresh = [];
for (let i = 0; i < rest.length; i++) if (rest[i] === '--new') fresh.push(rest[++i]);

const dir = `reports/mutation/${scope}`;
const file = existsSync(`${dir}/mutation.json`) ? `${dir}/mutation.json` : `${dir}/stryker-incremental.json`;
const report = JSON.parse(readFileSync(file, 'utf8'));

// Test id -> "file > name", to tell the new tests apart.
const tests = new Map();
for (const [path, t] of Object.entries(report.testFiles ?? {})) for (const test of t.tests) tests.set(test.id, { path, name: test.name });
const isNew = (id) => {
  const t = tests.get(id);
  return t !== undefined && fresh.some((p) => t.path.endsWith(p) || t.name.startsWith(p));
};

const counts = {};
let killedByOld = 0;
const survivors = [];
const perFile = {};
for (const [path, f] of Object.entries(report.files)) {
  const lines = f.source.split('\n');
  for (const m of f.mutants) {
    counts[m.status] = (counts[m.status] ?? 0) + 1;
    const pf = (perFile[path] ??= { killed: 0, survived: 0, noCoverage: 0, other: 0 });
    if (m.status === 'Killed' || m.status === 'Timeout') {
      pf.killed++;
      if ((m.killedBy ?? []).some((id) => !isNew(id)) || m.status === 'Timeout') killedByOld++;
    } else if (m.status === 'Survived') pf.survived++;
    else if (m.status === 'NoCoverage') pf.noCoverage++;
    else pf.other++;
    if (m.status === 'Survived' || m.status === 'NoCoverage') {
      survivors.push({ path, line: m.location.start.line, status: m.status, mutator: m.mutatorName, code: lines[m.location.start.line - 1].trim(), replacement: m.replacement });
    }
  }
}
const killed = (counts.Killed ?? 0) + (counts.Timeout ?? 0);
const valid = killed + (counts.Survived ?? 0) + (counts.NoCoverage ?? 0);
const pct = (n) => (valid === 0 ? 'n/a' : `${((100 * n) / valid).toFixed(2)}%`);

const out = [];
out.push(`### ${scope}`, '', `Source: ${file}. Mutants: ${Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(', ')}.`, '');
out.push(`Score (killed / killed + survived + no coverage): **${pct(killed)}** (${killed}/${valid})`);
if (fresh.length > 0) out.push(`Without the new tests (${fresh.join(', ')}): **${pct(killedByOld)}** (${killedByOld}/${valid})`);
out.push('', '| file | killed | survived | no coverage |', '|---|---|---|---|');
for (const [path, pf] of Object.entries(perFile)) out.push(`| ${path} | ${pf.killed} | ${pf.survived} | ${pf.noCoverage} |`);
out.push('', 'Surviving mutants:', '');
for (const s of survivors.sort((a, b) => a.path.localeCompare(b.path) || a.line - b.line)) {
  out.push(`- ${s.path}:${s.line} ${s.status} ${s.mutator}: \`${s.code.slice(0, 120)}\` -> \`${String(s.replacement).replace(/\s+/g, ' ').slice(0, 80)}\``);
}
console.log(out.join('\n'));
