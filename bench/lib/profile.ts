/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`): self time per function and per source area, so a profile of
 * the gateway under load can be read without a flame-graph viewer.
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { ROOT } from './targets.ts';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileSummary {
  readonly totalMs: number;
  /** Idle share of the whole profile; every other percentage is a share of the busy (non-idle) time. */
  readonly idlePct: number;
  readonly busyMs: number;
  readonly functions: ReadonlyArray<{ name: string; where: string; selfPct: number }>;
  readonly areas: ReadonlyArray<{ area: string; selfPct: number }>;
}

function where(url: string): string {
  if (url === '') return '(native)';
  const path = url.startsWith('file://') ? new URL(url).pathname : url;
  return path.startsWith(ROOT) ? relative(ROOT, path) : path;
}

/** Groups a source location into an area: our src/ directories, a package in node_modules, or node internals. */
function area(w: string): string {
  if (w.startsWith('src/')) return w.split('/').slice(0, 3).join('/');
  const nm = w.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = w.slice(nm + 13).split('/');
    return `pkg:${rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  if (w.startsWith('node:')) return `node:${w.slice(5).split('/')[0]}`;
  return w;
}

export function summarizeProfile(file: string, top = 25): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // Native frames (no URL: writev, writeString...) are charged to the nearest JS caller so they land in an area.
  const caller = (id: number): ProfileNode | undefined => {
    for (let cur = parent.get(id); cur !== undefined; cur = parent.get(cur)) {
      const n = byId.get(cur)!;
      if (n.callFrame.url !== '') return n;
    }
    return undefined;
  };
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0));
  let total = 0;
  let idle = 0;
  const fns = new Map<string, { name: string; where: string; us: number }>();
  const areas = new Map<string, number>();
  for (const [id, us] of self) {
    const n = byId.get(id)!;
    total += us;
    const name = n.callFrame.functionName || '(anonymous)';
    if (name === '(idle)') {
      idle += us;
      continue;
    }
    const native = n.callFrame.url === '' && !name.startsWith('(');
    const via = native ? caller(id) : undefined;
    const w = via ? `native, from ${via.callFrame.functionName || '(anonymous)'} ${where(via.callFrame.url)}:${via.callFrame.lineNumber + 1}` : `${where(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;
    const key = `${name} ${w}`;
    const f = fns.get(key) ?? { name, where: w, us: 0 };
    f.us += us;
    fns.set(key, f);
    const a = name === '(garbage collector)' ? '(gc)' : name === '(program)' ? '(program)' : via ? area(where(via.callFrame.url)) : area(where(n.callFrame.url));
    areas.set(a, (areas.get(a) ?? 0) + us);
  }
  const busy = total - idle;
  const pct = (us: number): number => Math.round((us / busy) * 1000) / 10;
  return {
    totalMs: Math.round(total / 1000),
    idlePct: Math.round((idle / total) * 1000) / 10,
    busyMs: Math.round(busy / 1000),
    functions: [...fns.values()].sort((a, b) => b.us - a.us).slice(0, top).map((f) => ({ name: f.name, where: f.where, selfPct: pct(f.us) })),
    areas: [...areas.entries()].sort((a, b) => b[1] - a[1]).slice(0, top).map(([a, us]) => ({ area: a, selfPct: pct(us) })),
  };
}

export function profileMarkdown(file: string, s: ProfileSummary): string {
  const lines = [`Profile ${file}: ${s.totalMs} ms sampled, ${s.idlePct}% idle; shares below are of the ${s.busyMs} ms busy`, '', '| self % | area |', '|---|---|'];
  for (const a of s.areas) lines.push(`| ${a.selfPct} | ${a.area} |`);
  lines.push('', '| self % | function | where |', '|---|---|---|');
  for (const f of s.functions) lines.push(`| ${f.selfPct} | ${f.name} | ${f.where} |`);
  return lines.join('\n');
}

// `node bench/lib/profile.ts <file.cpuprofile>`: print a summary of an existing profile.
if (import.meta.main) {
  for (const f of process.argv.slice(2)) process.stdout.write(`${profileMarkdown(f, summarizeProfile(f))}\n\n`);
}
