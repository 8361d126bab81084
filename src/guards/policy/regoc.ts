/**
 * The persistent Rego -> WASM compiler (tools/regoc, `tollgate-regoc`): OPA's own compiler (same module version as
 * the opa binary) in a process that stays running, so a Rego edit does not pay an `opa build` process start (most
 * of its wall time on a busy machine: bench/NOTES.md, "Policy reload").
 *
 * Spawned lazily on the first build, reused, spawned again when it died; requests are line-delimited JSON on its
 * stdin, answered in order on its stdout. It exits when its stdin closes, so it cannot outlive a gateway that
 * crashed; close() kills it. A build it could not answer (the process died, timed out, or cannot be started) is a
 * RegocUnavailable: the caller builds with `opa build` instead.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import type { Logger } from '../../telemetry/logger.ts';

export interface RegocRequest {
  /** The policy directory (built as `opa build ... .` from inside it). */
  readonly dir: string;
  readonly entrypoints: readonly string[];
  /** Capabilities file (as `opa build --capabilities`). */
  readonly capabilities: string;
  /** File name globs left out (as `opa build --ignore`). */
  readonly ignore: readonly string[];
  readonly revision: string;
  /** Where the bundle goes (written only when the build succeeds). */
  readonly output: string;
}

/** The build's outcome: on failure, what `opa build` prints for the same sources ("error: ..."). */
export type RegocResult = { ok: true } | { ok: false; error: string };

/** The compiler could not answer (not a compile error): build another way. */
export class RegocUnavailable extends Error {}

interface Pending {
  readonly resolve: (r: RegocResult) => void;
  readonly reject: (err: Error) => void;
  readonly timer: NodeJS.Timeout;
}

interface Answer {
  id?: unknown;
  ok?: unknown;
  error?: unknown;
}

/** Tail of the compiler's stderr kept for the log when it dies (a Go panic is printed there). */
const STDERR_TAIL = 4096;

export class RegoCompiler {
  readonly binary: string;
  private readonly log: Logger | undefined;
  private readonly timeoutMs: number;
  private child: ChildProcessWithoutNullStreams | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private stdout = '';
  private stderr = '';
  private isClosed = false;
  /** Processes started so far (the first, then one per restart). */
  starts = 0;

  constructor(binary: string, opts: { log?: Logger; timeoutMs?: number } = {}) {
    this.binary = binary;
    this.log = opts.log;
    this.timeoutMs = opts.timeoutMs ?? 60_000;
  }

  /** True once close() was called. */
  get closed(): boolean {
    return this.isClosed;
  }

  /** Pid of the running compiler process, if one runs. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Compiles; resolves with the outcome, rejects with RegocUnavailable when the compiler could not answer. */
  build(req: RegocRequest): Promise<RegocResult> {
    if (this.isClosed) return Promise.reject(new RegocUnavailable('the Rego compiler is closed'));
    const child = this.child ?? this.start();
    const id = this.nextId++;
    return new Promise<RegocResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.stop(child, `no answer in ${this.timeoutMs} ms`);
      }, this.timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      const line = JSON.stringify({ id, ...req });
      child.stdin.write(`${line}\n`);
    });
  }

  private start(): ChildProcessWithoutNullStreams {
    this.starts++;
    const child = spawn(this.binary, [], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    this.stdout = '';
    this.stderr = '';
    // Neither the process nor its pipes keep the gateway's event loop alive: a pending build's timer does.
    child.unref();
    for (const s of [child.stdin, child.stdout, child.stderr] as unknown as Array<{ unref?: () => void }>) s.unref?.();
    child.stdin.on('error', () => {}); // EPIPE when it died: reported by 'exit'
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      this.stdout += chunk;
      let nl: number;
      while ((nl = this.stdout.indexOf('\n')) >= 0) {
        const line = this.stdout.slice(0, nl);
        this.stdout = this.stdout.slice(nl + 1);
        this.answer(child, line);
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      this.stderr = (this.stderr + chunk).slice(-STDERR_TAIL);
    });
    child.once('error', (err) => this.gone(child, `cannot run ${this.binary}: ${err.message}`));
    child.once('exit', (code, signal) => this.gone(child, `exited (${signal ?? `code ${code}`})`));
    return child;
  }

  private answer(child: ChildProcessWithoutNullStreams, line: string): void {
    let a: Answer;
    try {
      a = JSON.parse(line) as Answer;
    } catch {
      this.stop(child, `unreadable answer: ${line.slice(0, 200)}`);
      return;
    }
    const p = typeof a.id === 'number' ? this.pending.get(a.id) : undefined;
    if (p === undefined) {
      this.stop(child, `answer to no request: ${line.slice(0, 200)}`);
      return;
    }
    this.pending.delete(a.id as number);
    clearTimeout(p.timer);
    p.resolve(a.ok === true ? { ok: true } : { ok: false, error: typeof a.error === 'string' ? a.error : 'error: (no message)' });
  }

  /** Ends a misbehaving process (its pending builds fail as unavailable; the next build starts a new one). */
  private stop(child: ChildProcessWithoutNullStreams, why: string): void {
    child.kill('SIGKILL');
    this.gone(child, why);
  }

  private gone(child: ChildProcessWithoutNullStreams, why: string): void {
    if (this.child !== child) return;
    this.child = undefined;
    const failed = [...this.pending.values()];
    this.pending.clear();
    if (!this.isClosed) {
      const stderr = this.stderr.trim();
      this.log?.warn({ binary: this.binary, reason: why, ...(stderr === '' ? {} : { stderr }) }, 'Rego compiler stopped; the next build starts it again');
    }
    for (const p of failed) {
      clearTimeout(p.timer);
      p.reject(new RegocUnavailable(`the Rego compiler ${why}`));
    }
  }

  /** Kills the compiler (pending builds fail as unavailable) and refuses further builds. */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    const child = this.child;
    if (child) {
      child.stdin.end();
      child.kill('SIGKILL');
      this.gone(child, 'closed');
    }
  }
}
