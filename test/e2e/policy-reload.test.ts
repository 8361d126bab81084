/**
 * Hot reload under load, through the gateway with the official SDK client: a policy edit (Rego rebuilt by the
 * real opa) and a dropped-in bundle take effect while calls run; every call gets either the old or the new
 * decision (no error of any other kind), and a broken edit, a corrupt bundle or a bundle without the decision
 * entrypoint leaves the policy in force. "Nothing changed" is only asserted after the refusal was seen (the
 * source's error in the policy status), never after a fixed sleep; load loops stop in `finally` so a failure fails
 * fast. Reload time is bounded (generous multiples of the measured medians); its speed is measured in the bench.
 */
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { GATEWAY_YAML, connectClient, eventually, mcpBackend, route, startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { buildBytes, callEcho, echoRego, requireOpa, writeTree, type EchoOutcome } from '../helpers/policy.ts';

/**
 * Edit of a .rego file -> opa build -> new decision served. Median measured on the shared 2-core machine 0.60 s
 * (load average ~12; 1.26 s seen at load ~18), so 5x is 3 s; the bound is that.
 */
const DIR_RELOAD_BOUND_MS = 3_000;
/**
 * Bundle dropped in (rename) -> new decision served: median 0.11 s at moderate load, but 1.19 s seen at load ~18 on
 * 2 cores; the bound is 3 s (a watcher that stopped working leaves it at "never").
 */
const BUNDLE_RELOAD_BOUND_MS = 3_000;

type Outcome = EchoOutcome;

interface Load {
  /** Outcomes in time order, per client. */
  readonly seen: Array<Array<{ at: number; outcome: Outcome }>>;
  /** Resolves once every client has made `n` more calls than when asked (the load really runs around a change). */
  more(n: number): Promise<void>;
  stop(): Promise<void>;
}

/** Runs `clients.length` sequential call loops until stopped. */
function runLoad(clients: Client[]): Load {
  let running = true;
  const seen = clients.map(() => [] as Array<{ at: number; outcome: Outcome }>);
  const loops = clients.map(async (c, i) => {
    while (running) {
      const outcome = await callEcho(c);
      seen[i]!.push({ at: performance.now(), outcome });
    }
  });
  return {
    seen,
    more: async (n) => {
      const from = seen.map((s) => s.length);
      await eventually(() => seen.every((s, i) => s.length >= from[i]! + n), 10_000, `${n} more calls per client`);
    },
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
}

/** Waits for the refusal signal: the source's last error (policy status) matching `reason`. */
async function refused(gw: TestGateway, kind: 'dir' | 'file', reason: RegExp): Promise<string> {
  const error = (): string | undefined => gw.services.policy.status().sources.find((s) => s.kind === kind)?.error;
  await eventually(() => reason.test(error() ?? ''), 10_000, `the ${kind} source to refuse (${reason}); last error: ${error()}`);
  return error()!;
}

/** Waits until the source has no error (the last load succeeded). */
async function accepted(gw: TestGateway, kind: 'dir' | 'file'): Promise<void> {
  await eventually(() => gw.services.policy.status().sources.find((s) => s.kind === kind)?.error === undefined, 10_000, `the ${kind} source to load`);
}

/** Checks the swap was clean and returns the time from `since` to the first new decision served (ms). */
function analyse(load: Load, before: Outcome, after: Outcome, since: number): number {
  let first = Infinity;
  for (const calls of load.seen) {
    expect(calls.length).toBeGreaterThan(0);
    let switched = false;
    for (const { at, outcome } of calls) {
      expect([before, after]).toContain(outcome); // never an error of another kind
      if (outcome === after) {
        switched = true;
        first = Math.min(first, at);
      } else expect(switched).toBe(false); // once the new policy answers a client, the old one never does again
    }
  }
  expect(first).toBeLessThan(Infinity);
  return first - since;
}

let fixture: FixtureServer;

beforeAll(async () => {
  requireOpa();
  fixture = await startHttpMcpServer({ name: 'fixture' });
});

afterAll(async () => {
  await fixture?.close();
});

describe('hot reload of a Rego directory (opa build on edit)', () => {
  let gw: TestGateway;
  let dir: string;
  let clients: Client[];

  beforeAll(async () => {
    dir = writeTree({ 'tollgate/main.rego': echoRego('v1', true) });
    gw = await startTestGateway(
      { 'mcp.yaml': mcpBackend('fixture', { url: fixture.url }) + route('mcp', '/mcp', ['fixture']) },
      { gatewayYaml: `${GATEWAY_YAML}  policy:\n    dir: ${JSON.stringify(dir)}\n` },
    );
    clients = await Promise.all([0, 1, 2, 3].map(() => connectClient(`${gw.url}/mcp`)));
  });

  afterAll(async () => {
    await Promise.all((clients ?? []).map((c) => c.close()));
    await gw?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('an edit takes effect while calls run; no call fails for any other reason', async () => {
    expect(await callEcho(clients[0]!)).toBe('allowed');
    const load = runLoad(clients);
    let ms: number;
    try {
      await load.more(3);
      const since = performance.now();
      writeFileSync(join(dir, 'tollgate/main.rego'), echoRego('v2', false));
      await eventually(() => load.seen.every((s) => s.some((c) => c.outcome === 'denied:v2: echo closed')), 10_000, 'every client to get the edited policy');
      await load.more(2);
      await load.stop();
      ms = analyse(load, 'allowed', 'denied:v2: echo closed', since);
    } finally {
      await load.stop();
    }
    const total = load.seen.reduce((n, s) => n + s.length, 0);
    console.log(`policy reload (edit .rego -> opa build -> new decision served): ${ms.toFixed(1)} ms; ${total} calls during the test, none failed otherwise`);
    expect(ms).toBeLessThan(DIR_RELOAD_BOUND_MS);
  });

  it('a broken edit is refused and the policy in force stays', async () => {
    await accepted(gw, 'dir');
    const load = runLoad(clients);
    try {
      writeFileSync(join(dir, 'tollgate/main.rego'), 'package tollgate\n\ndecision := {"allow": true} if {\n');
      expect(await refused(gw, 'dir', /opa build failed/)).toMatch(/main\.rego/);
      await load.more(2);
    } finally {
      await load.stop();
    }
    for (const calls of load.seen) for (const c of calls) expect(c.outcome).toBe('denied:v2: echo closed');
    // Fixing it is picked up again.
    writeFileSync(join(dir, 'tollgate/main.rego'), echoRego('v3', true));
    await eventually(async () => (await callEcho(clients[0]!)) === 'allowed', 10_000, 'the fixed policy');
  });

  it('a policy without the decision rule is refused too (by the build, which names the entrypoint)', async () => {
    await accepted(gw, 'dir');
    writeFileSync(join(dir, 'tollgate/main.rego'), 'package tollgate\n\nsomething_else := true\n');
    await refused(gw, 'dir', /opa build failed/);
    expect(await callEcho(clients[0]!)).toBe('allowed');
  });
});

describe('hot reload of a dropped-in bundle', () => {
  let gw: TestGateway;
  let dir: string;
  let clients: Client[];

  beforeAll(async () => {
    dir = writeTree({});
    writeFileSync(join(dir, 'bundle.tar.gz'), await buildBytes({ 'tollgate/main.rego': echoRego('b1', true) }, ['tollgate/decision', 'tollgate/visible']));
    gw = await startTestGateway(
      { 'mcp.yaml': mcpBackend('fixture', { url: fixture.url }) + route('mcp', '/mcp', ['fixture']) },
      { gatewayYaml: `${GATEWAY_YAML}  policy:\n    bundle: ${JSON.stringify(join(dir, 'bundle.tar.gz'))}\n` },
    );
    clients = await Promise.all([0, 1, 2, 3].map(() => connectClient(`${gw.url}/mcp`)));
  });

  afterAll(async () => {
    await Promise.all((clients ?? []).map((c) => c.close()));
    await gw?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Replaces the bundle file atomically (write aside, rename over), as a deployment would. */
  function dropIn(bytes: Buffer | string): void {
    writeFileSync(join(dir, '.incoming'), bytes);
    renameSync(join(dir, '.incoming'), join(dir, 'bundle.tar.gz'));
  }

  it('a new bundle (atomic rename) takes effect while calls run', async () => {
    expect(await callEcho(clients[0]!)).toBe('allowed');
    const next = await buildBytes({ 'tollgate/main.rego': echoRego('b2', false) }, ['tollgate/decision', 'tollgate/visible']);
    const load = runLoad(clients);
    let ms: number;
    try {
      await load.more(3);
      const since = performance.now();
      dropIn(next);
      await eventually(() => load.seen.every((s) => s.some((c) => c.outcome === 'denied:b2: echo closed')), 10_000, 'every client to get the new bundle');
      await load.more(2);
      await load.stop();
      ms = analyse(load, 'allowed', 'denied:b2: echo closed', since);
    } finally {
      await load.stop();
    }
    console.log(`policy reload (bundle dropped in -> new decision served): ${ms.toFixed(1)} ms`);
    expect(ms).toBeLessThan(BUNDLE_RELOAD_BOUND_MS);
  });

  it('a corrupt bundle leaves the policy in force', async () => {
    await accepted(gw, 'file');
    dropIn('not a bundle');
    await refused(gw, 'file', /./);
    expect(await callEcho(clients[0]!)).toBe('denied:b2: echo closed');
  });

  it('a well-formed bundle without the decision entrypoint is refused, and the policy in force stays', async () => {
    // Put a good one back first, so the refusal below is a fresh one.
    dropIn(await buildBytes({ 'tollgate/main.rego': echoRego('b3', false) }, ['tollgate/decision', 'tollgate/visible']));
    await eventually(async () => (await callEcho(clients[0]!)) === 'denied:b3: echo closed', 10_000, 'the b3 bundle');
    await accepted(gw, 'file');
    // Builds fine (opa is only asked for another entrypoint), loads fine as WASM: only the entrypoint check stops it.
    const other = await buildBytes({ 'tollgate/main.rego': `${echoRego('b4', true)}\nother := true\n` }, ['tollgate/other']);
    const load = runLoad(clients);
    try {
      dropIn(other);
      expect(await refused(gw, 'file', /lacks entrypoint/)).toMatch(/tollgate\/decision/);
      await load.more(2);
    } finally {
      await load.stop();
    }
    for (const calls of load.seen) for (const c of calls) expect(c.outcome).toBe('denied:b3: echo closed');
    expect(gw.services.policy.status().active?.revision).toBeDefined();
  });
});
