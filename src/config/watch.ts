/**
 * Watches the config directory and reloads on change (debounced). A file that fails to load is reported with file,
 * line and reason, and the snapshot in force stays in force.
 */
import { watch, type FSWatcher } from 'node:fs';
import type { Logger } from '../telemetry/logger.ts';
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
  let timer: NodeJS.Timeout | undefined;
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
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dir, { persistent: false }, (_event, name) => {
      if (name !== null && !/\.ya?ml$/.test(name) && !name.startsWith('..')) return;
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => {
        timer = undefined;
        reload();
      }, debounceMs);
    });
  } catch (err) {
    log.warn({ dir, err: (err as Error).message }, 'cannot watch config directory; reload with SIGHUP');
  }
  return {
    close: () => {
      if (timer) clearTimeout(timer);
      watcher?.close();
    },
    reload,
  };
}
