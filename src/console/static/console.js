// Tollgate console: live updates of the calls table over SSE. Every value is set with textContent (never parsed as
// HTML), so a tool named like markup stays text. No inline script anywhere: the CSP allows only this file.
'use strict';

const MAX_ROWS = 200;
const TRACE = /^[0-9a-f]{32}$/;

function fmt(n, digits) {
  return typeof n === 'number' ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '';
}

function cell(row, text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function rowOf(v) {
  const tr = document.createElement('tr');
  tr.className = v.allow === false ? 'deny' : v.outcome === 'ok' ? 'ok' : 'err';
  const when = document.createElement('time');
  when.dateTime = String(v.time);
  when.textContent = String(v.time).replace('T', ' ').replace('Z', '');
  cell(tr, '').appendChild(when);
  cell(tr, v.protocol || '');
  cell(tr, v.principal || '', 'wrap');
  cell(tr, v.operation || '');
  cell(tr, v.target || v.model || '', 'wrap');
  cell(tr, v.allow === undefined || v.allow === null ? '' : v.allow ? 'allow' : 'deny');
  cell(tr, `${v.status ?? ''} ${v.outcome ?? ''}${v.outcome === 'limited' && v.limit ? ` (${v.limit})` : ''}`);
  cell(tr, fmt(v.ms, 1), 'num');
  const tokens = v.inputTokens === undefined && v.outputTokens === undefined ? '' : `${fmt(v.inputTokens, 0)} in / ${fmt(v.outputTokens, 0)} out`;
  cell(tr, tokens, 'num');
  cell(tr, typeof v.cost === 'number' ? fmt(v.cost, 6) : '', 'num');
  const chain = cell(tr, '');
  if (typeof v.trace === 'string' && TRACE.test(v.trace)) {
    const a = document.createElement('a');
    a.href = `/console/chain?trace=${v.trace}`;
    a.textContent = 'chain';
    chain.appendChild(a);
  }
  return tr;
}

function live() {
  const url = document.body.dataset.live;
  const table = document.getElementById('calls');
  const status = document.getElementById('live-status');
  if (!url || !table || !status || typeof EventSource === 'undefined') return;
  const q = new URLSearchParams();
  if (table.dataset.principal) q.set('principal', table.dataset.principal);
  if (table.dataset.protocol) q.set('protocol', table.dataset.protocol);
  const body = table.tBodies[0];
  const source = new EventSource(q.size > 0 ? `${url}?${q}` : url);
  source.addEventListener('ready', () => {
    status.textContent = 'Live updates: on';
    document.body.dataset.liveState = 'on';
  });
  source.addEventListener('call', (e) => {
    let v;
    try {
      v = JSON.parse(e.data);
    } catch {
      return;
    }
    body.insertBefore(rowOf(v), body.firstChild);
    while (body.rows.length > MAX_ROWS) body.deleteRow(body.rows.length - 1);
  });
  source.addEventListener('error', () => {
    status.textContent = 'Live updates: reconnecting…';
    document.body.dataset.liveState = 'off';
  });
}

document.addEventListener('DOMContentLoaded', live);
