/**
 * The tail marker: a copy of the newest signed line (open, checkpoint or seal) that is on disk, in `TAIL` beside the
 * segments. The log cannot vouch for records that were deleted after it was written, but the marker can: `audit
 * verify` finds the line it names in the log, or reports the log's tail as missing (segments deleted since, a
 * segment truncated and re-sealed on the next start). Written only after the data it names was synced, atomically.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const TAIL_FILE = 'TAIL';

export function writeTail(dir: string, line: string): void {
  const tmp = join(dir, `${TAIL_FILE}.tmp`);
  writeFileSync(tmp, `${line}\n`, { mode: 0o640 });
  renameSync(tmp, join(dir, TAIL_FILE));
}

/** The signed line the marker holds, or undefined when there is none. */
export function readTail(dir: string): string | undefined {
  const path = join(dir, TAIL_FILE);
  if (!existsSync(path)) return undefined;
  const text = readFileSync(path, 'utf8').trim();
  return text === '' ? undefined : text;
}
