/**
 * A long-lived child process speaking newline-delimited messages on stdin/stdout (MCP's stdio transport).
 * Spawned once and shared; restarted with exponential backoff when it dies; stderr goes to the log line by line.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { Logger } from '../telemetry/logger.ts';

export interface StdioOptions {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly cwd?: string | undefined;
  readonly log: Logger;
  /** First restart delay; doubles up to maxBackoffMs, resets after the process stayed up for stableMs. */
  readonly minBackoffMs?: number;
  readonly maxBackoffMs?: number;
  readonly stableMs?: number;
}

/** Environment variables a child inherits from the gateway; everything else (secrets included) is withheld. */
const INHERITED_ENV =
  process.platform === 'win32'
    ? ['APPDATA', 'HOMEDRIVE', 'HOMEPATH', 'LOCALAPPDATA', 'PATH', 'PROCESSOR_ARCHITECTURE', 'SYSTEMDRIVE', 'SYSTEMROOT', 'TEMP', 'USERNAME', 'USERPROFILE']
    : ['HOME', 'LOGNAME', 'PATH', 'SHELL', 'TERM', 'USER', 'LANG', 'TMPDIR'];

export interface StdioProcessEvents {
  /** A complete line from stdout (without the newline). */
  line: [line: string];
  /** The process started (a new generation); listeners re-run their handshake. */
  spawn: [generation: number];
  /** The process exited; pending requests of that generation are lost. */
  exit: [info: { code: number | null; signal: NodeJS.Signals | null; generation: number }];
}

export class StdioProcess extends EventEmitter<StdioProcessEvents> {
  private readonly opts: StdioOptions;
  private child: ChildProcessWithoutNullStreams | undefined;
  private partial = '';
  private backoff: number;
  private restartTimer: NodeJS.Timeout | undefined;
  private startedAt = 0;
  private closed = false;
  generation = 0;
  lastError: string | undefined;

  constructor(opts: StdioOptions) {
    super();
    this.opts = opts;
    this.backoff = opts.minBackoffMs ?? 200;
  }

  /** Process id of the running child (undefined while restarting). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  start(): void {
    if (this.closed || this.child) return;
    const env: Record<string, string> = {};
    for (const key of INHERITED_ENV) {
      const v = process.env[key];
      if (v !== undefined) env[key] = v;
    }
    Object.assign(env, this.opts.env);
    let child: ChildProcessWithoutNullStreams;
    try {
      child = spawn(this.opts.command, [...this.opts.args], {
        env,
        cwd: this.opts.cwd,
        stdio: ['pipe', 'pipe', 'pipe'],
        windowsHide: true,
      });
    } catch (err) {
      this.lastError = (err as Error).message;
      this.opts.log.error({ upstream: this.opts.name, err: this.lastError }, 'stdio upstream failed to spawn');
      this.scheduleRestart();
      return;
    }
    this.child = child;
    this.partial = '';
    this.startedAt = Date.now();
    const generation = ++this.generation;
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => this.onData(chunk));
    let errPartial = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      const lines = (errPartial + chunk).split('\n');
      errPartial = lines.pop() ?? '';
      for (const line of lines) if (line.trim()) this.opts.log.info({ upstream: this.opts.name, stderr: line }, 'upstream stderr');
    });
    child.stdin.on('error', (err) => {
      this.lastError = err.message;
    });
    child.on('error', (err) => {
      this.lastError = err.message;
      this.opts.log.error({ upstream: this.opts.name, err: err.message }, 'stdio upstream error');
    });
    child.on('close', (code, signal) => {
      if (this.child !== child) return;
      this.child = undefined;
      if (!this.closed) {
        this.lastError = `exited with ${signal ?? `code ${code}`}`;
        this.opts.log.warn({ upstream: this.opts.name, code, signal }, 'stdio upstream exited');
      }
      this.emit('exit', { code, signal, generation });
      if (!this.closed) this.scheduleRestart();
    });
    child.on('spawn', () => {
      this.lastError = undefined;
      this.opts.log.info({ upstream: this.opts.name, pid: child.pid }, 'stdio upstream started');
      this.emit('spawn', generation);
    });
  }

  private onData(chunk: string): void {
    let start = 0;
    let nl = chunk.indexOf('\n');
    if (nl === -1) {
      this.partial += chunk;
      return;
    }
    let line = this.partial + chunk.slice(0, nl);
    this.partial = '';
    for (;;) {
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (line.length > 0) this.emit('line', line);
      start = nl + 1;
      nl = chunk.indexOf('\n', start);
      if (nl === -1) break;
      line = chunk.slice(start, nl);
    }
    this.partial = chunk.slice(start);
  }

  private scheduleRestart(): void {
    if (this.closed || this.restartTimer) return;
    const upFor = Date.now() - this.startedAt;
    if (this.startedAt > 0 && upFor > (this.opts.stableMs ?? 30_000)) this.backoff = this.opts.minBackoffMs ?? 200;
    const delay = this.backoff;
    this.backoff = Math.min(this.backoff * 2, this.opts.maxBackoffMs ?? 30_000);
    this.opts.log.info({ upstream: this.opts.name, delayMs: delay }, 'restarting stdio upstream');
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      this.start();
    }, delay);
    this.restartTimer.unref();
  }

  /** Writes one line; returns false when the process is not running. */
  send(line: string): boolean {
    const child = this.child;
    if (!child || !this.running || child.stdin.destroyed) return false;
    child.stdin.write(line + '\n');
    return true;
  }

  /** Stops the process for good: SIGTERM, then SIGKILL after a grace period. */
  async close(graceMs = 2_000): Promise<void> {
    this.closed = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const child = this.child;
    if (!child) return;
    await new Promise<void>((resolve) => {
      const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
      child.once('close', () => {
        clearTimeout(kill);
        resolve();
      });
      child.stdin.end();
      child.kill('SIGTERM');
    });
  }
}
