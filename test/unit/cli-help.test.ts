/**
 * The `tollgate` command's help and version: the spellings operators type (`--help`, `-h`, `--version`) anywhere a
 * command takes options print usage on stdout and exit 0, instead of an "unknown option" error or, for `config
 * validate`, an attempt to read a directory named `--help`. Runs the real launcher (bin/tollgate.mjs).
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = async (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
  try {
    const r = await promisify(execFile)(process.execPath, ['bin/tollgate.mjs', ...args]);
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
};

describe('tollgate help and version', () => {
  it('--help, -h and help print the command list and exit 0', async () => {
    for (const args of [['--help'], ['-h'], ['help'], []]) {
      const r = await run(...args);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stdout).toContain('Usage: tollgate <command>');
      expect(r.stdout).toContain('config validate');
    }
  });

  it('a command followed by --help prints that command usage, exit 0, and does nothing else', async () => {
    const cases: Array<[string[], string]> = [
      [['serve', '--help'], 'serve [--config DIR]'],
      [['config', 'validate', '--help'], 'config validate'],
      [['svid', 'mint', '--help'], 'tollgate svid mint --spiffe-id'],
      [['audit', 'query', 'somewhere', '-h'], 'tollgate audit query <dir>'],
      [['policy', 'build', '--help'], 'policy build [--dir policies]'],
      [['limits', 'show', '--help'], 'limits show [--principal ID]'],
      [['help', 'audit'], 'tollgate audit verify <dir>'],
    ];
    for (const [args, text] of cases) {
      const r = await run(...args);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stdout, args.join(' ')).toContain(text);
      expect(r.stderr, args.join(' ')).toBe('');
    }
  });

  it('--version prints the package version', async () => {
    const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    for (const args of [['--version'], ['version']]) {
      const r = await run(...args);
      expect(r.code).toBe(0);
      expect(r.stdout.trim()).toBe(`tollgate ${version}`);
    }
  });

  it('an unknown command is an error with exit 2, the usage on stderr', async () => {
    const r = await run('frobnicate');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown command frobnicate');
    expect(r.stdout).toBe('');
  });
});
