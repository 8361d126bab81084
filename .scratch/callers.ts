import { readFileSync } from 'node:fs';
const p = JSON.parse(readFileSync(process.argv[2]!, 'utf8'));
const byId = new Map<number, any>(p.nodes.map((n: any) => [n.id, n]));
const parent = new Map<number, number>(); for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const self = new Map<number, number>();
for (let i = 0; i < p.samples.length; i++) self.set(p.samples[i], (self.get(p.samples[i]) ?? 0) + p.timeDeltas[i]);
let busy = 0; for (const [id, us] of self) if (byId.get(id).callFrame.functionName !== '(idle)') busy += us;
const agg = new Map<string, number>();
for (const [id, us] of self) { const n = byId.get(id); if (n.callFrame.functionName !== process.argv[3]) continue; const chain: string[] = []; let cur = parent.get(id); while (cur !== undefined && chain.length < Number(process.argv[4] ?? 6)) { const m = byId.get(cur); chain.push(`${m.callFrame.functionName || '(anon)'}@${m.callFrame.url.replace(/.*(wt-bench|node_modules)\//, '').replace('node:internal/', '')}:${m.callFrame.lineNumber + 1}`); cur = parent.get(cur); } const k = chain.join(' < '); agg.set(k, (agg.get(k) ?? 0) + us); }
for (const [k, v] of [...agg.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12)) console.log((v / busy * 100).toFixed(1).padStart(6), k);
