/**
 * Hot reload under load, through the gateway with the official SDK client: a policy edit (Rego rebuilt by the
 * real opa) and a dropped-in bundle take effect while calls run; every call gets either the old or the new
 * decision (no error of any other kind), and a broken edit leaves the policy in force.
 */
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { GATEWAY_YAML, connectClient, eventually, mcpBackend, route, startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { buildBytes, requireOpa, writeTree } from '../helpers/policy.ts';

/** A policy that depends on no identity: `echo` is allowed or refused with a versioned reason. */
function rego(version: string, echo: boolean): string {
  return `package tollgate

default decision := {"allow": false, "reason": "${version}: closed"}

decision := {"allow": true} if input.operation != "tools/call"

decision := {"allow": ${echo}, "reason": "${version}: echo ${echo ? 'open' : 'closed'}"} if input.target.local == "echo"

visible contains t.name if some t in input.targets
`;
}

type Outcome = 'allowed' | `denied:${string}` | `error:${string}`;

async function callEcho(client: Client): Promise<Outcome> {
  try {
    await client.callTool({ name: 'fixture__echo', arguments: { message: 'hi' } });
    return 'allowed';
  } catch (err) {
    if (err instanceof McpError && err.code === -32062) return `denied:${err.message.replace(/^MCP error -32062: /, '')}`;
    return `error:${err instanceof Error ? err.message : String(err)}`;
  }
}

interface Load {
  /** Outcomes in time order, per client. */
  readonly seen: Array<Array<{ at: number; outcome: Outcome }>>;
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
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
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
    dir = writeTree({ 'tollgate/main.rego': rego('v1', true) });
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
    await new Promise((r) => setTimeout(r, 300));
    const since = performance.now();
    writeFileSync(join(dir, 'tollgate/main.rego'), rego('v2', false));
    await eventually(async () => (await callEcho(clients[0]!)) === 'denied:v2: echo closed', 10_000, 'the edited policy');
    await new Promise((r) => setTimeout(r, 200));
    await load.stop();
    const ms = analyse(load, 'allowed', 'denied:v2: echo closed', since);
    const total = load.seen.reduce((n, s) => n + s.length, 0);
    console.log(`policy reload (edit .rego -> opa build -> new decision served): ${ms.toFixed(1)} ms; ${total} calls during the test, none failed otherwise`);
  });

  it('a broken edit is refused and the policy in force stays', async () => {
    writeFileSync(join(dir, 'tollgate/main.rego'), 'package tollgate\n\ndecision := {"allow": true} if {\n');
    const load = runLoad(clients);
    await new Promise((r) => setTimeout(r, 600));
    await load.stop();
    for (const calls of load.seen) for (const c of calls) expect(c.outcome).toBe('denied:v2: echo closed');
    // Fixing it is picked up again.
    writeFileSync(join(dir, 'tollgate/main.rego'), rego('v3', true));
    await eventually(async () => (await callEcho(clients[0]!)) === 'allowed', 10_000, 'the fixed policy');
  });

  it('a policy whose build succeeds but lacks the entrypoint is refused too', async () => {
    writeFileSync(join(dir, 'tollgate/main.rego'), 'package tollgate\n\nsomething_else := true\n');
    await new Promise((r) => setTimeout(r, 500));
    expect(await callEcho(clients[0]!)).toBe('allowed');
  });
});

describe('hot reload of a dropped-in bundle', () => {
  let gw: TestGateway;
  let dir: string;
  let clients: Client[];

  beforeAll(async () => {
    dir = writeTree({});
    writeFileSync(join(dir, 'bundle.tar.gz'), await buildBytes({ 'tollgate/main.rego': rego('b1', true) }, ['tollgate/decision', 'tollgate/visible']));
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

  it('a new bundle (atomic rename) takes effect while calls run', async () => {
    expect(await callEcho(clients[0]!)).toBe('allowed');
    const next = await buildBytes({ 'tollgate/main.rego': rego('b2', false) }, ['tollgate/decision', 'tollgate/visible']);
    writeFileSync(join(dir, '.incoming'), next);
    const load = runLoad(clients);
    await new Promise((r) => setTimeout(r, 300));
    const since = performance.now();
    renameSync(join(dir, '.incoming'), join(dir, 'bundle.tar.gz'));
    await eventually(async () => (await callEcho(clients[0]!)) === 'denied:b2: echo closed', 10_000, 'the new bundle');
    await new Promise((r) => setTimeout(r, 200));
    await load.stop();
    const ms = analyse(load, 'allowed', 'denied:b2: echo closed', since);
    console.log(`policy reload (bundle dropped in -> new decision served): ${ms.toFixed(1)} ms`);
  });

  it('a corrupt bundle leaves the policy in force', async () => {
    writeFileSync(join(dir, 'bundle.tar.gz'), 'not a bundle');
    await new Promise((r) => setTimeout(r, 400));
    expect(await callEcho(clients[0]!)).toBe('denied:b2: echo closed');
  });
});
