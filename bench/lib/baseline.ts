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
