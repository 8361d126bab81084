/**
 * Starts a real gateway in-process on an ephemeral port with a config directory written by the test.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startGateway, type RunningGateway } from '../../src/main.ts';

export interface TestGateway extends RunningGateway {
  readonly dir: string;
  /** Writes (or replaces) a config file in the gateway's directory. */
  write(file: string, yaml: string): void;
  stop(): Promise<void>;
}

export const GATEWAY_YAML = `apiVersion: tollgate.dev/v1alpha1
kind: Gateway
metadata: { name: test }
spec:
  listener: { host: 127.0.0.1, port: 0 }
  shutdown: { drainMs: 2000 }
`;

export function mcpBackend(name: string, spec: Record<string, unknown>): string {
  return `---
apiVersion: tollgate.dev/v1alpha1
kind: Backend
metadata: { name: ${name} }
spec: ${JSON.stringify({ protocol: 'mcp', ...spec })}
`;
}

export function route(name: string, path: string, backends: string[], extra: Record<string, unknown> = {}): string {
  return `---
apiVersion: tollgate.dev/v1alpha1
kind: Route
metadata: { name: ${name} }
spec: ${JSON.stringify({ ...extra, rules: [{ matches: [{ path: { type: 'PathPrefix', value: path } }], backendRefs: backends.map((b) => ({ name: b })) }] })}
`;
}

/** The server-everything stdio backend spec (from node_modules, run with the current Node). */
export const EVERYTHING_STDIO = {
  stdio: { command: process.execPath, args: [join(process.cwd(), 'node_modules/@modelcontextprotocol/server-everything/dist/index.js'), 'stdio'] },
};

export async function startTestGateway(files: Record<string, string>, opts: { gatewayYaml?: string } = {}): Promise<TestGateway> {
  // The config dir sits inside its own temp root so the data dir (audit log, keys) is private to this gateway.
  const root = mkdtempSync(join(tmpdir(), 'tollgate-test-'));
  const dir = join(root, 'routes');
  mkdirSync(dir);
  writeFileSync(join(dir, 'gateway.yaml'), opts.gatewayYaml ?? GATEWAY_YAML);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const running = await startGateway({ configDir: dir, host: '127.0.0.1', port: 0 });
  return {
    ...running,
    dir,
    write: (file, yaml) => writeFileSync(join(dir, file), yaml),
    stop: async () => {
      await running.shutdown();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** An official SDK client connected over Streamable HTTP. */
export async function connectClient(url: string, opts: { headers?: Record<string, string>; name?: string } = {}): Promise<Client> {
  const client = new Client({ name: opts.name ?? 'test-client', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: opts.headers ?? {} } });
  await client.connect(transport);
  return client;
}

/** Polls `check` until it returns true (or throws after `ms`). */
export async function eventually(check: () => boolean | Promise<boolean>, ms = 5_000, what = 'condition'): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
