/**
 * Files the embedded defaults generate once in the data dir (the dev trust domain's key, the audit signing key) and
 * every process on that data dir then shares. Written aside and linked into place: of processes starting at once
 * (replicas on one data dir), the first link wins and the others read its file, so none fails with EEXIST and none
 * reads a half-written one.
 */
import { randomBytes } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/** The file's text, creating it with `make()` (mode `mode`, directory 0700) when it does not exist yet. */
export function readOrCreate(path: string, make: () => string, mode: number): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}`;
  writeFileSync(tmp, make(), { mode, flag: 'wx' });
  try {
    linkSync(tmp, path); // EEXIST: another process won the race; its file is the one
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  } finally {
    unlinkSync(tmp);
  }
  return readFileSync(path, 'utf8');
}
