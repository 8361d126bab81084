/**
 * The console's data, read from what Tollgate already keeps (no second store): the audit log and its index (calls,
 * chains by trace id, denials, usage over time), the live feed of records being written, the limits report (current
 * usage per budget), the metrics registry and readiness (upstream health), the config snapshot, the policy status
 * and the reload history. Every query is bounded (limits, time ranges, bucket counts) and validated by the caller.
 */
import type { Registry } from 'prom-client';
import { latestRecords, queryLog, type QueryFilter } from '../audit/query.ts';
import { usageSeries, type UsageSeries } from '../audit/usage.ts';
import type { ConfigSnapshot } from '../config/load.ts';
import type { Readiness, ReloadEvent } from '../gateway/gateway.ts';
import type { LimitsReport, ShowFilter } from '../guards/limits/show.ts';
import type { PolicyChange, PolicyStatus } from '../guards/policy/service.ts';
import type { LiveFeed } from './live.ts';
import { viewOfLine, type RecordView } from './views.ts';

export interface ConsoleSources {
  /** The audit directory (undefined when the audit log is disabled). */
  readonly auditDir: string | undefined;
  readonly live: LiveFeed;
  readiness(): Readiness;
  snapshot(): ConfigSnapshot;
  reloads(): readonly ReloadEvent[];
  policy(): PolicyStatus | undefined;
  policyHistory(): readonly PolicyChange[];
  limits(filter: ShowFilter): Promise<LimitsReport>;
  readonly metrics: Registry | undefined;
  /** The team of a principal id (limits.teams), for usage per team. */
  teamOf(principal: string): string | undefined;
}

export interface CallsQuery {
  readonly limit: number;
  readonly principal?: string | undefined;
  readonly protocol?: string | undefined;
  readonly decision?: 'allow' | 'deny' | undefined;
}

function views(lines: Iterable<string>): RecordView[] {
  const out: RecordView[] = [];
  for (const l of lines) {
    const v = viewOfLine(l);
    if (v !== undefined) out.push(v);
  }
  return out;
}

export class ConsoleData {
  readonly src: ConsoleSources;

  constructor(src: ConsoleSources) {
    this.src = src;
  }

  /** The newest calls, newest first (from the log, so a restart loses nothing; protocol filtered on the views). */
  calls(q: CallsQuery): RecordView[] {
    const dir = this.src.auditDir;
    const filter: QueryFilter = { kinds: ['call'], principal: q.principal, decision: q.decision };
    // The live feed's ring holds the newest records: when it has a whole page, no file is read.
    const keep = (v: RecordView): boolean =>
      v.kind === 'call' &&
      (q.protocol === undefined || v.protocol === q.protocol) &&
      (q.decision === undefined || v.allow === (q.decision === 'allow')) &&
      (q.principal === undefined || (q.principal.endsWith('*') ? (v.principal ?? '').startsWith(q.principal.slice(0, -1)) : v.principal === q.principal));
    const recent = this.src.live.recent(q.limit, keep);
    if (dir === undefined || recent.length >= q.limit) return recent;
    if (q.protocol === undefined) return views(latestRecords(dir, filter, q.limit));
    // A protocol is not an index column: read a bounded multiple of the page and filter.
    return views(latestRecords(dir, filter, q.limit * 20))
      .filter((v) => v.protocol === q.protocol)
      .slice(0, q.limit);
  }

  /** One task's records (calls and policy decisions) joined by trace id, in time order. */
  chain(trace: string, limit = 2000): RecordView[] {
    const dir = this.src.auditDir;
    let out: RecordView[];
    if (dir === undefined) out = this.src.live.recent(10_000, (v) => v.trace === trace).reverse();
    else {
      out = [];
      for (const line of queryLog(dir, { trace, kinds: ['call', 'decision'] })) {
        const v = viewOfLine(line);
        if (v !== undefined) out.push(v);
        if (out.length >= limit) break;
      }
    }
    return out.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : a.seq - b.seq));
  }

  /** The newest denials (policy decisions and refused calls), newest first. */
  denials(limit: number, principal?: string): RecordView[] {
    const dir = this.src.auditDir;
    if (dir === undefined) return this.src.live.recent(limit, (v) => v.allow === false && (principal === undefined || v.principal === principal));
    return views(latestRecords(dir, { kinds: ['call', 'decision'], decision: 'deny', principal }, limit));
  }

  usage(q: { since: number; until: number; buckets: number; by: 'agent' | 'team'; principal?: string | undefined }): UsageSeries | undefined {
    const dir = this.src.auditDir;
    if (dir === undefined) return undefined;
    const groupOf = q.by === 'team' ? (p: string) => this.src.teamOf(p) ?? '(no team)' : undefined;
    return usageSeries(dir, { since: q.since, until: q.until, buckets: q.buckets, principal: q.principal, groupOf });
  }

  /** Upstream health: readiness per upstream, with calls and errors since start from the metrics registry. */
  async upstreams(): Promise<Array<{ name: string; up: boolean; transport: string; detail: string | undefined; calls: number; errors: number }>> {
    const ready = this.src.readiness().upstreams;
    const counts = new Map<string, { calls: number; errors: number }>();
    const metric = this.src.metrics?.getSingleMetric('tollgate_requests_total');
    if (metric !== undefined) {
      const data = await metric.get();
      for (const v of data.values) {
        const name = String(v.labels.upstream ?? '');
        if (name === '') continue;
        const c = counts.get(name) ?? { calls: 0, errors: 0 };
        c.calls += v.value;
        if (v.labels.outcome !== 'ok') c.errors += v.value;
        counts.set(name, c);
      }
    }
    const names = new Set([...Object.keys(ready), ...counts.keys()]);
    return [...names].sort().map((name) => {
      const r = ready[name];
      const c = counts.get(name) ?? { calls: 0, errors: 0 };
      return { name, up: r?.up ?? false, transport: r?.transport ?? 'http', detail: r?.detail, ...c };
    });
  }

  /** The config and policy in force, and their reload history (newest first). */
  config(): {
    revision: number;
    loadedAt: string;
    routes: string[];
    backends: string[];
    rejected: Readiness['config']['rejected'];
    policy: PolicyStatus | undefined;
    reloads: ReloadEvent[];
    policyChanges: PolicyChange[];
  } {
    const s = this.src.snapshot();
    const r = this.src.readiness();
    return {
      revision: s.revision,
      loadedAt: new Date(s.loadedAt).toISOString(),
      routes: [...s.routeSpecs.keys()].sort(),
      backends: [...s.backends.keys()].sort(),
      rejected: r.config.rejected,
      policy: this.src.policy(),
      reloads: [...this.src.reloads()].reverse(),
      policyChanges: [...this.src.policyHistory()].reverse(),
    };
  }
}
