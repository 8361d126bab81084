/**
 * The operator console in a real headless Chromium (Debian's /usr/bin/chromium driven by playwright-core), against a
 * gateway that served a mixed run of MCP tool calls, A2A messages and OpenAI-compatible model calls with policy
 * denials and a budget refusal (test/helpers/console.ts). One browser launch for the file. Checks:
 * - the live view lists the run's calls and shows a new call as it happens (SSE), without a reload;
 * - the chain view shows one task's spans in the order they were made, across MCP, A2A and model calls, and links
 *   to the trace backend through the configured template;
 * - the denials view shows the policy's reason; the usage view shows charts and the budget that was hit;
 * - a tool named `<img src=x onerror=alert(1)>` renders as text: no <img> element, no dialog, no CSP violation;
 * - keyboard: the skip link is the first Tab stop and moves focus to the content; form fields have labels.
 * Screenshots go to test-results/console/.
 */
import { mkdirSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, FRUGAL, startConsoleRun, SUPPORT, TRACE_URL, XSS_TOOL, type ConsoleRun } from '../helpers/console.ts';

const SHOTS = 'test-results/console';
const CHROMIUM = '/usr/bin/chromium';

let run: ConsoleRun;
let browser: Browser;
let context: BrowserContext;
const dialogs: string[] = [];
const cspViolations: string[] = [];
const pageErrors: string[] = [];

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true });
  run = await startConsoleRun();
  // A missing browser fails the run loudly (scripts/install-tools.sh installs Debian's chromium).
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
  // The administrator's token on every request, as a reverse proxy in front of the admin listener would add it.
  context = await browser.newContext({ extraHTTPHeaders: { authorization: `Bearer ${run.consoleToken(ADMIN)}` }, viewport: { width: 1400, height: 900 } });
}, 90_000);

afterAll(async () => {
  await context?.close();
  await browser?.close();
  await run?.stop();
});

async function open(path: string): Promise<Page> {
  const page = await context.newPage();
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
  });
  page.on('pageerror', (e) => pageErrors.push(e.message));
  const res = await page.goto(`${run.gw.adminUrl}${path}`);
  expect(res?.status(), path).toBe(200);
  return page;
}

describe('operator console in Chromium', () => {
  it('live view: lists the mixed run, then shows a new call as it happens; markup in a tool name stays text', async () => {
    const page = await open('/console');
    const table = page.locator('#calls tbody');
    await expect.poll(() => page.locator('body').getAttribute('data-live-state')).toBe('on');
    const text = await table.innerText();
    for (const s of ['tools__search', 'llama-3.1-8b-instruct', 'echo', 'mcp', 'openai', 'a2a', SUPPORT, FRUGAL, 'denied']) expect(text).toContain(s);
    // The budget hit: the frugal agent's call, refused with the budget that refused it.
    expect(await table.locator('tr', { hasText: FRUGAL }).first().innerText()).toMatch(/429 limited \(budget_exceeded by frugal-daily\)/);
    // The markup-named tool is a cell's text, not an element.
    await expect.poll(() => page.getByText(`tools__${XSS_TOOL}`, { exact: true }).count()).toBeGreaterThan(0);
    expect(await page.locator('img').count()).toBe(0);
    // A call made now appears without a reload, pushed over SSE.
    const newcomer = `spiffe://example.org/agents/live-${Date.now()}`;
    await run.callTool(newcomer, XSS_TOOL);
    await page.getByText(newcomer).first().waitFor({ timeout: 10_000 });
    expect(await table.locator('tr').first().innerText()).toContain(newcomer);
    expect(await page.locator('img').count()).toBe(0);
    await page.screenshot({ path: `${SHOTS}/live.png`, fullPage: true });
    await page.close();
  });

  it("chain view: one task's spans across MCP, A2A and model calls, in order, linked to the trace backend", async () => {
    const page = await open(`/console/chain?trace=${run.task.trace}`);
    const items = page.locator('ol.timeline > li:not(.decision)');
    const texts = await items.allInnerTexts();
    // The task's own steps; the rest of the chain is the MCP session's set-up, the list and the A2A card fetch.
    const calls = texts.filter((t) => /· (tools\/call|chat\.completions|SendMessage) ·/.test(t));
    expect(texts.some((t) => t.includes('tools/list'))).toBe(true);
    expect(calls.length).toBe(run.task.steps.length);
    calls.forEach((t, i) => {
      const [protocol, target] = run.task.steps[i]!;
      expect(t, `step ${i}`).toContain(target);
      expect(t, `step ${i}`).toMatch(new RegExp(`^${protocol} ·`, 'm'));
    });
    const offsets = texts.map((t) => Number(/^\+([\d,]+) ms/m.exec(t)![1]!.replaceAll(',', '')));
    expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
    expect(await page.getByText(`tools__${XSS_TOOL}`).count()).toBeGreaterThan(0);
    const link = page.getByRole('link', { name: 'Open in the trace backend' });
    expect(await link.getAttribute('href')).toBe(TRACE_URL.replace('{traceId}', run.task.trace));
    expect(await page.locator('img').count()).toBe(0);
    await page.screenshot({ path: `${SHOTS}/chain.png`, fullPage: true });
    await page.close();
  });

  it("denials view: shows the policy's reason and the redacted input", async () => {
    const page = await open('/console/denials');
    const rows = page.locator('#denials tbody tr', { hasText: SUPPORT });
    expect(await rows.count()).toBeGreaterThan(0);
    const text = await rows.first().innerText();
    expect(text).toMatch(/may not use tool tools__(search|delete_all)/);
    expect(await page.locator('#denials').innerText()).not.toContain('sk-live-should-never-show');
    await page.screenshot({ path: `${SHOTS}/denials.png`, fullPage: true });
    await page.close();
  });

  it('usage view: charts over time and the budget the frugal agent hit', async () => {
    const page = await open('/console/usage?range=1h&by=agent');
    expect(await page.locator('figure.chart svg rect').count()).toBeGreaterThan(0);
    expect(await page.locator('#groups').innerText()).toContain('spiffe://example.org/agents/worker');
    const usage = await (await context.request.get(`${run.gw.adminUrl}/console/api/usage?range=1h&by=agent`)).json();
    const worker = usage.usage.groups.find((g: { name: string }) => g.name === 'spiffe://example.org/agents/worker');
    expect(worker.tokens).toBeGreaterThan(0);
    expect(worker.cost).toBeGreaterThan(0);
    expect(usage.usage.groups.find((g: { name: string }) => g.name === FRUGAL)).toMatchObject({ calls: 1, tokens: 0 });
    expect(await page.locator('#budgets').innerText()).toContain('frugal-daily');
    await page.screenshot({ path: `${SHOTS}/usage.png`, fullPage: true });
    await page.close();
  });

  it('upstreams and config views; keyboard navigation and labels', async () => {
    const up = await open('/console/upstreams');
    const rows = await up.locator('#upstreams tbody').innerText();
    for (const name of ['tools', 'vllm-llama', 'echo']) expect(rows).toContain(name);
    await up.screenshot({ path: `${SHOTS}/upstreams.png`, fullPage: true });
    await up.close();
    const page = await open('/console/config');
    expect(await page.locator('dl.facts').innerText()).toMatch(/Config revision/);
    expect(await page.locator('#reloads tbody tr').count()).toBeGreaterThan(0);
    expect(await page.locator('#policy-changes tbody tr').count()).toBeGreaterThan(0);
    await page.screenshot({ path: `${SHOTS}/config.png`, fullPage: true });
    // The first Tab stop is the skip link; following it puts focus on the main content.
    await page.keyboard.press('Tab');
    expect(await page.evaluate('document.activeElement?.textContent')).toBe('Skip to content');
    await page.keyboard.press('Enter');
    expect(await page.evaluate('document.activeElement?.id')).toBe('main');
    // Then the navigation is reachable by keyboard, and the current page is marked.
    expect(await page.locator('nav a[aria-current="page"]').innerText()).toBe('Config and policy');
    await page.close();
    const live = await open('/console');
    for (const id of ['f-principal', 'f-protocol']) expect(await live.locator(`label[for="${id}"]`).count()).toBe(1);
    await live.close();
  });

  it('ran no script from data: no dialog, no CSP violation, no page error', () => {
    expect(dialogs).toEqual([]);
    expect(cspViolations).toEqual([]);
    expect(pageErrors).toEqual([]);
  });
});
