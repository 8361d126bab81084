/**
 * A baseline checkout for same-run before/after comparisons: `git worktree add --detach` of a revision in a temp
 * directory, sharing this checkout's node_modules. On a shared, noisy machine an interleaved A/B in one run says
 * far more than two runs minutes apart.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ROOT } from './targets.ts';

/**
 * The gate's CPU baseline revision checked out beside this checkout, or why it could not be: a shallow clone may
 * lack it, so one fetch of that commit from `origin` is tried before giving up.
 */
export function referenceCheckout(rev: string): { checkout?: Baseline; why?: string } {
  const has = (): boolean => {
    try {
      execFileSync('git', ['cat-file', '-e', `${rev}^{commit}`], { cwd: ROOT, stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  };
  try {
    if (!has()) execFileSync('git', ['fetch', '--quiet', '--depth=1', 'origin', rev], { cwd: ROOT, stdio: 'ignore', timeout: 60_000 });
    if (!has()) return { why: `revision ${rev} is not in this checkout` };
    return { checkout: addBaseline(rev) };
  } catch (err) {
    return { why: `revision ${rev} could not be checked out (${(err as Error).message.split('\n')[0]})` };
  }
}

export interface Baseline {
  readonly rev: string;
  readonly sha: string;
  readonly root: string;
  remove(): void;
}

export function addBaseline(rev: string): Baseline {
  const sha = execFileSync('git', ['rev-parse', '--verify', `${rev}^{commit}`], { cwd: ROOT, encoding: 'utf8' }).trim();
  const root = join(mkdtempSync(join(tmpdir(), 'tollgate-baseline-')), 'tree');
  execFileSync('git', ['worktree', 'add', '--detach', root, sha], { cwd: ROOT, stdio: 'ignore' });
  symlinkSync(join(ROOT, 'node_modules'), join(root, 'node_modules'), 'dir');
  return {
    rev,
    sha,
    root,
    remove: () => {
      try {
        execFileSync('git', ['worktree', 'remove', '--force', root], { cwd: ROOT, stdio: 'ignore' });
      } catch {
        rmSync(root, { recursive: true, force: true });
        execFileSync('git', ['worktree', 'prune'], { cwd: ROOT, stdio: 'ignore' });
      }
      // The temp directory the tree was made in (git removes only the tree).
      rmSync(dirname(root), { recursive: true, force: true });
    },
  };
}
