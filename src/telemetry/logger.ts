/**
 * Structured logging with pino, written asynchronously (SonicBoom) so a log line costs about a microsecond on the
 * request path. One line per call is written by the adapters when a call settles.
 */
import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

const destination = pino.destination({ dest: 1, sync: false });

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
