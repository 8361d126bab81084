/**
 * Child processes of the bench (backends, reference proxy, gateway): each target runs in its own process so the
 * load generator never shares an event loop with what it measures. Every child is stopped by its own pid.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';

export interface Child {
  readonly proc: ChildProcess;
  readonly pid: number;
  /** Stops the child (SIGTERM, then SIGKILL after `graceMs`) and waits for it to exit. */
  stop(graceMs?: number): Promise<void>;
}

// Children still running when the runner exits (a crash, Ctrl-C) are killed with it: a gateway does not watch its
// stdin, so it would otherwise outlive the bench. Then the exit hooks run (temp directories of those children).
// SIGINT, SIGTERM and SIGHUP end the runner through process.exit, so that this cleanup runs for them too (a signal's
// default action would end the process without an 'exit' event).
const live = new Set<ChildProcess>();
const exitHooks: Array<() => void> = [];
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL');
  for (const hook of exitHooks.splice(0)) {
    try {
      hook();
    } catch {
      // best effort: the other hooks still run
    }
  }
});
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
  process.once(signal, () => {
    process.stderr.write(`bench: ${signal}: stopping every child process\n`);
    process.exit(code);
  });
}

/** Runs `hook` (synchronously) when the runner exits, however it exits; after its children were killed. */
export function onExit(hook: () => void): void {
  exitHooks.push(hook);
}
function track(proc: ChildProcess): ChildProcess {
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
  return proc;
}

function stopper(proc: ChildProcess): (graceMs?: number) => Promise<void> {
  return (graceMs = 10_000) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const kill = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      proc.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      proc.kill('SIGTERM');
    });
  };
}

/**
 * Runs a TypeScript entry with this Node and waits for the JSON line it prints when ready. The child's stdin is a
 * pipe it watches, so it exits if the runner dies without stopping it.
 */
export async function spawnReady<T>(script: string, args: string[], nodeArgs: readonly string[] = [], timeoutMs = 30_000): Promise<Child & { ready: T }> {
  const proc = track(spawn(process.execPath, ['--disable-warning=ExperimentalWarning', ...nodeArgs, script, ...args], { stdio: ['pipe', 'pipe', 'inherit'] }));
  const lines = createInterface({ input: proc.stdout! });
  const ready = await new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${script} not ready after ${timeoutMs} ms`)), timeoutMs);
    proc.once('exit', (code) => reject(new Error(`${script} exited with ${code} before it was ready`)));
    // The first line that is a JSON object (Node/V8 diagnostics such as --trace-gc may print before it).
    const onLine = (line: string): void => {
      if (!line.startsWith('{')) return;
      lines.off('line', onLine);
      clearTimeout(timer);
      try {
        resolve(JSON.parse(line) as T);
      } catch (err) {
        reject(err as Error);
      }
    };
    lines.on('line', onLine);
  });
  proc.removeAllListeners('exit');
  return { proc, pid: proc.pid!, ready, stop: stopper(proc) };
}

/** Spawns a program that is not a Node script (redis-server...), output discarded; killed with the runner like the others. */
export function spawnCommand(command: string, args: readonly string[]): Child {
  const proc = track(spawn(command, args, { stdio: 'ignore' }));
  return { proc, pid: proc.pid!, stop: stopper(proc) };
}

/** Spawns a process with the given stdio files (the gateway: logs go to a file, not through the runner). */
export function spawnPlain(args: string[], opts: { cwd: string; stdout: number; env?: NodeJS.ProcessEnv }): Child {
  const proc = track(spawn(process.execPath, args, { cwd: opts.cwd, stdio: ['ignore', opts.stdout, opts.stdout], env: opts.env ?? process.env }));
  return { proc, pid: proc.pid!, stop: stopper(proc) };
}

/** A port free right now on the loopback (the gateway is told which port to use, then polled until it answers). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Polls `url` until it answers 200 (or throws after `ms`, or as soon as `child` exits). */
export async function waitHealthy(url: string, child: Child, ms = 30_000, pollMs = 50): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    if (child.proc.exitCode !== null) throw new Error(`process ${child.pid} exited with ${child.proc.exitCode} before it was healthy`);
    try {
      const r = await fetch(url);
      await r.arrayBuffer();
      if (r.ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > until) throw new Error(`${url} not healthy after ${ms} ms`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/**
 * CPU time (user + system, ms) a process has used so far, from /proc (Linux; undefined elsewhere). CPU per request
 * is far less sensitive than latency to what else runs on a shared machine, so the runner records it per run.
 */
export function cpuTimeMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start after the last ')'.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
  } catch {
    return undefined;
  }
}

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();
