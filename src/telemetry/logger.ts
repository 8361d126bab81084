/**
 * Structured logging with pino, written asynchronously (SonicBoom) so a log line costs about a microsecond on the
 * request path. One line per call is written by the adapters when a call settles.
 */
import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

// Lines are batched into 4 KB writes: without minLength every call's line was its own write(2) plus a thread-pool
// round trip (measured: +1 write, +3 futex, ~20 us CPU per call; see bench/NOTES.md). Under low traffic a line
// waits at most FLUSH_MS, so the log still reads as live.
const destination = pino.destination({ dest: 1, sync: false, minLength: 4096 });
const FLUSH_MS = 100;
setInterval(() => {
  // SonicBoom keeps the pending byte count in _len; flush only when something waits (no empty writes when idle).
  if ((destination as unknown as { _len?: number })._len !== 0) destination.flush();
}, FLUSH_MS).unref();

export function createLogger(level: LevelWithSilent = 'info'): Logger {
  return pino(
    {
      level,
      base: { svc: 'tollgate' },
      timestamp: pino.stdTimeFunctions.isoTime,
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
