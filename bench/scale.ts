/**
 * `npm run bench:scale [-- --rounds R] [--out FILE]`: per-call cost against the size of what the gateway holds, for the
 * parts of a call whose work could grow with it (issue 21's scale scenarios). Each dimension is measured at several
 * sizes with the real code a call runs, CPU time per operation (process.cpuUsage, so other work on a shared machine
 * inflates it less than wall time), interleaved by round (size A, B, C, A, B, C...), median over rounds (min..max):
 * - routes: the route table's match of a request path among 1 .. 1,000 routes (the path of the last route declared,
 *   and a path no route serves);
 * - tools: resolving a federated `tools/call` name to its upstream (names with aliases for long ones, the rule's
 *   backends) with 10 tools from 1 upstream .. 10,000 tools from 50 upstreams;
 * - policy data: one WASM decision with 1 .. 100,000 data entries, looked up by key (`data.acl[principal][tool]`),
 *   and the same grants as a list the policy scans (`some g in data.grants`, the shape of policies/tollgate/grants.rego);
 * - principals: the identity guard admitting a call whose token is cached, 1 .. 1,000 principals in turn.
 * Live sessions (10,000) are measured end to end by `npm run bench:memory -- --sessions 10000 --principals 200`
 * (CPU per request of the same load before and after they are opened).
 * Verdict per dimension: cost at the largest size over the smallest; flat under 1.5x.
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { ResolvedBackend } from '../src/config/load.ts';
import { compileRoutes } from '../src/config/routes.ts';
import type { RouteSpec } from '../src/config/schema.ts';
import { Call } from '../src/core/call.ts';
import { identitySpec, routeAuthSpec } from '../src/guards/identity/config.ts';
import { IdentityGuard, TokenAuthority } from '../src/guards/identity/guard.ts';
import { SpiffeTrustDomain } from '../src/guards/identity/issuers/spiffe.ts';
import { compileRoutePolicy } from '../src/guards/identity/policy.ts';
import { StaticKeySource } from '../src/guards/identity/sources/source.ts';
import type { IssuerDirectory } from '../src/guards/identity/token.ts';
import { readBundle } from '../src/guards/policy/bundle.ts';
import { PolicyEngine } from '../src/guards/policy/engine.ts';
import { FederatedNames } from '../src/protocols/mcp/names.ts';
import { route, type SessionView } from '../src/protocols/mcp/routing.ts';
import { createLogger } from '../src/telemetry/logger.ts';
import { commitInfo } from './lib/results.ts';
import { ROOT } from './lib/targets.ts';

const { values } = parseArgs({ options: { rounds: { type: 'string' }, out: { type: 'string' } } });
const ROUNDS = Number(values.rounds ?? 7);

/** One size of one dimension: `op` is the per-call work, `ops` how many to time per round. */
interface Point {
  readonly size: number;
  readonly what: string;
  readonly op: () => unknown;
  readonly ops: number;
}
interface Dimension {
  readonly name: string;
  readonly points: Point[];
}

let sink: unknown;
function cpuNsPerOp(p: Point): number {
  const t0 = process.cpuUsage();
  for (let i = 0; i < p.ops; i++) sink = p.op();
  const d = process.cpuUsage(t0);
  return ((d.user + d.system) * 1000) / p.ops;
}

// --- routes ---------------------------------------------------------------------------------------------------
const mcpBackend = new Map([['b', { name: 'b', spec: { protocol: 'mcp' } } as unknown as ResolvedBackend]]);
function routesDimension(sizes: number[]): Dimension[] {
  const hit: Point[] = [];
  const miss: Point[] = [];
  for (const n of sizes) {
    const routes = Array.from({ length: n }, (_, i) => ({
      name: `r${i}`,
      spec: { rules: [{ matches: [{ path: { type: 'PathPrefix', value: `/teams/t${i}/mcp` }, headers: [] }], backendRefs: [{ name: 'b' }] }] } as unknown as RouteSpec,
    }));
    const table = compileRoutes(routes, mcpBackend, { maxBodyBytes: 1 << 20 });
    const path = `/teams/t${n - 1}/mcp/github`;
    if (table.match(path, {})?.rule.route.name !== `r${n - 1}`) throw new Error('routes: wrong match');
    hit.push({ size: n, what: `${n} routes, path of the last`, op: () => table.match(path, {}), ops: 200_000 });
    miss.push({ size: n, what: `${n} routes, path no route serves`, op: () => table.match('/nowhere/at/all', {}), ops: 200_000 });
  }
  return [
    { name: 'routes: match (hit)', points: hit },
    { name: 'routes: match (no route)', points: miss },
  ];
}

// --- federated tools ----------------------------------------------------------------------------------------------
function toolsDimension(shapes: Array<[upstreams: number, tools: number]>): Dimension {
  const points: Point[] = [];
  for (const [u, t] of shapes) {
    const names = new FederatedNames('__', () => 4096);
    const backends = Array.from({ length: u }, (_, i) => ({ name: `srv${i}` }));
    let last = '';
    for (let i = 0; i < t; i++) {
      const server = `srv${i % u}`;
      // One tool in ten has a name too long for MCP's rule: the gateway answers with an alias it must resolve.
      last = names.publicName(server, i % 10 === 0 ? `tool_${i}_${'x'.repeat(130)}` : `tool_${i}`);
    }
    const rule = { backends, route: { name: 'mcp', spec: {} } } as unknown as Parameters<typeof route>[3];
    const view = { scope: undefined, virtual: undefined, modern: false } as unknown as SessionView;
    const params = { name: last, arguments: { q: 'x' } };
    if (route('tools/call', params, view, rule, names).target.server !== `srv${(t - 1) % u}`) throw new Error('tools: wrong owner');
    points.push({ size: t, what: `${t} tools from ${u} upstreams`, op: () => route('tools/call', params, view, rule, names), ops: 200_000 });
  }
  return { name: 'tools: resolve a tools/call name', points };
}

// --- policy data --------------------------------------------------------------------------------------------------
const REGO = `package tollgate
import rego.v1
default decision := {"allow": false, "reason": "not granted"}
decision := {"allow": true, "reason": "granted"} if data.acl[input.principal.id][input.target.name]
default scan := {"allow": false, "reason": "not granted"}
scan := {"allow": true, "reason": "granted"} if {
	some g in data.grants
	g.spiffe_id == input.principal.id
	input.target.name in g.tools
}
`;
async function policyDimensions(sizes: number[]): Promise<Dimension[]> {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-bench-scale-'));
  try {
    writeFileSync(join(dir, 'policy.rego'), REGO);
    const out = join(dir, 'bundle.tar.gz');
    execFileSync(process.execPath, [join(ROOT, 'bin/tollgate.mjs'), 'policy', 'build', '--dir', dir, '--output', out, '-e', 'tollgate/decision', '-e', 'tollgate/scan'], { stdio: 'pipe' });
    const bundle = await readBundle(readFileSync(out), { source: 'bench-scale' });
    const keyed: Point[] = [];
    const scanned: Point[] = [];
    for (const n of sizes) {
      const id = (i: number): string => `spiffe://corp.example/ns/team-${i % 50}/sa/agent-${i}`;
      const acl: Record<string, Record<string, boolean>> = {};
      const grants: Array<{ spiffe_id: string; tools: string[] }> = [];
      for (let i = 0; i < n; i++) {
        acl[id(i)] = { [`srv${i % 50}/tool_${i}`]: true };
        grants.push({ spiffe_id: id(i), tools: [`srv${i % 50}/tool_${i}`] });
      }
      const engine = await PolicyEngine.load({ ...bundle, data: { acl, grants } }, { initialPages: 16, maxPages: 65_536 });
      const input = JSON.stringify({ principal: { id: id(n - 1) }, target: { kind: 'tool', name: `srv${(n - 1) % 50}/tool_${n - 1}` }, operation: 'tools/call' });
      for (const e of ['tollgate/decision', 'tollgate/scan']) {
        if ((engine.evaluate(e, input) as { allow: boolean }).allow !== true) throw new Error(`policy ${e}: not allowed at ${n}`);
      }
      keyed.push({ size: n, what: `${n} entries, data.acl[principal][tool]`, op: () => engine.evaluate('tollgate/decision', input), ops: 5_000 });
      scanned.push({ size: n, what: `${n} grants, some g in data.grants`, op: () => engine.evaluate('tollgate/scan', input), ops: n >= 100_000 ? 20 : n >= 10_000 ? 200 : 2_000 });
    }
    return [
      { name: 'policy data: keyed lookup', points: keyed },
      { name: 'policy data: list scan (grants.rego shape)', points: scanned },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// --- principals -----------------------------------------------------------------------------------------------
async function principalsDimension(sizes: number[]): Promise<Dimension> {
  const AUD = 'https://gw.bench/mcp';
  const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
  const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = { ...(pair.publicKey.export({ format: 'jwk' }) as Record<string, string>), kid: 'es', use: 'jwt-svid' };
  const mint = (sub: string): string => {
    const input = `${b64({ alg: 'ES256', kid: 'es', typ: 'JWT' })}.${b64({ sub, aud: [AUD], iat: 1, exp: Math.floor(Date.now() / 1000) + 86_400 })}`;
    return `${input}.${sign('sha256', Buffer.from(input), { key: pair.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
  };
  const log = createLogger('silent');
  const source = new StaticKeySource({ label: 'bench.test', fingerprint: 'bench', profile: 'spiffe', log, doc: { keys: [jwk] } });
  source.start();
  const issuers: IssuerDirectory = { trustDomains: new Map([['bench.test', new SpiffeTrustDomain('bench.test', source)]]), byIss: new Map() };
  const spec = { auth: routeAuthSpec.parse({}), rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/mcp' }, headers: [] }], backendRefs: [{ name: 'b' }] }] } as RouteSpec;
  const policy = compileRoutePolicy('mcp', spec, identitySpec.parse({}), ['bench.test'], ['/mcp']);
  const points: Point[] = [];
  for (const n of sizes) {
    const authority = new TokenAuthority({
      issuers,
      maxTokenBytes: 8192,
      clockSkewSeconds: 30,
      cacheEntries: 10_000,
      audiences: { bases: ['https://gw.bench'], gateway: new Set(['https://gw.bench']), sharedAudience: false },
      negative: { ttlSeconds: 10, maxEntries: 10_000 },
    });
    const guard = new IdentityGuard(authority, new Map([['mcp', policy]]));
    const headers = Array.from({ length: n }, (_, i) => ({ authorization: `Bearer ${mint(`spiffe://bench.test/agents/a${i}`)}` }));
    const callOf = (i: number): Call =>
      new Call({ id: 'bench', protocol: 'mcp', operation: 'tools/call', route: { name: 'mcp', spec }, request: { method: 'POST', path: '/mcp', headers: headers[i]!, remoteAddress: '127.0.0.1' } });
    for (let i = 0; i < n; i++) await guard.admit(callOf(i)); // every token verified once: the calls below hit the cache
    let next = 0;
    points.push({
      size: n,
      what: `${n} principals in turn, cached tokens`,
      op: () => {
        const c = callOf(next);
        next = next + 1 === n ? 0 : next + 1;
        return guard.admit(c);
      },
      ops: 50_000,
    });
  }
  return { name: 'principals: identity admit (cached token)', points };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const dims: Dimension[] = [
  ...routesDimension([1, 10, 100, 1000]),
  toolsDimension([
    [1, 10],
    [5, 100],
    [20, 1000],
    [50, 10_000],
  ]),
  ...(await policyDimensions([1, 1000, 10_000, 100_000])),
  await principalsDimension([1, 10, 100, 1000]),
];
const results: Array<Record<string, unknown>> = [];
for (const d of dims) {
  for (const p of d.points) for (let i = 0; i < 3; i++) cpuNsPerOp({ ...p, ops: Math.max(1, Math.floor(p.ops / 10)) }); // warm-up (JIT)
  const samples = d.points.map(() => [] as number[]);
  for (let r = 0; r < ROUNDS; r++) d.points.forEach((p, i) => samples[i]!.push(cpuNsPerOp(p)));
  const rows = d.points.map((p, i) => ({ size: p.size, what: p.what, nsPerOp: Math.round(median(samples[i]!)), minNs: Math.round(Math.min(...samples[i]!)), maxNs: Math.round(Math.max(...samples[i]!)) }));
  const growth = rows.at(-1)!.nsPerOp / rows[0]!.nsPerOp;
  const sizeRatio = rows.at(-1)!.size / rows[0]!.size;
  const verdict = growth < 1.5 ? 'flat' : growth < Math.log2(sizeRatio) ? 'grows like log(size) or less' : `grows ${growth.toFixed(0)}x over ${sizeRatio}x the size`;
  results.push({ dimension: d.name, rows, growth: Math.round(growth * 100) / 100, verdict });
  process.stdout.write(`${d.name}: ${verdict} (${growth.toFixed(2)}x)\n`);
  for (const r of rows) process.stdout.write(`  ${r.what.padEnd(44)} ${String(r.nsPerOp).padStart(10)} ns/op (${r.minNs}..${r.maxNs})\n`);
}
void sink;
const result = { kind: 'scale', at: new Date().toISOString(), commit: commitInfo(), node: process.version, loadavg: readFileSync('/proc/loadavg', 'utf8').trim(), rounds: ROUNDS, results };
const file = values.out ? resolve(values.out) : join(ROOT, 'bench/results', `scale-${result.at.replace(/[:.]/g, '-')}-${String(result.commit.sha ?? '').slice(0, 8)}.json`);
mkdirSync(dirname(file), { recursive: true });
writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
process.stdout.write(`results: ${file}\n`);
