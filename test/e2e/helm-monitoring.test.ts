/**
 * The chart's alerting and dashboard against the real gateway: the PrometheusRule's rules pass `promtool check
 * rules` (promtool from the Go module proxy), `promtool test rules` shows the alerts fire on the series they watch,
 * every alert and dashboard query parses as PromQL, and every metric they name is one a running gateway (with Redis,
 * audit and policy on, after real MCP calls) exports on /metrics.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parser } from '@prometheus-io/lezer-promql';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { connectClient, GATEWAY_YAML, mcpBackend, route, startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { ALL_FEATURES, CHART, find, render } from '../helpers/helm.ts';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6390';
const work = mkdtempSync(join(tmpdir(), 'tollgate-monitoring-'));

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
}
type Groups = Array<{ name: string; rules: Rule[] }>;

function ruleGroups(files: string[] = []): Groups {
  const objects = render({ files, json: { 'metrics.prometheusRule.enabled': true } });
  return (find(objects, 'PrometheusRule').spec as { groups: Groups }).groups;
}

function promtool(args: string[]): { status: number | null; out: string } {
  const r = spawnSync('promtool', args, { encoding: 'utf8' });
  if (r.error) throw new Error(`cannot run promtool (scripts/install-tools.sh builds it): ${r.error.message}`);
  return { status: r.status, out: r.stdout + r.stderr };
}

/** Grafana's variables replaced by what they stand for, so the query is plain PromQL. */
function plain(expr: string): string {
  return expr.replaceAll('$__rate_interval', '5m').replaceAll('$namespace', 'tollgate').replaceAll('$job', 'gw-tollgate-admin');
}

/** The metric names a PromQL expression selects; throws on a syntax error. */
function metricNames(expr: string): string[] {
  const tree = parser.parse(expr);
  const names: string[] = [];
  const errors: number[] = [];
  tree.iterate({
    enter(n) {
      if (n.type.isError) errors.push(n.from);
      if (n.name === 'Identifier' && n.node.parent?.name === 'VectorSelector') names.push(expr.slice(n.from, n.to));
    },
  });
  if (errors.length > 0) throw new Error(`PromQL syntax error at ${errors[0]} in: ${expr}`);
  return names;
}

function dashboardQueries(): Array<{ panel: string; expr: string }> {
  const dash = JSON.parse(readFileSync(join(CHART, 'files/grafana-dashboard.json'), 'utf8')) as { panels: Array<{ title: string; targets: Array<{ expr: string }> }> };
  return dash.panels.flatMap((p) => p.targets.map((t) => ({ panel: p.title, expr: plain(t.expr) })));
}

let fixture: FixtureServer;
let gw: TestGateway;
/** Every series name the gateway exports (histograms as their _bucket/_sum/_count series). */
const exported = new Set<string>();

beforeAll(async () => {
  fixture = await startHttpMcpServer({ name: 'fixture' });
  gw = await startTestGateway(
    { 'mcp.yaml': mcpBackend('fixture', { url: fixture.url }) + route('mcp', '/mcp', ['fixture']) },
    { gatewayYaml: `${GATEWAY_YAML}  redis: { url: ${REDIS_URL}, keyPrefix: "tgmon:" }\n  policy: { bundle: ${join(process.cwd(), 'bundles/tollgate.tar.gz')} }\n` },
  );
  const client = await connectClient(`${gw.url}/mcp`);
  for (let i = 0; i < 3; i++) await client.callTool({ name: 'fixture__echo', arguments: { message: `m${i}` } });
  await client.close();
  const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
  for (const line of text.split('\n')) {
    const typed = /^# TYPE (\S+) (\S+)/.exec(line);
    if (typed) {
      exported.add(typed[1]!);
      if (typed[2] === 'histogram' || typed[2] === 'summary') for (const s of ['_bucket', '_sum', '_count']) exported.add(typed[1]! + s);
    } else if (line !== '' && !line.startsWith('#')) exported.add(/^[^{ ]+/.exec(line)![0]);
  }
});

afterAll(async () => {
  await gw?.stop();
  await fixture?.close();
  rmSync(work, { recursive: true, force: true });
});

describe('chart monitoring: PrometheusRule', () => {
  it('promtool check rules accepts the rules (default thresholds and the all-features values)', () => {
    for (const [name, files] of [['default', []], ['all', [ALL_FEATURES]]] as const) {
      const file = join(work, `rules-${name}.yaml`);
      writeFileSync(file, stringify({ groups: ruleGroups([...files]) }));
      const r = promtool(['check', 'rules', file]);
      expect(r.out).toMatch(/SUCCESS: \d+ rules found/);
      expect(r.status, r.out).toBe(0);
    }
  });

  it('covers overhead burn, errors, config/policy refused, audit back-pressure, budgets, limiter store down', () => {
    const alerts = ruleGroups().flatMap((g) => g.rules.map((r) => r.alert)).filter(Boolean);
    expect(alerts).toEqual(expect.arrayContaining([
      'TollgateOverheadSLOBurnFast', 'TollgateOverheadSLOBurnSlow', 'TollgateErrorRatioHigh', 'TollgateConfigReloadRefused',
      'TollgatePolicyLoadRefused', 'TollgateAuditBackPressure', 'TollgateBudgetExhausted', 'TollgateLimiterStoreDown',
    ]));
  });

  it('promtool test rules: the alerts fire on what they watch, and stay quiet without traffic', () => {
    const rules = join(work, 'rules-test.yaml');
    writeFileSync(rules, stringify({ groups: ruleGroups() }));
    const sel = 'namespace="tollgate", job="gw-tollgate-admin"';
    const pod = `${sel}, pod="gw-tollgate-a"`;
    const tests = {
      rule_files: [rules],
      evaluation_interval: '1m',
      tests: [
        {
          interval: '1m',
          input_series: [
            { series: `tollgate_store_up{${pod}}`, values: '1 1 0x10' },
            { series: `tollgate_config_last_reload_successful{${pod}}`, values: '1 0x10' },
            { series: `tollgate_policy_last_load_successful{${pod}, source="dir"}`, values: '1x12' },
            { series: `tollgate_audit_pending_records{${pod}}`, values: '0 20000x10' },
            // 20% of forwarded calls over the objective for an hour: the fast burn fires.
            { series: `tollgate_overhead_seconds_count{${pod}, protocol="mcp"}`, values: '0+100x90' },
            { series: `tollgate_overhead_seconds_bucket{${pod}, protocol="mcp", le="0.02"}`, values: '0+80x90' },
            { series: `tollgate_limit_rejections_total{${pod}, protocol="mcp", route="mcp", code="TG_BUDGET_EXCEEDED"}`, values: '0+6x20' },
          ],
          alert_rule_test: [] as unknown[],
        },
      ],
    };
    // Annotations are compared verbatim by promtool: take them from the rules themselves.
    const byName = new Map(ruleGroups().flatMap((g) => g.rules).filter((r) => r.alert).map((r) => [r.alert!, r as Rule & { annotations: Record<string, string> }]));
    const expectAlert = (name: string, labels: Record<string, string>, annotations: Record<string, string>): Record<string, unknown> => ({
      alertname: name,
      exp_alerts: [{ exp_labels: { ...byName.get(name)!.labels, ...labels }, exp_annotations: annotations }],
    });
    const ann = (name: string, values: Record<string, string> = {}): Record<string, string> =>
      Object.fromEntries(Object.entries(byName.get(name)!.annotations).map(([k, v]) => [k, v.replace(/\{\{ \$labels\.(\w+) \}\}/g, (_, l: string) => values[l] ?? '')]));
    const onPod = { pod: 'gw-tollgate-a' };
    tests.tests[0]!.alert_rule_test = [
      { eval_time: '10m', ...expectAlert('TollgateLimiterStoreDown', onPod, ann('TollgateLimiterStoreDown', onPod)) },
      { eval_time: '10m', ...expectAlert('TollgateConfigReloadRefused', onPod, ann('TollgateConfigReloadRefused', onPod)) },
      { eval_time: '10m', alertname: 'TollgatePolicyLoadRefused', exp_alerts: [] },
      { eval_time: '10m', ...expectAlert('TollgateAuditBackPressure', onPod, ann('TollgateAuditBackPressure', onPod)) },
      { eval_time: '75m', ...expectAlert('TollgateOverheadSLOBurnFast', {}, ann('TollgateOverheadSLOBurnFast')) },
      { eval_time: '15m', ...expectAlert('TollgateBudgetExhausted', { route: 'mcp' }, ann('TollgateBudgetExhausted', { route: 'mcp' })) },
      // No requests at all: the error ratio is NaN and never fires.
      { eval_time: '10m', alertname: 'TollgateErrorRatioHigh', exp_alerts: [] },
    ];
    const file = join(work, 'rules.test.yaml');
    writeFileSync(file, stringify(tests));
    const r = promtool(['test', 'rules', file]);
    expect(r.out).toContain('SUCCESS');
    expect(r.status, r.out).toBe(0);
  });

  it('every alert names only metrics the running gateway exports', () => {
    const recorded = new Set(ruleGroups().flatMap((g) => g.rules.map((r) => r.record)).filter((r): r is string => r !== undefined));
    const missing: string[] = [];
    for (const rule of ruleGroups().flatMap((g) => g.rules)) {
      for (const name of metricNames(rule.expr)) {
        if (!exported.has(name) && !recorded.has(name) && name !== 'up') missing.push(`${rule.alert ?? rule.record}: ${name}`);
      }
    }
    expect(missing).toEqual([]);
  });
});

describe('chart monitoring: Grafana dashboard and ServiceMonitor', () => {
  it('every dashboard query parses and names only metrics the running gateway exports', () => {
    const queries = dashboardQueries();
    expect(queries.length).toBeGreaterThan(15);
    const missing: string[] = [];
    for (const q of queries) for (const name of metricNames(q.expr)) if (!exported.has(name)) missing.push(`${q.panel}: ${name}`);
    expect(missing).toEqual([]);
    // The scrape the test compares with is real: it holds the gateway's own series after the calls made.
    for (const name of ['tollgate_requests_total', 'tollgate_overhead_seconds_bucket', 'tollgate_store_up', 'tollgate_policy_last_load_successful', 'tollgate_config_last_reload_successful', 'tollgate_audit_pending_records']) {
      expect(exported, name).toContain(name);
    }
  });

  it('the metric-name check can fail: a query naming a metric nobody exports is caught', () => {
    expect(metricNames('sum(rate(tollgate_requests_totals{job="x"}[5m]))').filter((n) => !exported.has(n))).toEqual(['tollgate_requests_totals']);
    expect(() => metricNames('sum(rate(tollgate_requests_total[5m])')).toThrow(/syntax error/);
  });

  it('the dashboard ships in a ConfigMap for the Grafana sidecar; the ServiceMonitor scrapes the admin Service', () => {
    const objects = render({ files: [ALL_FEATURES] });
    const cm = find(objects, 'ConfigMap', 'gw-tollgate-dashboard');
    expect(cm.metadata.labels).toMatchObject({ grafana_dashboard: '1' });
    expect(JSON.parse((cm.data as Record<string, string>)['tollgate.json']!).uid).toBe('tollgate-overview');
    const sm = find(objects, 'ServiceMonitor').spec as { selector: { matchLabels: Record<string, string> }; endpoints: Array<{ port: string; path: string }> };
    expect(sm.endpoints).toEqual([{ port: 'admin', path: '/metrics', interval: '15s' }]);
    const admin = find(objects, 'Service', 'gw-tollgate-admin');
    for (const [k, v] of Object.entries(sm.selector.matchLabels)) expect(admin.metadata.labels).toMatchObject({ [k]: v });
    const pub = find(objects, 'Service', 'gw-tollgate');
    expect(Object.entries(sm.selector.matchLabels).every(([k, v]) => (pub.metadata.labels as Record<string, string>)[k] === v)).toBe(false);
  });
});
