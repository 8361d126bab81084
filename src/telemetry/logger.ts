/**
 * Structured logging with pino, written asynchronously (SonicBoom) so a log line costs about a microsecond on the
 * request path. One line per call is written by the adapters when a call settles.
 */
import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

// Lines are batched into 4 KB writes: without minLength every call's line was its own write(2) plus a thread-pool
// round trip (strace: one write and three futex calls per call; see bench/NOTES.md). Under low traffic a line waits
// at most FLUSH_MS (SonicBoom's own periodicFlush), so the log still reads as live. SonicBoom has no public count of
// the bytes it holds, so an idle process makes one empty write every FLUSH_MS rather than reading its private `_len`.
const FLUSH_MS = 100;
const destination = pino.destination({ dest: 1, sync: false, minLength: 4096, periodicFlush: FLUSH_MS });

// `new Date().toISOString()` is about a fifth of a log line's cost (bench/micro/logger.ts); calls in the same
// millisecond share the formatted timestamp. Same output as pino.stdTimeFunctions.isoTime.
let isoMs = -1;
let isoField = '';
/** pino timestamp function: the ISO time, formatted once per millisecond. */
export function isoTime(): string {
  const now = Date.now();
  if (now !== isoMs) {
    isoMs = now;
    isoField = `,"time":"${new Date(now).toISOString()}"`;
  }
  return isoField;
}

export function createLogger(level: LevelWithSilent = 'info'): Logger {
  return pino(
    {
      level,
      base: { svc: 'tollgate' },
      timestamp: isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

/** Writes whatever is buffered; call before the process exits. */
export function flushLogs(): void {
  try {
    destination.flushSync();
  } catch {
    // The destination may not be ready yet (nothing written): nothing to flush.
  }
}

/** Writes one line (a newline is added) to stdout through the log destination, so it never interleaves with logs. */
export function writeStdoutLine(line: string): void {
  destination.write(`${line}\n`);
}
