/**
 * Running `@modelcontextprotocol/conformance` (server mode) from a test: the suite's CLI against a URL, its result per
 * scenario read from its output, and the small header-adding hop that lets the suite (which sends no credentials)
 * reach a gateway with identity on.
 */
import { execFile } from 'node:child_process';
import { createServer, request, type Server } from 'node:http';
import { join } from 'node:path';

/** The session-era suite (0.1.x) and the one that knows the 2026-07-28 revision (0.2.0 alphas). */
export const CONFORMANCE_CLI = join(process.cwd(), 'node_modules/@modelcontextprotocol/conformance/dist/index.js');
export const CONFORMANCE_2026_CLI = join(process.cwd(), 'node_modules/@modelcontextprotocol/conformance-2026/dist/index.js');

export interface SuiteRun {
  readonly results: Record<string, 'pass' | 'fail'>;
  readonly output: string;
}

/**
 * Runs the suite's CLI (`server --url <url> -o <dir> ...args`) without blocking this process (the gateway under test
 * may live in it); resolves with pass/fail per scenario (the `✓ name:` / `✗ name:` lines) and the whole output.
 */
export function runConformance(cli: string, url: string, outDir: string, args: readonly string[]): Promise<SuiteRun> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, 'server', ...args, '--url', url, '-o', outDir], { timeout: 300_000, maxBuffer: 64 * 1024 * 1024 }, (_err, stdout, stderr) => {
      const output = `${stdout}\n${stderr}`;
      const results: Record<string, 'pass' | 'fail'> = {};
      for (const line of output.split('\n')) {
        const m = /^([✓✗]) ([^:\s]+):/.exec(line);
        if (m) results[m[2]!] = m[1] === '✓' ? 'pass' : 'fail';
      }
      resolve({ results, output });
    });
  });
}

/**
 * Forwards every request to `target` as it is (Host and Origin included), plus the Authorization header `auth()`
 * gives; streams both ways.
 */
export function headerHop(target: string, auth: () => string): Promise<Server> {
  const t = new URL(target);
  const server = createServer((req, res) => {
    const up = request(
      { host: t.hostname, port: t.port, method: req.method, path: req.url, headers: { ...req.headers, authorization: auth() } },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
    // The client went away before the answer ended (a closed SSE stream): so does the hop's request.
    res.on('close', () => {
      if (!res.writableFinished) up.destroy();
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}
