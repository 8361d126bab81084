/**
 * Private redis-server processes for tests that must kill, restart or cluster Redis (the shared test Redis of
 * scripts/test.sh is never touched). Ports are picked free on loopback; data lives in a temp dir removed on stop.
 * A missing redis-server fails the test (scripts/install-tools.sh installs it).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually } from './gateway.ts';
import { freePort } from './net.ts';

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  readonly child: ChildProcess;
  /** Kills the server at once (SIGKILL: no shutdown, like a crash). */
  kill(): Promise<void>;
  /** Starts it again on the same port (empty: no persistence). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

function redisBinary(): string {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error('redis-server not found: run scripts/install-tools.sh (npm test does)');
  }
  return 'redis-server';
}

function ping(port: number): boolean {
  try {
    return execFileSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8', timeout: 2_000, stdio: ['ignore', 'pipe', 'ignore'] }).trim() === 'PONG';
  } catch {
    return false;
  }
}

function launch(port: number, dir: string, extra: string[]): ChildProcess {
  const child = spawn(redisBinary(), ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...extra], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.unref();
  return child;
}

async function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((r) => child.once('exit', () => r()));
}

/** Scripts (EVAL and EVALSHA) this Redis has run since it started, from INFO commandstats. */
export function scriptsRun(port: number): number {
  const info = execFileSync('redis-cli', ['-p', String(port), 'info', 'commandstats'], { encoding: 'utf8' });
  let n = 0;
  for (const m of info.matchAll(/^cmdstat_(evalsha|eval):calls=(\d+)/gm)) n += Number(m[2]);
  return n;
}

export async function startRedis(extra: string[] = []): Promise<RedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-redis-'));
  let child = launch(port, dir, extra);
  await eventually(() => ping(port), 10_000, `redis-server on ${port}`);
  const server: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}`,
    get child() {
      return child;
    },
    kill: async () => {
      child.kill('SIGKILL');
      await exited(child);
    },
    restart: async () => {
      child = launch(port, dir, extra);
      await eventually(() => ping(port), 10_000, `redis-server restarted on ${port}`);
    },
    stop: async () => {
      child.kill('SIGKILL');
      await exited(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return server;
}

export interface RedisCluster {
  readonly nodes: readonly RedisServer[];
  stop(): Promise<void>;
}

/** Three (or `masters`) cluster-enabled servers joined with `redis-cli --cluster create`, no replicas. */
export async function startRedisCluster(masters = 3): Promise<RedisCluster> {
  const nodes: RedisServer[] = [];
  try {
    for (let i = 0; i < masters; i++) {
      nodes.push(await startRedis(['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${i}.conf`, '--cluster-node-timeout', '2000']));
    }
    execFileSync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'], {
      stdio: 'ignore',
      timeout: 30_000,
    });
    await eventually(
      () => nodes.every((n) => /cluster_state:ok/.test(execFileSync('redis-cli', ['-p', String(n.port), 'cluster', 'info'], { encoding: 'utf8' }))),
      30_000,
      'cluster_state:ok on every node',
    );
  } catch (err) {
    for (const n of nodes) await n.stop();
    throw err;
  }
  return {
    nodes,
    stop: async () => {
      for (const n of nodes) await n.stop();
    },
  };
}

/** Keys on one server (KEYS is fine on a test's private server). */
export function keysOn(port: number, pattern: string): string[] {
  const out = execFileSync('redis-cli', ['-p', String(port), '--raw', 'keys', pattern], { encoding: 'utf8' }).trim();
  return out === '' ? [] : out.split('\n');
}

export interface DecisionMonitor {
  /** Stops monitoring; the server times (us) at which scripts touching a key containing `keyPart` read TIME. */
  stop(): Promise<number[]>;
  /** After stop: each decision's time and the units its op on the key asked to take (1, or k for a lease), in time order. */
  decisions(): Array<{ atUs: number; take: number }>;
}

/**
 * Watches servers with MONITOR (test-private servers only: it slows Redis) and records when each limiter script
 * that names a key containing `keyPart` took its decision: the timestamp of the script's own TIME call (Redis logs
 * the commands a script runs right after the script, and runs one command at a time).
 */
export async function monitorDecisions(ports: readonly number[], keyPart: string): Promise<DecisionMonitor> {
  const watchers = ports.map((port) => {
    const child = spawn('redis-cli', ['-p', String(port), 'monitor'], { stdio: ['ignore', 'pipe', 'ignore'] });
    const times: number[] = [];
    const takes: number[] = [];
    let rest = '';
    let pending = false;
    let take = 1;
    let attached: () => void = () => {};
    const ready = new Promise<void>((r) => (attached = r));
    const seen = new Set<string>();
    child.stdout!.on('data', (chunk: Buffer) => {
      const lines = (rest + chunk.toString('utf8')).split('\n');
      rest = lines.pop()!;
      for (const line of lines) {
        if (line.trim() === 'OK') attached();
        const marker = /"echo" "(tg-monitor-end-[0-9a-f]+)"/.exec(line);
        if (marker !== null) seen.add(marker[1]!);
        const m = /^(\d+)\.(\d{6}) \[\d+ ([^\]]+)\] "([^"]+)"/.exec(line);
        if (m === null) continue;
        const [, sec, usec, source, command] = m;
        if (source !== 'lua') {
          pending = (command === 'evalsha' || command === 'eval') && line.includes(keyPart);
          if (pending) take = takeOf(line, keyPart);
        } else if (pending && command === 'TIME') {
          times.push(Number(sec) * 1_000_000 + Number(usec));
          takes.push(take);
          pending = false;
        }
      }
    });
    return { child, port, times, takes, ready, seen };
  });
  // MONITOR answers OK once it is on.
  await Promise.all(watchers.map((w) => w.ready));
  return {
    stop: async () => {
      // Redis feeds its monitors in execution order: once a watcher has printed an ECHO sent after the load, it has
      // printed every decision before it. Killing it earlier loses what a CPU-starved redis-cli has not read yet.
      const marker = `tg-monitor-end-${randomBytes(6).toString('hex')}`;
      for (const w of watchers) {
        execFileSync('redis-cli', ['-p', String(w.port), 'echo', marker]);
        await eventually(() => w.seen.has(marker), 10_000, `MONITOR on ${w.port} caught up`);
      }
      for (const w of watchers) {
        w.child.kill('SIGTERM');
        await exited(w.child);
      }
      return watchers.flatMap((w) => w.times).sort((a, b) => a - b);
    },
    decisions: () =>
      watchers.flatMap((w) => w.times.map((atUs, i) => ({ atUs, take: w.takes[i]! }))).sort((a, b) => a.atUs - b.atUs),
  };
}

/**
 * The `take` of the op on the key containing `keyPart` in a logged limiter script call (src/guards/limits/lua.ts:
 * "evalsha" sha numkeys keys... count, then five fields per op, take last).
 */
function takeOf(line: string, keyPart: string): number {
  const args = [...line.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]!);
  const n = Number(args[2]);
  const keys = args.slice(3, 3 + n);
  const op = keys.findIndex((k) => k.includes(keyPart));
  return Number(args[3 + n + 1 + op * 5 + 4]);
}
