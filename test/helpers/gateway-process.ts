/**
 * The gateway as its own process (`node bin/tollgate.mjs serve`), for what only a real process shows: SIGTERM
 * while SDK clients keep calling, and what the process flushed before it exited.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectClient, eventually, rememberProcessUrl } from './gateway.ts';

export interface GatewayProcess {
  readonly child: ChildProcess;
  readonly url: string;
  /** The admin listener's base URL (/readyz, /metrics...), from the "tollgate listening" line. */
  readonly adminUrl: string | undefined;
  /** Everything the process wrote so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code. */
  readonly exited: Promise<number | null>;
}

export async function startGatewayProcess(configDir: string, env: NodeJS.ProcessEnv): Promise<GatewayProcess> {
  const child = spawn(process.execPath, ['bin/tollgate.mjs', 'serve', '--config', configDir], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const listening = /"address":"([^"]+)"[^\n]*"msg":"tollgate listening"/;
  await eventually(() => listening.test(stdout) || child.exitCode !== null, 30_000, `gateway listening: ${stderr}`);
  const m = listening.exec(stdout);
  if (m === null) throw new Error(`gateway exited before listening: ${stdout}${stderr}`);
  rememberProcessUrl(configDir, `http://${m[1]}`);
  const admin = /"admin":"([^"]+)"[^\n]*"msg":"tollgate listening"/.exec(stdout);
  return { child, url: `http://${m[1]}`, adminUrl: admin ? `http://${admin[1]}` : undefined, stdout: () => stdout, stderr: () => stderr, exited };
}

/** A gateway process started from a config directory of its own (startConfiguredGateway). */
export interface ConfiguredGateway extends GatewayProcess {
  /** The temp root: the config directory is `<root>/routes`, the data directory (audit log) `<root>/.tollgate`. */
  readonly root: string;
  readonly config: string;
  /** The audit log directory (`<root>/.tollgate/audit`). */
  readonly auditDir: string;
  /** Kills the process if it still runs (SIGKILL) and removes the temp root. */
  dispose(): void;
}

/**
 * A gateway process on a config of its own: a new temp root (`tollgate-<label>-`), `routes/gateway.yaml` (the
 * Gateway `name`, listening on a free loopback port, with `shutdown.drainMs` and any more `spec` lines, two-space
 * indented YAML) and `routes/routes.yaml` (the other documents). The process logs at info (the lines tests read)
 * unless `env` says otherwise (default: this process's environment).
 */
export async function startConfiguredGateway(o: {
  label: string;
  name: string;
  drainMs: number;
  spec?: string;
  routes: string;
  env?: NodeJS.ProcessEnv;
}): Promise<ConfiguredGateway> {
  const root = mkdtempSync(join(tmpdir(), `tollgate-${o.label}-`));
  const config = join(root, 'routes');
  const dispose = (gw?: GatewayProcess): void => {
    if (gw !== undefined && gw.child.exitCode === null) gw.child.kill('SIGKILL');
    rmSync(root, { recursive: true, force: true });
  };
  try {
    mkdirSync(config);
    writeFileSync(
      join(config, 'gateway.yaml'),
      `apiVersion: tollgate.dev/v1alpha1
kind: Gateway
metadata: { name: ${o.name} }
spec:
  listener: { host: 127.0.0.1, port: 0 }
  shutdown: { drainMs: ${o.drainMs} }
${o.spec ?? ''}`,
    );
    writeFileSync(join(config, 'routes.yaml'), o.routes);
    const gw = await startGatewayProcess(config, o.env ?? { ...process.env, TOLLGATE_LOG_LEVEL: 'info' });
    return { ...gw, root, config, auditDir: join(root, '.tollgate', 'audit'), dispose: () => dispose(gw) };
  } catch (err) {
    dispose();
    throw err;
  }
}

/**
 * `clients` SDK clients call `tool` in a loop (arguments and `_meta` from `call(client, i)`, which also names the
 * call), the process gets SIGTERM once `before` calls were answered, and the clients stop at the first refusal.
 * Returns the names of the calls that were answered (their text echoed back) and the exit code.
 */
export async function sigtermUnderLoad(
  gw: GatewayProcess,
  opts: { headers: Record<string, string>; tool: string; clients: number; before: number; call(client: number, i: number): { name: string; meta?: Record<string, unknown> } },
): Promise<{ answered: string[]; code: number | null }> {
  const answered: string[] = [];
  let stop = false;
  let done = 0;
  const load = async (k: number): Promise<void> => {
    try {
      const client = await connectClient(`${gw.url}/mcp`, { headers: opts.headers });
      for (let i = 0; !stop && i < 5_000; i++) {
        const { name, meta } = opts.call(k, i);
        try {
          const r = await client.callTool({ name: opts.tool, arguments: { message: name }, ...(meta ? { _meta: meta } : {}) });
          if ((r.content as Array<{ text: string }>)[0]?.text === name) answered.push(name);
        } catch {
          break; // the gateway is draining or gone
        }
      }
      await client.close().catch(() => {});
    } finally {
      done++;
    }
  };
  const clients = Array.from({ length: opts.clients }, (_, k) => load(k));
  try {
    // Until enough calls were answered; clients that all stopped early (a failure) end the wait at once.
    while (answered.length < opts.before && done < opts.clients && gw.child.exitCode === null) await new Promise((r) => setTimeout(r, 10));
    if (answered.length < opts.before) throw new Error(`only ${answered.length} calls answered before the load stopped: ${gw.stderr()}`);
    gw.child.kill('SIGTERM');
    const code = await gw.exited;
    return { answered, code };
  } finally {
    stop = true;
    await Promise.allSettled(clients);
  }
}
