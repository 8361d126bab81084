/**
 * A real A2A agent of the v0.3 era, the Python reference server (a2a-sdk 0.3, test/python/a2a03_agent.py, in the
 * virtualenv scripts/install-tools.sh builds under ~/.cache/tollgate/venv-a2a03), as a TestAgent the A2A gateway
 * helpers mount (its requests are not recorded: `seen` stays empty). A missing virtualenv fails the caller.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { TestAgent } from './a2a-agent.ts';
import { freePort } from './net.ts';

export const PYTHON_A2A03 = join(process.env.TOLLGATE_CACHE ?? join(homedir(), '.cache/tollgate'), 'venv-a2a03/bin/python');

export async function startPythonAgent03(): Promise<TestAgent> {
  if (!existsSync(PYTHON_A2A03)) throw new Error(`${PYTHON_A2A03} is missing (run scripts/install-tools.sh)`);
  const port = await freePort();
  const child = spawn(PYTHON_A2A03, ['test/python/a2a03_agent.py', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the Python 0.3 agent did not start: ${output}`)), 30_000);
    const read = (chunk: Buffer): void => {
      output += chunk.toString();
      if (/^ready$/m.test(output)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.on('data', read);
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the Python 0.3 agent exited (${code}): ${output}`));
    });
  });
  return {
    url: `http://127.0.0.1:${port}`,
    card: {} as TestAgent['card'],
    seen: [],
    tasks: [],
    cardRequests: [],
    close: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      // uvicorn waits for open connections (a kept-alive client, a stream) on SIGTERM: not for long here.
      const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
