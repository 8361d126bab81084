/**
 * A live Rego directory built by the persistent compiler (tollgate-regoc) through the gateway, with the official SDK
 * client: one compiler process serves the edits, a killed one is started again by the next edit (which takes
 * effect), a broken edit still reaches /readyz with opa's error text, and no compiler outlives its gateway: closed
 * with the gateway in-process, gone after a gateway process's SIGTERM and after its SIGKILL (the compiler exits
 * when its stdin closes). Without the binary (TOLLGATE_REGOC=off) edits are built by `opa build`, said once.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findRegoc } from '../../src/guards/policy/opa.ts';
import type { DirSource } from '../../src/guards/policy/sources.ts';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { GATEWAY_YAML, connectClient, devAuthHeaders, eventually, mcpBackend, route, startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.ts';
import { callEcho, echoRego, requireOpa, writeTree } from '../helpers/policy.ts';

/** Save -> new decision served; generous (the speed is measured by bench/policy-reload.ts). */
const TAKES_EFFECT_MS = 5_000;

function expected(version: string, echo: boolean): string {
  return echo ? 'allowed' : `denied:${version}: echo closed`;
}

async function inForce(client: Client, version: string, echo: boolean, what: string): Promise<void> {
  await eventually(async () => (await callEcho(client)) === expected(version, echo), TAKES_EFFECT_MS, `${what}: ${expected(version, echo)}`);
}

/** Pids of the running (not zombie) tollgate-regoc processes whose parent is `ppid` (from /proc). */
function compilersOf(ppid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
      if (comm === 'tollgate-regoc' && parent === ppid && state !== 'Z') out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** True while a process exists and is not a zombie. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

let fixture: FixtureServer;

beforeAll(async () => {
  requireOpa();
  if (!findRegoc()) throw new Error('tollgate-regoc not found: run scripts/install-tools.sh and put ~/.cache/tollgate/bin on PATH');
  fixture = await startHttpMcpServer({ name: 'fixture' });
});

afterAll(async () => {
  await fixture?.close();
});

async function readyz(url: string | undefined): Promise<Record<string, any>> {
  return (await (await fetch(`${url}/readyz`)).json()) as Record<string, any>;
}

describe('a live Rego directory on the persistent compiler (gateway in-process)', () => {
  let gw: TestGateway | undefined;
  let dir: string;
  let client: Client;
  const file = (): string => join(dir, 'tollgate/main.rego');

  beforeAll(async () => {
    dir = writeTree({ 'tollgate/main.rego': echoRego('r0', true) });
    gw = await startTestGateway(
      { 'mcp.yaml': mcpBackend('fixture', { url: fixture.url }) + route('mcp', '/mcp', ['fixture']) },
      { gatewayYaml: `${GATEWAY_YAML}  policy:\n    dir: ${JSON.stringify(dir)}\n    checkIntervalMs: 0\n` },
    );
    client = await connectClient(`${gw.url}/mcp`);
  });

  afterAll(async () => {
    await client?.close();
    await gw?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const source = (): DirSource => gw!.services.policy.source('dir') as DirSource;

  it('one compiler process builds every edit; a killed one is started again by the next edit', async () => {
    expect(await callEcho(client)).toBe('allowed');
    const compiler = source().opts.compiler!;
    expect(compiler).toBeDefined();
    const first = compiler.pid!;
    expect(compilersOf(process.pid)).toContain(first);
    writeFileSync(file(), echoRego('r1', false));
    await inForce(client, 'r1', false, 'edit');
    expect(compiler.pid).toBe(first);
    expect(compiler.starts).toBe(1);

    process.kill(first, 'SIGKILL');
    await eventually(() => compiler.pid === undefined, 5_000, 'the gateway to see the compiler gone');
    writeFileSync(file(), echoRego('r2', true));
    await inForce(client, 'r2', true, 'edit after the compiler was killed');
    expect(compiler.starts).toBe(2);
    expect(compiler.pid).not.toBe(first);
    expect(alive(compiler.pid!)).toBe(true);
  });

  it('a broken edit reaches /readyz with the compile error (file and line); fixing it is picked up', async () => {
    writeFileSync(file(), 'package tollgate\n\ndecision := {"allow": true} if {\n');
    await eventually(async () => (await readyz(gw!.adminUrl)).policy?.rejected !== undefined, TAKES_EFFECT_MS, '/readyz to show the refusal');
    const r = await readyz(gw!.adminUrl);
    expect(r.policy.rejected.error).toMatch(/^opa build failed:\nerror: .*rego_parse_error/s);
    expect(r.policy.rejected.error).toMatch(/main\.rego:\d+/);
    expect(await callEcho(client)).toBe('allowed');
    writeFileSync(file(), echoRego('r3', false));
    await inForce(client, 'r3', false, 'the fixed policy');
  });

  it('closing the gateway ends the compiler', async () => {
    const pid = source().opts.compiler!.pid!;
    expect(alive(pid)).toBe(true);
    await client.close();
    await gw!.stop();
    gw = undefined;
    await eventually(() => !alive(pid), 5_000, `compiler ${pid} to be gone after the gateway closed`);
    expect(compilersOf(process.pid)).toEqual([]);
  });
});

describe('a gateway process: no compiler outlives it', () => {
  let root: string;
  const procs: GatewayProcess[] = [];

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'tollgate-regoc-proc-'));
  });

  afterAll(async () => {
    for (const p of procs) {
      if (p.child.exitCode === null && p.child.signalCode === null) {
        p.child.kill('SIGKILL');
        await p.exited;
      }
    }
    rmSync(root, { recursive: true, force: true });
  });

  async function start(name: string, env: NodeJS.ProcessEnv = {}): Promise<{ proc: GatewayProcess; client: Client; policy: string }> {
    const policy = writeTree({ 'tollgate/main.rego': echoRego(`${name}0`, true) }, join(root, `${name}-policy`));
    const config = join(root, `${name}-routes`);
    mkdirSync(config);
    writeFileSync(join(config, 'gateway.yaml'), `${GATEWAY_YAML}  policy:\n    dir: ${JSON.stringify(policy)}\n`);
    writeFileSync(join(config, 'mcp.yaml'), mcpBackend('fixture', { url: fixture.url }) + route('mcp', '/mcp', ['fixture']));
    const proc = await startGatewayProcess(config, { ...process.env, TOLLGATE_LOG_LEVEL: 'info', ...env });
    procs.push(proc);
    const client = await connectClient(`${proc.url}/mcp`, { headers: devAuthHeaders(config) });
    expect(await callEcho(client)).toBe('allowed');
    return { proc, client, policy };
  }

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    it(`${signal}: the compiler is gone once the gateway exited`, async () => {
      const { proc, client } = await start(signal.toLowerCase());
      const pids = compilersOf(proc.child.pid!);
      expect(pids).toHaveLength(1);
      await client.close();
      proc.child.kill(signal);
      await proc.exited;
      await eventually(() => !alive(pids[0]!), 5_000, `compiler ${pids[0]} to be gone after the gateway's ${signal}`);
    });
  }

  it('TOLLGATE_REGOC=off: edits are built by opa build (said once at info), no compiler runs', async () => {
    const { proc, client, policy } = await start('off', { TOLLGATE_REGOC: 'off' });
    try {
      expect(compilersOf(proc.child.pid!)).toEqual([]);
      writeFileSync(join(policy, 'tollgate/main.rego'), echoRego('off1', false));
      await inForce(client, 'off1', false, 'edit built by opa build');
      expect(compilersOf(proc.child.pid!)).toEqual([]);
      expect(proc.stdout().match(/tollgate-regoc not found/g)).toHaveLength(1);
      expect(existsSync(policy)).toBe(true);
    } finally {
      await client.close();
    }
  });
});
