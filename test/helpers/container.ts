/**
 * Runs the runtime stage of an image built by ./image.ts the way a container runtime would (`docker run --read-only
 * --user 1000`): a private mount namespace (util-linux `unshare`; needs root, as CI has) whose root is a tmpfs
 * holding the base image (this machine's Debian /usr, Node 24 at /usr/local/bin/node) and the stage's files, the
 * volumes bound in, then remounted read-only; the ENTRYPOINT + CMD started in the WORKDIR with only the image's ENV
 * (plus the test's) by `setpriv` as uid 1000. The mounts vanish with the process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { NODE_UID, type BuiltImage } from './image.ts';

export interface Mount {
  /** Path on this machine. */
  readonly source: string;
  /** Path in the container. */
  readonly target: string;
  readonly readOnly?: boolean;
}

export interface RunOptions {
  readonly mounts?: readonly Mount[];
  /** Added to (and overriding) the image's ENV, like `docker run -e`. */
  readonly env?: Readonly<Record<string, string>>;
  /** Replaces the image's CMD. */
  readonly cmd?: readonly string[];
  /** Replaces the image's ENTRYPOINT (e.g. the HEALTHCHECK command). */
  readonly entrypoint?: readonly string[];
}

function sh(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/**
 * Starts the image like `docker run --read-only --user 1000`: the image's root filesystem is read-only; only the
 * mounts (the image's VOLUMEs must be among them or they are tmpfs) and /tmp are writable.
 */
export function runContainer(image: BuiltImage, opts: RunOptions = {}): ChildProcess {
  if (!/^v24\./.test(process.version)) throw new Error(`the base image stand-in needs Node 24 (this is ${process.version})`);
  const c = image.config;
  const uid = c.user === 'node' ? NODE_UID : Number(c.user);
  if (!Number.isInteger(uid)) throw new Error(`USER ${c.user} is not known`);
  const root = mkdtempSync('/tmp/tollgate-container-');
  const mounts = [...(opts.mounts ?? [])];
  const env = { ...c.env, HOME: '/home/node', ...opts.env };
  const argv = [...(opts.entrypoint ?? c.entrypoint), ...(opts.entrypoint ? [] : (opts.cmd ?? c.cmd))];
  const lines = [
    'set -eu',
    `R=${sh(root)}; S=${sh(image.rootfs)}`,
    'mount -t tmpfs -o mode=755 tmpfs "$R"',
    // The base image: Debian's /usr (read-only) and its usrmerge links, a few files of /etc, Node 24 in /usr/local.
    'mkdir "$R/usr" && mount --rbind /usr "$R/usr" && mount -o remount,bind,ro "$R/usr"',
    'for l in bin sbin lib lib64 lib32 libx32; do if [ -L "/$l" ]; then ln -s "$(readlink "/$l")" "$R/$l"; elif [ -d "/$l" ]; then mkdir "$R/$l" && mount --rbind "/$l" "$R/$l" && mount -o remount,bind,ro "$R/$l"; fi; done',
    'mkdir -p "$R/etc" "$R/proc" "$R/dev" "$R/tmp" "$R/home"',
    'for f in passwd group hosts resolv.conf nsswitch.conf; do if [ -e "/etc/$f" ]; then cp "/etc/$f" "$R/etc/$f"; fi; done',
    'if [ -d /etc/ssl ]; then mkdir "$R/etc/ssl" && mount --rbind /etc/ssl "$R/etc/ssl" && mount -o remount,bind,ro "$R/etc/ssl"; fi',
    'mount -t tmpfs -o mode=755 tmpfs "$R/usr/local" && mkdir -p "$R/usr/local/bin"',
    `touch "$R/usr/local/bin/node" && mount --bind ${sh(process.execPath)} "$R/usr/local/bin/node"`,
    // The image's own layers: /app bound read-only, the rest copied in (small).
    'if [ -d "$S/usr/local" ]; then cp -a "$S/usr/local/." "$R/usr/local/"; fi',
    'for d in "$S"/*; do n=$(basename "$d"); case "$n" in app|usr) ;; *) mkdir -p "$R/$n" && cp -a "$d/." "$R/$n/" ;; esac; done',
    'mkdir -p "$R/app" && mount --bind "$S/app" "$R/app" && mount -o remount,bind,ro "$R/app"',
    'mount -t proc proc "$R/proc"',
    'mount --rbind /dev "$R/dev"',
    'mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"',
    // Volumes, then the root made read-only (docker run --read-only).
    ...mounts.flatMap((m) => [
      `if [ -d ${sh(m.source)} ]; then mkdir -p "$R"${sh(m.target)}; else mkdir -p "$(dirname "$R"${sh(m.target)})" && touch "$R"${sh(m.target)}; fi`,
      `mount --bind ${sh(m.source)} "$R"${sh(m.target)}`,
      ...(m.readOnly ? [`mount -o remount,bind,ro "$R"${sh(m.target)}`] : []),
    ]),
    'mount -o remount,ro "$R"',
    `exec chroot "$R" /usr/bin/env -i ${Object.entries(env).map(([k, v]) => sh(`${k}=${v}`)).join(' ')} setpriv --reuid=${uid} --regid=${uid} --clear-groups --no-new-privs /bin/sh -c 'cd "$0" && exec "$@"' ${sh(c.workdir)} ${argv.map(sh).join(' ')}`,
  ];
  const child = spawn('unshare', ['--mount', '--propagation', 'private', '/bin/sh', '-c', lines.join('\n')], { stdio: ['ignore', 'pipe', 'pipe'] });
  // The mount namespace (and every mount in it) goes with the process; the empty mount point is removed after.
  child.once('exit', () => rmSync(root, { recursive: true, force: true }));
  return child;
}

