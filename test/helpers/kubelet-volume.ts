/**
 * A ConfigMap or Secret volume as the kubelet writes it (its AtomicWriter): the payload in a hidden timestamped
 * directory, `..data` a symlink to it, each key a symlink `<key> -> ..data/<key>`. An update writes a new timestamped
 * directory, swaps `..data` by renaming `..data_tmp` over it, adds and removes the key symlinks, then deletes the old
 * directory. A reader never sees a half-written payload, and a watcher sees renames of `..data`, not the keys.
 */
import { existsSync, mkdirSync, readdirSync, readlinkSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

let serial = 0;

export function writeVolume(dir: string, payload: Readonly<Record<string, string | Uint8Array>>): void {
  mkdirSync(dir, { recursive: true });
  const stamp = `..${new Date().toISOString().replace(/[-:.TZ]/g, '_')}${process.pid}_${serial++}`;
  mkdirSync(join(dir, stamp), { mode: 0o755 });
  for (const [key, value] of Object.entries(payload)) writeFileSync(join(dir, stamp, key), value, { mode: 0o644 });
  const data = join(dir, '..data');
  const old = existsSync(data) ? readlinkSync(data) : undefined;
  symlinkSync(stamp, join(dir, '..data_tmp'));
  renameSync(join(dir, '..data_tmp'), data);
  for (const key of Object.keys(payload)) if (!existsSync(join(dir, key))) symlinkSync(join('..data', key), join(dir, key));
  for (const name of readdirSync(dir)) if (!name.startsWith('..') && !(name in payload)) unlinkSync(join(dir, name));
  if (old !== undefined) rmSync(join(dir, old), { recursive: true, force: true });
}
