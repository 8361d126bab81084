import { readFileSync } from 'node:fs';
const p = JSON.parse(readFileSync(process.argv[2]!, 'utf8'));
const byId = new Map<number, any>(p.nodes.map((n: any) => [n.id, n]));
const self = new Map<number, number>();
for (let i = 0; i < p.samples.length; i++) self.set(p.samples[i], (self.get(p.samples[i]) ?? 0) + p.timeDeltas[i]);
const total = new Map<number, number>();
const tot = (id: number): number => { if (total.has(id)) return total.get(id)!; const n = byId.get(id); let t = self.get(id) ?? 0; for (const c of n.children ?? []) t += tot(c); total.set(id, t); return t; };
let busy = 0; for (const [id, us] of self) if (byId.get(id).callFrame.functionName !== '(idle)') busy += us;
// inclusive by function (avoid double counting recursion by only counting topmost occurrence per path)
const agg = new Map<string, number>();
const walk = (id: number, seen: Set<string>) => { const n = byId.get(id); const key = `${n.callFrame.functionName || '(anon)'} ${n.callFrame.url.replace(/.*wt-bench\//, '')}:${n.callFrame.lineNumber + 1}`; const fresh = !seen.has(key); if (fresh) { agg.set(key, (agg.get(key) ?? 0) + tot(id)); seen.add(key); } for (const c of n.children ?? []) walk(c, seen); if (fresh) seen.delete(key); };
walk(p.nodes[0].id, new Set());
const filt = process.argv[3] ? new RegExp(process.argv[3]) : /./;
for (const [k, v] of [...agg.entries()].filter(([k]) => filt.test(k)).sort((a, b) => b[1] - a[1]).slice(0, Number(process.argv[4] ?? 40))) console.log((v / busy * 100).toFixed(1).padStart(6), k);
