/** Markdown tables for humans: one run, or the change between two runs. */
import type { BenchResult, ScenarioResult } from './results.ts';
import type { Stat, TargetSummary } from './runner.ts';

const ms = (v: number | undefined): string => (v === undefined || Number.isNaN(v) ? '-' : v.toFixed(3));
const spread = (s: Stat | undefined): string => (s ? `${ms(s.median)} (${ms(s.min)}..${ms(s.max)})` : '-');
const signed = (s: Stat | undefined): string => (s ? `${s.median >= 0 ? '+' : ''}${ms(s.median)} (${ms(s.min)}..${ms(s.max)})` : '-');
const ratio = (s: Stat | undefined): string => (s ? `${s.median.toFixed(2)} (${s.min.toFixed(2)}..${s.max.toFixed(2)})` : '-');
const rps = (s: Stat | undefined): string => (s ? `${Math.round(s.median)} (${Math.round(s.min)}..${Math.round(s.max)})` : '-');

/** Latency in ms, medians over rounds with (min..max) across rounds. */
export function markdown(result: BenchResult): string {
  const lines: string[] = [];
  const conns = String(result.config.connections ?? '?');
  lines.push(`Tollgate bench ${result.startedAt} commit ${result.commit.sha.slice(0, 8)}${result.commit.dirty ? '+dirty' : ''} (${result.commit.branch}), Node ${result.node}, ${String(result.machine.cpus)} CPUs, loadavg at start ${JSON.stringify(result.machine.loadavgAtStart)}`);
  lines.push(`Stages on: ${result.stages.on.length ? result.stages.on.join(', ') : 'none on this branch'}${result.stages.pending.length ? `; pending: ${result.stages.pending.map((p) => p.name).join(', ')}` : ''}`);
  lines.push('Latency in ms: median over rounds (min..max across rounds). "added" = target minus direct in the same round.');
  lines.push('CPU us/req: CPU time (user+sys) of the measured process per request (direct: the backend; proxy/gateway: that process alone).');
  lines.push('');
  lines.push(`| scenario | target | c=1 p50 | c=1 p99 | added p50 | added p99 | fixed-rate p50 / p99 | added p99 @rate | req/s @${conns} conns | vs proxy | vs direct | CPU us/req c=1 | CPU us/req @${conns} |`);
  lines.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const sc of result.scenarios) {
    if (sc.pending) {
      lines.push(`| ${sc.name} | (pending: ${sc.pending}) | | | | | | | | | | | |`);
      continue;
    }
    for (const [label, s] of Object.entries(sc.summary ?? {})) lines.push(row(sc, label, s));
  }
  for (const sc of result.scenarios) if (sc.stagesOff) lines.push('', `${sc.name}: ${sc.stagesOff.names.join(', ')} off: ${sc.stagesOff.reason}.`);
  return lines.join('\n');
}

function row(sc: ScenarioResult, label: string, s: TargetSummary): string {
  const rate = s.rate ? `${ms(s.rate.p50.median)} / ${ms(s.rate.p99.median)} @${s.rate.rps}/s` : '-';
  const err = s.errors > 0 ? ` **${s.errors} errors**` : '';
  return `| ${sc.name} | ${label}${err} | ${spread(s.c1?.p50)} | ${spread(s.c1?.p99)} | ${signed(s.added?.c1?.p50)} | ${signed(s.added?.c1?.p99)} | ${rate} | ${signed(s.added?.rate?.p99)} | ${rps(s.tput?.rps)} | ${ratio(s.added?.tputVsProxy)} | ${ratio(s.added?.tputVsDirect)} | ${rps(s.c1?.cpuUsPerReq)} | ${rps(s.tput?.cpuUsPerReq)} |`;
}

function delta(a: number | undefined, b: number | undefined, lowerIsBetter = true, digits = 3): string {
  if (a === undefined || b === undefined || Number.isNaN(a) || Number.isNaN(b)) return '-';
  const d = b - a;
  const pct = a !== 0 ? (d / Math.abs(a)) * 100 : 0;
  const better = lowerIsBetter ? d < 0 : d > 0;
  return `${a.toFixed(digits)} -> ${b.toFixed(digits)} (${pct >= 0 ? '+' : ''}${pct.toFixed(0)}%${Math.abs(pct) >= 10 ? (better ? ' better' : ' worse') : ''})`;
}

/** The change from `old` to `cur`, per scenario and target present in both. */
export function compareMarkdown(old: BenchResult, cur: BenchResult): string {
  const lines: string[] = [];
  lines.push(`Change from ${old.commit.sha.slice(0, 8)} (${old.startedAt}) to ${cur.commit.sha.slice(0, 8)} (${cur.startedAt}); loadavg ${JSON.stringify(old.machine.loadavgAtStart)} -> ${JSON.stringify(cur.machine.loadavgAtStart)}`);
  lines.push('');
  lines.push('| scenario | target | c=1 p50 | c=1 p99 | added p50 | added p99 | added p99 @rate | req/s | vs proxy | CPU us/req c=1 |');
  lines.push('|---|---|---|---|---|---|---|---|---|---|');
  for (const sc of cur.scenarios) {
    const before = old.scenarios.find((o) => o.name === sc.name);
    if (!before?.summary || !sc.summary) continue;
    for (const [label, s] of Object.entries(sc.summary)) {
      const b = before.summary[label];
      if (!b) continue;
      lines.push(
        `| ${sc.name} | ${label} | ${delta(b.c1?.p50.median, s.c1?.p50.median)} | ${delta(b.c1?.p99.median, s.c1?.p99.median)} | ${delta(b.added?.c1?.p50.median, s.added?.c1?.p50.median)} | ${delta(b.added?.c1?.p99.median, s.added?.c1?.p99.median)} | ${delta(b.added?.rate?.p99.median, s.added?.rate?.p99.median)} | ${delta(b.tput?.rps.median, s.tput?.rps.median, false, 0)} | ${delta(b.added?.tputVsProxy?.median, s.added?.tputVsProxy?.median, false, 2)} | ${delta(b.c1?.cpuUsPerReq?.median, s.c1?.cpuUsPerReq?.median, true, 0)} |`,
      );
    }
  }
  return lines.join('\n');
}
