/**
 * Watches the config directory and reloads on change (debounced). A file that fails to load is reported with file,
 * line and reason, and the snapshot in force stays in force. The directory is watched, not the files (a file
 * replaced by rename or unlink + create is seen), with a periodic stat-digest check as a safety net (dir-watch.ts).
 */
import type { Logger } from '../telemetry/logger.ts';
import { DirWatcher } from './dir-watch.ts';
import { ConfigError, loadConfigDir, type ConfigIssue, type ConfigSnapshot } from './load.ts';

export interface ConfigWatcher {
  close(): void;
  /** Reloads now (also used by SIGHUP). Resolves true if a new snapshot was applied. */
  reload(): boolean;
}

export interface WatchOptions {
  /** Loads the directory (main.ts passes the loader that knows the registered protocols). */
  readonly load?: (dir: string) => ConfigSnapshot;
  readonly debounceMs?: number;
  /** Period of the safety-net digest check (0: none). */
  readonly checkIntervalMs?: number;
}

export function watchConfig(
  dir: string,
  apply: (s: ConfigSnapshot) => void,
  log: Logger,
  reject: (issues: readonly ConfigIssue[]) => void = () => {},
  options: WatchOptions = {},
): ConfigWatcher {
  const load = options.load ?? ((d: string) => loadConfigDir(d));
  const debounceMs = options.debounceMs ?? 50;
  const reload = (): boolean => {
    try {
      const snapshot = load(dir);
      apply(snapshot);
      return true;
    } catch (err) {
      if (err instanceof ConfigError) {
        for (const i of err.issues) log.error({ file: i.file, line: i.line, column: i.column, reason: i.message }, 'config rejected; previous config stays in force');
        reject(err.issues);
      } else {
        log.error({ err }, 'config reload failed; previous config stays in force');
        reject([{ file: dir, line: 0, column: 0, message: (err as Error).message }]);
      }
      return false;
    }
  };
  let watcher: DirWatcher | undefined;
  try {
    watcher = new DirWatcher({
      root: dir,
      recursive: false,
      relevant: (name) => /\.ya?ml$/.test(name),
      debounceMs,
      checkIntervalMs: options.checkIntervalMs ?? 1000,
      onChange: (_since, cause) => {
        if (cause === 'check') log.warn({ dir }, 'config change seen by the periodic check, not by the watcher');
        reload();
      },
      warn: (message, err) => log.warn({ dir, err: err.message }, `${message}; changes are seen by the periodic check (or SIGHUP)`),
    });
  } catch (err) {
    log.warn({ dir, err: (err as Error).message }, 'cannot watch config directory; reload with SIGHUP');
  }
  return {
    close: () => watcher?.close(),
    reload,
  };
}
