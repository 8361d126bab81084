/**
 * Live policy that never goes stale: a .rego file replaced rather than rewritten (rename over it, `sed -i`, unlink +
 * create, `git checkout`) and a bundle swapped in (rename over, ConfigMap `..data` symlink swap) each take effect,
 * and keep taking effect for the edits after them (a file watch would have gone deaf after the first replacement).
 * The periodic digest check is off in those tests, so only the directory watchers can have seen the changes; another
 * test turns it on and replaces the whole watched directory, which no watcher reports. A broken policy is refused
 * with the compile error on /readyz while the old one serves; SIGHUP rebuilds a policy that is not watched (a real
 * gateway process, two signals). Every decision is checked through the gateway with the official SDK client.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { GATEWAY_YAML, connectClient, devAuthHeaders, eventually, mcpBackend, route, startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.ts';
import { buildBytes, callEcho, ECHO_ENTRYPOINTS, echoRego, requireOpa, writeTree } from '../helpers/policy.ts';

/**
 * Save -> new decision served. opa build dominates (0.1-0.3 s measured here, 0.6 s median and 1.3 s seen at load
 * ~18 in policy-reload.test.ts): 5 s is far from any working watcher and far below "never" (a deaf watcher).
 */
const TAKES_EFFECT_MS = 5_000;

/** What the gateway must answer once `echoRego(version, echo)` is in force. */
function expected(version: string, echo: boolean): string {
  return echo ? 'allowed' : `denied:${version}: echo closed`;
}

/** Waits until the client's calls are decided by `echoRego(version, echo)`. `echo: true` also needs the source error-free. */
async function inForce(client: Client, version: string, echo: boolean, what: string): Promise<number> {
  return eventually(async () => (await callEcho(client)) === expected(version, echo), TAKES_EFFECT_MS, `${what}: ${expected(version, echo)}`);
}

let fixture: FixtureServer;

beforeAll(async () => {
  requireOpa();
  fixture = await startHttpMcpServer({ name: 'fixture' });
});

afterAll(async () => {
  await fixture?.close();
});

function policyGateway(policyYaml: string): Promise<TestGateway> {
  return startTestGateway(
    { 'mcp.yaml': mcpBackend('fixture', { url: fixture.url }) + route('mcp', '/mcp', ['fixture']) },
    { gatewayYaml: `${GATEWAY_YAML}  policy:\n${policyYaml}` },
  );
}

async function readyz(gw: { adminUrl?: string | undefined }): Promise<Record<string, any>> {
  const res = await fetch(`${gw.adminUrl}/readyz`);
  return (await res.json()) as Record<string, any>;
}

describe('a Rego directory edited five ways (directory watchers only: no periodic check)', () => {
  let gw: TestGateway;
  let dir: string;
  let client: Client;
  const file = (): string => join(dir, 'tollgate/main.rego');

  beforeAll(async () => {
    dir = writeTree({ 'tollgate/main.rego': echoRego('v0', true) });
    gw = await policyGateway(`    dir: ${JSON.stringify(dir)}\n    checkIntervalMs: 0\n`);
    client = await connectClient(`${gw.url}/mcp`);
  });

  afterAll(async () => {
    await client?.close();
    await gw?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** An in-place write after each replacement proves the watch survived it. */
  async function inPlace(version: string, echo: boolean): Promise<void> {
    writeFileSync(file(), echoRego(version, echo));
    await inForce(client, version, echo, `in-place write after a replacement (${version})`);
  }

  it('rename over (write aside, rename: most editors, atomic deploys)', async () => {
    expect(await callEcho(client)).toBe('allowed');
    writeFileSync(join(dir, 'tollgate/.main.rego.swp'), echoRego('r1', false));
    renameSync(join(dir, 'tollgate/.main.rego.swp'), file());
    await inForce(client, 'r1', false, 'rename over');
    await inPlace('r2', true);
  });

  it('sed -i (GNU sed writes a temporary file and renames it over)', async () => {
    execFileSync('sed', ['-i', 's/"allow": true, "reason": "r2: echo open"/"allow": false, "reason": "s1: echo closed"/', file()]);
    expect(readFileSync(file(), 'utf8')).toContain('s1: echo closed');
    await inForce(client, 's1', false, 'sed -i');
    await inPlace('s2', true);
  });

  it('unlink + create', async () => {
    unlinkSync(file());
    writeFileSync(file(), echoRego('u1', false));
    await inForce(client, 'u1', false, 'unlink + create');
    await inPlace('u2', true);
  });

  it('git checkout of another revision, then of a new directory in the tree', async () => {
    const git = (...args: string[]): string => execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...args], { cwd: dir, encoding: 'utf8' });
    git('init', '-q', '-b', 'main');
    writeFileSync(file(), echoRego('g1', false));
    await inForce(client, 'g1', false, 'write before the commit');
    git('add', '-A');
    git('commit', '-qm', 'g1');
    git('checkout', '-q', '-b', 'next');
    writeFileSync(file(), echoRego('g2', true));
    git('commit', '-qam', 'g2');
    await inForce(client, 'g2', true, 'write before the second commit');
    git('checkout', '-q', 'main');
    expect(readFileSync(file(), 'utf8')).toContain('g1: echo closed');
    await inForce(client, 'g1', false, 'git checkout main');
    // A branch that adds a package in a new subdirectory: the new directory gets a watcher of its own.
    git('checkout', '-q', 'next');
    await inForce(client, 'g2', true, 'git checkout next');
    mkdirSync(join(dir, 'extra'));
    writeFileSync(join(dir, 'extra/data.json'), '{"a": 1}');
    await eventually(() => gw.services.policy.status().sources[0]?.revision !== undefined, TAKES_EFFECT_MS, 'build after the new directory');
    await inPlace('g3', false);
    writeFileSync(join(dir, 'extra/more.rego'), 'package extra\n\nx := 1\n');
    await eventually(async () => (await readyz(gw)).policy?.revision === gw.services.policy.status().active?.revision, TAKES_EFFECT_MS, 'readyz revision');
    await inPlace('g4', true);
  });

  it('/readyz shows the revision in force and when it was loaded', async () => {
    const before = await readyz(gw);
    expect(before.policy).toMatchObject({ source: dir, revision: expect.stringMatching(/^src-[0-9a-f]{16}$/), loadedAt: expect.any(String) });
    expect(before.policy.rejected).toBeUndefined();
    writeFileSync(file(), echoRego('z1', false));
    await inForce(client, 'z1', false, 'edit');
    const after = await readyz(gw);
    expect(after.policy.revision).not.toBe(before.policy.revision);
    expect(Date.parse(after.policy.loadedAt)).toBeGreaterThan(Date.parse(before.policy.loadedAt));
  });

  it('a broken policy is refused: the old one serves and /readyz says why, until it is fixed', async () => {
    writeFileSync(file(), 'package tollgate\n\ndecision := {"allow": true} if {\n');
    await eventually(async () => (await readyz(gw)).policy?.rejected !== undefined, TAKES_EFFECT_MS, '/readyz to show the refusal');
    const r = await readyz(gw);
    expect(r.policy.rejected.location).toBe(dir);
    expect(r.policy.rejected.error).toMatch(/opa build failed/);
    expect(r.policy.rejected.error).toMatch(/main\.rego:\d+/);
    expect(r.policy.rejected.at).toEqual(expect.any(String));
    expect(r.ready).toBe(true); // the old policy serves: still ready
    expect(await callEcho(client)).toBe(expected('z1', false));
    writeFileSync(file(), echoRego('z2', true));
    await inForce(client, 'z2', true, 'the fixed policy');
    await eventually(async () => (await readyz(gw)).policy?.rejected === undefined, TAKES_EFFECT_MS, '/readyz to drop the refusal');
  });
});

describe('the periodic digest check catches what no watcher reports', () => {
  let gw: TestGateway;
  let parent: string;
  let client: Client;

  beforeAll(async () => {
    parent = mkdtempSync(join(tmpdir(), 'tollgate-policy-root-'));
    writeTree({ 'tollgate/main.rego': echoRego('d1', true) }, join(parent, 'policy'));
    gw = await policyGateway(`    dir: ${JSON.stringify(join(parent, 'policy'))}\n    checkIntervalMs: 200\n`);
    client = await connectClient(`${gw.url}/mcp`);
  });

  afterAll(async () => {
    await client?.close();
    await gw?.stop();
    rmSync(parent, { recursive: true, force: true });
  });

  it('the watched directory itself replaced (moved away, another moved in), and edits after it', async () => {
    expect(await callEcho(client)).toBe('allowed');
    writeTree({ 'tollgate/main.rego': echoRego('d2', false) }, join(parent, 'incoming'));
    renameSync(join(parent, 'policy'), join(parent, 'old'));
    renameSync(join(parent, 'incoming'), join(parent, 'policy'));
    await inForce(client, 'd2', false, 'replaced directory');
    // Re-armed on the new directory: an edit in it is seen.
    writeFileSync(join(parent, 'policy/tollgate/main.rego'), echoRego('d3', true));
    await inForce(client, 'd3', true, 'edit in the new directory');
  });
});

describe('a bundle file swapped in', () => {
  let gw: TestGateway;
  let dir: string;
  let client: Client;

  beforeAll(async () => {
    // A Kubernetes ConfigMap volume: bundle.tar.gz -> ..data/bundle.tar.gz, ..data -> ..<timestamp>/
    dir = mkdtempSync(join(tmpdir(), 'tollgate-bundle-swap-'));
    mkdirSync(join(dir, '..v1'));
    writeFileSync(join(dir, '..v1/bundle.tar.gz'), await buildBytes({ 'tollgate/main.rego': echoRego('b1', true) }, ECHO_ENTRYPOINTS));
    symlinkSync('..v1', join(dir, '..data'));
    symlinkSync('..data/bundle.tar.gz', join(dir, 'bundle.tar.gz'));
    gw = await policyGateway(`    bundle: ${JSON.stringify(join(dir, 'bundle.tar.gz'))}\n    checkIntervalMs: 0\n`);
    client = await connectClient(`${gw.url}/mcp`);
  });

  afterAll(async () => {
    await client?.close();
    await gw?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a ConfigMap-style swap of ..data, twice', async () => {
    expect(await callEcho(client)).toBe('allowed');
    for (const [n, version, echo] of [[2, 'b2', false], [3, 'b3', true]] as const) {
      mkdirSync(join(dir, `..v${n}`));
      writeFileSync(join(dir, `..v${n}/bundle.tar.gz`), await buildBytes({ 'tollgate/main.rego': echoRego(version, echo) }, ECHO_ENTRYPOINTS));
      symlinkSync(`..v${n}`, join(dir, '..data_tmp'));
      renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
      await inForce(client, version, echo, `ConfigMap swap ${n}`);
    }
  });

  it('a bundle renamed over the file, then one written in place', async () => {
    unlinkSync(join(dir, 'bundle.tar.gz'));
    writeFileSync(join(dir, '.incoming'), await buildBytes({ 'tollgate/main.rego': echoRego('b4', false) }, ECHO_ENTRYPOINTS));
    renameSync(join(dir, '.incoming'), join(dir, 'bundle.tar.gz'));
    await inForce(client, 'b4', false, 'bundle renamed over');
    writeFileSync(join(dir, 'bundle.tar.gz'), await buildBytes({ 'tollgate/main.rego': echoRego('b5', true) }, ECHO_ENTRYPOINTS));
    await inForce(client, 'b5', true, 'bundle written in place after the rename');
    const r = await readyz(gw);
    expect(r.policy).toMatchObject({ source: join(dir, 'bundle.tar.gz'), revision: expect.any(String) });
  });
});

describe('SIGHUP rebuilds a policy that is not watched (a real gateway process)', () => {
  let root: string;
  let proc: GatewayProcess | undefined;

  afterAll(async () => {
    if (proc && proc.child.exitCode === null) {
      proc.child.kill('SIGTERM');
      await proc.exited;
    }
    rmSync(root, { recursive: true, force: true });
  });

  it('each SIGHUP rebuilds; the process survives the second one', async () => {
    root = mkdtempSync(join(tmpdir(), 'tollgate-sighup-'));
    const policyDir = writeTree({ 'tollgate/main.rego': echoRego('h0', true) }, join(root, 'policy'));
    const config = join(root, 'routes');
    mkdirSync(config);
    writeFileSync(join(config, 'gateway.yaml'), `${GATEWAY_YAML}  policy:\n    dir: ${JSON.stringify(policyDir)}\n    watch: false\n`);
    writeFileSync(join(config, 'mcp.yaml'), mcpBackend('fixture', { url: fixture.url }) + route('mcp', '/mcp', ['fixture']));
    proc = await startGatewayProcess(config, { ...process.env, TOLLGATE_LOG_LEVEL: 'info' });
    const client = await connectClient(`${proc.url}/mcp`, { headers: devAuthHeaders(config) });
    try {
      expect(await callEcho(client)).toBe('allowed');
      for (const [version, echo] of [['h1', false], ['h2', true]] as const) {
        writeFileSync(join(policyDir, 'tollgate/main.rego'), echoRego(version, echo));
        // Not watched: the decision in force is still the previous one (no build has run).
        expect(await callEcho(client)).toBe(version === 'h1' ? 'allowed' : expected('h1', false));
        proc.child.kill('SIGHUP');
        await inForce(client, version, echo, `SIGHUP (${version})`);
      }
      expect(proc.child.exitCode).toBeNull();
      expect(proc.stdout()).toContain('reload requested (SIGHUP)');
    } finally {
      await client.close();
    }
  });
});

describe("a session's cached list under a new policy", () => {
  let gw: TestGateway;
  let dir: string;
  let client: Client;

  /** Every call allowed; `echo` listed or hidden. */
  function listing(hideEcho: boolean): string {
    return `package tollgate

default decision := {"allow": true}

visible contains name if {
	some _, items in input.targets
	some local, name in items
	${hideEcho ? 'local != "echo"' : 'local == local'}
}
`;
  }

  async function listed(): Promise<string[]> {
    return (await client.listTools()).tools.map((t) => t.name);
  }

  beforeAll(async () => {
    dir = writeTree({ 'tollgate/main.rego': listing(false) });
    gw = await policyGateway(`    dir: ${JSON.stringify(dir)}\n    checkIntervalMs: 0\n`);
    client = await connectClient(`${gw.url}/mcp`);
  });

  afterAll(async () => {
    await client?.close();
    await gw?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers the same session by the policy in force, not by the answer it kept for the list page', async () => {
    const all = await listed();
    expect(all).toContain('fixture__echo');
    // Listed again (the session's page and its serialised answer are reused): the same answer.
    expect(await listed()).toEqual(all);
    writeFileSync(join(dir, 'tollgate/main.rego'), listing(true));
    await eventually(async () => !(await listed()).includes('fixture__echo'), TAKES_EFFECT_MS, 'echo hidden from the same session');
    expect(await listed()).toEqual(all.filter((n) => n !== 'fixture__echo'));
    writeFileSync(join(dir, 'tollgate/main.rego'), listing(false));
    await eventually(async () => (await listed()).includes('fixture__echo'), TAKES_EFFECT_MS, 'echo listed again');
    expect(await listed()).toEqual(all);
  });
});
