/**
 * The console's pages, rendered on the server with hono/html: every interpolated value is escaped by the `html` tag
 * (tool names, arguments, agent card fields, policy reasons are data, never markup), no inline script or style (the
 * Content-Security-Policy forbids both), charts are SVG drawn here. The only script is /console/static/console.js
 * (live updates). Each page is a landmark-structured document with a skip link, labelled forms and captioned tables.
 */
import { html, raw } from 'hono/html';
import type { HtmlEscapedString } from 'hono/utils/html';
import type { UsageSeries } from '../audit/usage.ts';
import type { BudgetReport, LimitsReport } from '../guards/limits/show.ts';
import type { ConsoleData } from './data.ts';
import type { RecordView } from './views.ts';

type H = HtmlEscapedString | Promise<HtmlEscapedString>;

const NAV: ReadonlyArray<[string, string]> = [
  ['/console', 'Live calls'],
  ['/console/denials', 'Denials'],
  ['/console/usage', 'Budgets and usage'],
  ['/console/upstreams', 'Upstreams'],
  ['/console/config', 'Config and policy'],
];

export function layout(title: string, current: string, body: H, opts: { admin?: string; live?: boolean } = {}): H {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · Tollgate console</title>
<link rel="stylesheet" href="/console/static/console.css">
<script src="/console/static/console.js" defer></script>
</head>
<body${opts.live ? raw(' data-live="/console/api/live"') : ''}>
<a class="skip" href="#main">Skip to content</a>
<header>
<p class="brand">Tollgate console</p>
<nav aria-label="Console pages"><ul>
${NAV.map(([href, label]) => html`<li><a href="${href}"${href === current ? raw(' aria-current="page"') : ''}>${label}</a></li>`)}
</ul></nav>
${opts.admin ? html`<form class="logout" method="post" action="/console/logout"><span>Signed in as ${opts.admin}</span> <button type="submit">Sign out</button></form>` : ''}
</header>
<main id="main" tabindex="-1">
<h1>${title}</h1>
${body}
</main>
</body>
</html>`;
}

function fmtNum(n: number | undefined, digits = 0): string {
  return n === undefined ? '' : n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

function decisionText(v: RecordView): string {
  return v.allow === undefined ? '' : v.allow ? 'allow' : 'deny';
}

function tokens(v: RecordView): string {
  if (v.inputTokens === undefined && v.outputTokens === undefined) return '';
  return `${fmtNum(v.inputTokens)} in / ${fmtNum(v.outputTokens)} out`;
}

function traceLink(v: RecordView): H | string {
  return v.trace === undefined ? '' : html`<a href="/console/chain?trace=${v.trace}">chain</a>`;
}

/** The columns of the live table; console.js builds the same cells from the SSE events. */
export const CALL_COLUMNS = ['Time', 'Protocol', 'Principal', 'Operation', 'Target', 'Decision', 'Status', 'Latency (ms)', 'Tokens', 'Cost', 'Chain'] as const;

export function callRow(v: RecordView): H {
  return html`<tr class="${v.allow === false ? 'deny' : v.outcome === 'ok' ? 'ok' : 'err'}">
<td><time datetime="${v.time}">${v.time.replace('T', ' ').replace('Z', '')}</time></td><td>${v.protocol ?? ''}</td><td class="wrap">${v.principal ?? ''}</td>
<td>${v.operation ?? ''}</td><td class="wrap">${v.target ?? v.model ?? ''}</td><td>${decisionText(v)}</td><td>${v.status ?? ''} ${v.outcome ?? ''}${v.outcome === 'limited' && v.limit ? ` (${v.limit})` : ''}</td>
<td class="num">${fmtNum(v.ms, 1)}</td><td class="num">${tokens(v)}</td><td class="num">${v.cost === undefined ? '' : fmtNum(v.cost, 6)}</td><td>${traceLink(v)}</td></tr>`;
}

export function livePage(rows: readonly RecordView[], filter: { principal?: string | undefined; protocol?: string | undefined }): H {
  return html`<p>The newest calls, updated as they happen (from the audit log and its live feed).</p>
<form class="filters" method="get" action="/console">
<label for="f-principal">Principal</label> <input id="f-principal" name="principal" value="${filter.principal ?? ''}" placeholder="spiffe://… or prefix*">
<label for="f-protocol">Protocol</label> <input id="f-protocol" name="protocol" value="${filter.protocol ?? ''}" placeholder="mcp, openai, a2a…">
<button type="submit">Filter</button>
</form>
<p id="live-status" role="status" aria-live="polite">Live updates: connecting…</p>
<table id="calls" data-principal="${filter.principal ?? ''}" data-protocol="${filter.protocol ?? ''}">
<caption>Calls, newest first</caption>
<thead><tr>${CALL_COLUMNS.map((c) => html`<th scope="col">${c}</th>`)}</tr></thead>
<tbody>${rows.map(callRow)}</tbody>
</table>`;
}

export function chainPage(trace: string, rows: readonly RecordView[], traceUrl: string | undefined): H {
  if (rows.length === 0) return html`<p>No records of trace <code>${trace}</code> in the audit log.</p>`;
  const t0 = Date.parse(rows[0]!.time);
  const ends = rows.map((r) => Date.parse(r.time) + (r.ms ?? 0));
  const span = Math.max(1, Math.max(...ends) - t0);
  const link = traceUrl === undefined ? undefined : traceUrl.replaceAll('{traceId}', trace);
  return html`<p>Trace <code>${trace}</code>: ${rows.filter((r) => r.kind === 'call').length} calls across ${new Set(rows.map((r) => r.protocol)).size} protocols, ${fmtNum(span)} ms.
${link ? html` <a href="${link}" rel="noopener noreferrer">Open in the trace backend</a>` : ''}</p>
<ol class="timeline" aria-label="Spans in time order">
${rows.map((r) => {
  const start = Date.parse(r.time) - t0;
  const x = (start / span) * 100;
  const w = Math.max(0.5, ((r.ms ?? 0) / span) * 100);
  return html`<li class="${r.kind === 'decision' ? 'decision' : r.allow === false ? 'deny' : 'call'}">
<span class="when">+${fmtNum(start)} ms</span>
<span class="what">${r.kind === 'decision' ? 'policy decision' : r.protocol ?? ''} · ${r.operation ?? ''} · <strong>${r.target ?? r.model ?? ''}</strong></span>
<span class="who">${r.principal ?? ''}</span>
<span class="result">${decisionText(r)}${r.reason ? html` (${r.reason})` : ''} ${r.kind === 'call' ? html`${r.status ?? ''} ${r.outcome ?? ''}, ${fmtNum(r.ms, 1)} ms` : ''}${tokens(r) ? html`, ${tokens(r)}` : ''}</span>
<svg class="bar" viewBox="0 0 100 4" preserveAspectRatio="none" role="img" aria-label="${`from ${fmtNum(start)} ms for ${fmtNum(r.ms, 1)} ms`}"><rect x="${x.toFixed(2)}" y="0" width="${w.toFixed(2)}" height="4"></rect></svg>
</li>`;
})}
</ol>`;
}

export function denialsPage(rows: readonly RecordView[], principal: string | undefined): H {
  return html`<p>The newest refusals by policy, with the policy's reason and the input it saw (as the audit log keeps it: redacted).</p>
<form class="filters" method="get" action="/console/denials">
<label for="d-principal">Principal</label> <input id="d-principal" name="principal" value="${principal ?? ''}" placeholder="spiffe://… or prefix*">
<button type="submit">Filter</button>
</form>
<table id="denials"><caption>Denials, newest first</caption>
<thead><tr><th scope="col">Time</th><th scope="col">Record</th><th scope="col">Principal</th><th scope="col">Operation</th><th scope="col">Target</th><th scope="col">Reason</th><th scope="col">Input</th><th scope="col">Chain</th></tr></thead>
<tbody>${rows.map(
    (v) => html`<tr><td><time datetime="${v.time}">${v.time.replace('T', ' ').replace('Z', '')}</time></td><td>${v.kind}</td><td class="wrap">${v.principal ?? ''}</td><td>${v.operation ?? ''}</td>
<td class="wrap">${v.target ?? ''}</td><td class="reason">${v.reason ?? v.code ?? ''}</td><td><code class="input">${v.input ?? ''}</code></td><td>${traceLink(v)}</td></tr>`,
  )}</tbody></table>`;
}

/** A bar chart of one series, as SVG with a title and a text alternative (the table below it). */
function chart(id: string, label: string, values: readonly number[], fmt: (n: number) => string): H {
  const max = Math.max(1e-9, ...values);
  const w = 100 / Math.max(1, values.length);
  return html`<figure class="chart"><figcaption id="${id}-cap">${label} (max ${fmt(Math.max(0, ...values))})</figcaption>
<svg viewBox="0 0 100 40" preserveAspectRatio="none" role="img" aria-labelledby="${id}-cap">
${values.map((v, i) => {
  const h = (v / max) * 40;
  return html`<rect x="${(i * w).toFixed(3)}" y="${(40 - h).toFixed(3)}" width="${(w * 0.9).toFixed(3)}" height="${h.toFixed(3)}"><title>${fmt(v)}</title></rect>`;
})}
</svg></figure>`;
}

export function usagePage(series: UsageSeries | undefined, limits: LimitsReport | undefined, q: { range: string; by: string; principal?: string | undefined }, ms: number): H {
  const ranges = ['1h', '24h', '7d', '30d'];
  return html`<form class="filters" method="get" action="/console/usage">
<label for="u-range">Range</label> <select id="u-range" name="range">${ranges.map((r) => html`<option value="${r}"${r === q.range ? raw(' selected') : ''}>${r}</option>`)}</select>
<label for="u-by">Group by</label> <select id="u-by" name="by">${['team', 'agent'].map((b) => html`<option value="${b}"${b === q.by ? raw(' selected') : ''}>${b}</option>`)}</select>
<label for="u-principal">Principal</label> <input id="u-principal" name="principal" value="${q.principal ?? ''}" placeholder="spiffe://… or prefix*">
<button type="submit">Show</button>
</form>
${
  series === undefined
    ? html`<p>The audit log is disabled: no usage history.</p>`
    : html`<p>From the audit log's index, ${fmtNum(series.buckets.reduce((a, b) => a + b.calls, 0))} calls in ${fmtNum(ms)} ms.</p>
<div class="charts">
${chart('c-calls', 'Calls per bucket', series.buckets.map((b) => b.calls), (n) => fmtNum(n))}
${chart('c-denied', 'Denied calls per bucket', series.buckets.map((b) => b.denied), (n) => fmtNum(n))}
${chart('c-tokens', 'Tokens per bucket', series.buckets.map((b) => b.tokens), (n) => fmtNum(n))}
${chart('c-cost', 'Cost per bucket', series.buckets.map((b) => b.cost), (n) => fmtNum(n, 4))}
</div>
<table id="groups"><caption>Usage per ${q.by}, most expensive first</caption>
<thead><tr><th scope="col">${q.by === 'team' ? 'Team' : 'Agent'}</th><th scope="col">Calls</th><th scope="col">Denied</th><th scope="col">Tokens</th><th scope="col">Cost</th></tr></thead>
<tbody>${series.groups.map((g) => html`<tr><td class="wrap">${g.name}</td><td class="num">${fmtNum(g.calls)}</td><td class="num">${fmtNum(g.denied)}</td><td class="num">${fmtNum(g.tokens)}</td><td class="num">${fmtNum(g.cost, 4)}</td></tr>`)}</tbody></table>`
}
<h2>Budgets and rate limits now</h2>
${limits === undefined ? html`<p>The limit store is unavailable.</p>` : limitsTable(limits)}`;
}

function limitsTable(r: LimitsReport): H {
  const budgets = r.limits.filter((l): l is BudgetReport => l.kind === 'budget');
  const rows = budgets.flatMap((b) =>
    (b.counters.length === 0 ? [{ key: {} as Record<string, string>, tokens: undefined, cost: undefined }] : b.counters).map(
      (c) => html`<tr><td>${b.name}</td><td class="wrap">${b.counters.length === 0 ? 'nothing charged in this window' : Object.entries(c.key).map(([k, v]) => `${k}=${v}`).join(', ')}</td><td>${b.window} (resets ${b.resetsAt})</td>
<td class="num">${c.tokens ? `${fmtNum(c.tokens.used)} used / ${fmtNum(c.tokens.remaining)} left` : ''}</td><td class="num">${c.cost ? `${c.cost.used} used / ${c.cost.remaining} left ${b.currency}` : ''}</td></tr>`,
    ),
  );
  const rates = r.limits.filter((l) => l.kind === 'rate');
  return html`<table id="budgets"><caption>Budgets (store: ${r.store}${r.truncated ? ', truncated' : ''})</caption>
<thead><tr><th scope="col">Budget</th><th scope="col">Key</th><th scope="col">Window</th><th scope="col">Tokens</th><th scope="col">Cost</th></tr></thead>
<tbody>${rows}</tbody></table>
<p>${rates.length} rate limit(s) in force: ${rates.map((l) => l.name).join(', ')}</p>`;
}

export function upstreamsPage(rows: Awaited<ReturnType<ConsoleData['upstreams']>>): H {
  return html`<table id="upstreams"><caption>Upstreams: health now, calls since the gateway started (metrics)</caption>
<thead><tr><th scope="col">Upstream</th><th scope="col">Health</th><th scope="col">Transport</th><th scope="col">Calls</th><th scope="col">Not ok</th><th scope="col">Detail</th></tr></thead>
<tbody>${rows.map((u) => html`<tr class="${u.up ? 'ok' : 'err'}"><td>${u.name}</td><td>${u.up ? 'up' : 'down'}</td><td>${u.transport}</td><td class="num">${fmtNum(u.calls)}</td><td class="num">${fmtNum(u.errors)}</td><td class="wrap">${u.detail ?? ''}</td></tr>`)}</tbody></table>`;
}

export function configPage(c: ReturnType<ConsoleData['config']>): H {
  return html`<dl class="facts">
<dt>Config revision</dt><dd>${c.revision} (loaded ${c.loadedAt})</dd>
<dt>Routes</dt><dd>${c.routes.join(', ')}</dd>
<dt>Backends</dt><dd>${c.backends.join(', ')}</dd>
<dt>Policy in force</dt><dd>${c.policy?.active ? `${c.policy.active.revision} from ${c.policy.active.source}` : 'none'}</dd>
${c.rejected ? html`<dt>Refused edit</dt><dd class="err">${c.rejected.at}: ${c.rejected.issues.map((i) => `${i.file}:${i.line}: ${i.message}`).join('; ')}</dd>` : ''}
</dl>
<table id="reloads"><caption>Config reloads, newest first</caption>
<thead><tr><th scope="col">Time</th><th scope="col">Revision in force</th><th scope="col">Result</th></tr></thead>
<tbody>${c.reloads.map((r) => html`<tr class="${r.applied ? 'ok' : 'err'}"><td>${r.at}</td><td>${r.revision}</td><td>${r.applied ? 'applied' : `refused: ${(r.issues ?? []).map((i) => i.message).join('; ')}`}</td></tr>`)}</tbody></table>
<table id="policy-changes"><caption>Policies put in force, newest first</caption>
<thead><tr><th scope="col">Time</th><th scope="col">Source</th><th scope="col">Revision</th><th scope="col">Reload (ms)</th></tr></thead>
<tbody>${c.policyChanges.map((p) => html`<tr><td>${p.at}</td><td>${p.source}</td><td>${p.revision ?? ''}</td><td class="num">${p.reloadMs ?? ''}</td></tr>`)}</tbody></table>`;
}

export function loginPage(message: string | undefined): H {
  return html`<p>Sign in with a token whose audience names this console (<code>/console</code>) and whose identity is an administrator of this gateway.
The token is kept in an HttpOnly cookie of this console only and is never shown on a page.</p>
${message ? html`<p class="err" role="alert">${message}</p>` : ''}
<form class="login" method="post" action="/console/login">
<label for="token">Token (JWT)</label>
<textarea id="token" name="token" rows="4" cols="80" autocomplete="off" spellcheck="false" required></textarea>
<button type="submit">Sign in</button>
</form>`;
}

export function forbiddenPage(reason: string): H {
  return html`<p class="err" role="alert">${reason}</p><p>This identity may not use the console. Ask an administrator of this gateway.</p>`;
}
