/**
 * Real SPIRE for tests: `spire-server` and `spire-agent` (built by scripts/install-tools.sh into
 * ~/.cache/tollgate/bin) started with temporary configs, loopback and unix sockets only. The agent joins with a
 * join token and verifies the server with its exported trust bundle (no insecure bootstrap); workloads are
 * attested by the `unix` workload attestor (uid/gid selectors). A missing binary fails the test, never skips it.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './net.ts';

const run = promisify(execFile);

export function spireBinary(name: 'spire-server' | 'spire-agent'): string {
  const path = join(process.env.TOLLGATE_CACHE ?? join(homedir(), '.cache', 'tollgate'), 'bin', name);
  if (!existsSync(path)) throw new Error(`${name} not found at ${path}: run scripts/install-tools.sh (npm test does)`);
  return path;
}

/** A child process whose output is kept (the tail) for error messages. */
interface Daemon {
  readonly child: ChildProcess;
  output(): string;
}

/** Every SPIRE process still running: killed when the test process exits, whatever happened to the test. */
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of running) c.kill('SIGKILL');
});

function daemon(bin: string, args: string[]): Daemon {
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  child.once('exit', () => running.delete(child));
  let out = '';
  const keep = (c: Buffer): void => {
    out = (out + c.toString()).slice(-6000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  return { child, output: () => out };
}

async function stopDaemon(d: Daemon | undefined): Promise<void> {
  if (!d || d.child.exitCode !== null || d.child.signalCode !== null) return;
  const exited = new Promise((r) => d.child.once('exit', r));
  d.child.kill('SIGTERM');
  const timer = setTimeout(() => d.child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** Polls `spire-* healthcheck` until it passes (or the process exits, or 30 s pass). */
async function healthy(bin: string, socket: string, d: Daemon, what: string): Promise<void> {
  const until = Date.now() + 30_000;
  for (;;) {
    try {
      await run(bin, ['healthcheck', '-socketPath', socket]);
      return;
    } catch {
      if (d.child.exitCode !== null) throw new Error(`${what} exited: ${d.output()}`);
      if (Date.now() > until) throw new Error(`${what} not healthy after 30 s: ${d.output()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

export interface EntrySpec {
  readonly spiffeId: string;
  readonly parentId: string;
  /** `type:value` selectors, e.g. `unix:uid:1000`. */
  readonly selectors: readonly string[];
  readonly jwtSvidTtl?: number;
  readonly federatesWith?: readonly string[];
}

export interface SpireServer {
  readonly trustDomain: string;
  readonly socket: string;
  readonly port: number;
  /** Runs a `spire-server` subcommand against this server's API socket; resolves with stdout. */
  cli(args: readonly string[], stdin?: string): Promise<string>;
  /** Registers a workload entry; resolves with its entry id. */
  entry(spec: EntrySpec): Promise<string>;
  /** A one-use join token for an agent, and the SPIFFE ID that agent gets (the parent of its workloads). */
  joinToken(): Promise<{ token: string; agentId: string }>;
  /** `spire-server jwt mint`: a real JWT-SVID without an agent. */
  mint(spiffeId: string, audience: string, ttl?: string): Promise<string>;
  /** The trust bundle, in the SPIFFE (JWKS) format. */
  bundle(): Promise<string>;
  stop(): Promise<void>;
}

export async function startSpireServer(root: string, trustDomain: string, opts: { defaultJwtTtl?: string } = {}): Promise<SpireServer> {
  const bin = spireBinary('spire-server');
  const dir = join(root, `server-${trustDomain}`);
  mkdirSync(join(dir, 'data'), { recursive: true });
  const socket = join(dir, 'api.sock');
  const port = await freePort();
  const conf = join(dir, 'server.conf');
  writeFileSync(
    conf,
    `server {
  bind_address = "127.0.0.1"
  bind_port = "${port}"
  socket_path = "${socket}"
  trust_domain = "${trustDomain}"
  data_dir = "${join(dir, 'data')}"
  log_level = "WARN"
  ca_ttl = "24h"
  default_jwt_svid_ttl = "${opts.defaultJwtTtl ?? '1h'}"
}
plugins {
  DataStore "sql" {
    plugin_data {
      database_type = "sqlite3"
      connection_string = "${join(dir, 'data', 'datastore.sqlite3')}"
    }
  }
  KeyManager "memory" {
    plugin_data {}
  }
  NodeAttestor "join_token" {
    plugin_data {}
  }
}
`,
  );
  const d = daemon(bin, ['run', '-config', conf]);
  await healthy(bin, socket, d, `spire-server ${trustDomain}`);
  const cli = async (args: readonly string[], stdin?: string): Promise<string> => {
    // The subcommand words come first, then flags: the socket goes right after the words.
    const n = args.findIndex((a) => a.startsWith('-'));
    const at = n === -1 ? args.length : n;
    const full = [...args.slice(0, at), '-socketPath', socket, ...args.slice(at)];
    if (stdin === undefined) return (await run(bin, full)).stdout;
    return new Promise((resolve, reject) => {
      const p = execFile(bin, full, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}: ${stderr}`)) : resolve(stdout)));
      p.stdin!.end(stdin);
    });
  };
  return {
    trustDomain,
    socket,
    port,
    cli,
    entry: async (spec) => {
      const args = ['entry', 'create', '-parentID', spec.parentId, '-spiffeID', spec.spiffeId, '-output', 'json'];
      for (const s of spec.selectors) args.push('-selector', s);
      if (spec.jwtSvidTtl !== undefined) args.push('-jwtSVIDTTL', String(spec.jwtSvidTtl));
      for (const f of spec.federatesWith ?? []) args.push('-federatesWith', f);
      const out = JSON.parse(await cli(args)) as { results: Array<{ entry: { id: string } }> };
      return out.results[0]!.entry.id;
    },
    joinToken: async () => {
      const out = JSON.parse(await cli(['token', 'generate', '-ttl', '600', '-output', 'json'])) as { value: string };
      return { token: out.value, agentId: `spiffe://${trustDomain}/spire/agent/join_token/${out.value}` };
    },
    mint: async (spiffeId, audience, ttl = '10m') => (await cli(['jwt', 'mint', '-spiffeID', spiffeId, '-audience', audience, '-ttl', ttl])).trim(),
    bundle: () => cli(['bundle', 'show', '-format', 'spiffe']),
    stop: () => stopDaemon(d),
  };
}

export interface SpireAgent {
  readonly id: string;
  readonly socket: string;
  /** `unix:///...`: for identity.workloadApi.socket / SPIFFE_ENDPOINT_SOCKET. */
  readonly address: string;
  stop(): Promise<void>;
  /** Starts the agent again after stop(), with its data dir (no new attestation: its SVID and key are on disk). */
  restart(): Promise<void>;
  output(): string;
}

/**
 * Starts an agent joined to `server` with a fresh join token. `entries` are registered under the agent's ID before
 * it starts, so its first sync brings them.
 */
export async function startSpireAgent(root: string, server: SpireServer, entries: (agentId: string) => EntrySpec[] = () => []): Promise<SpireAgent> {
  const bin = spireBinary('spire-agent');
  const { token, agentId } = await server.joinToken();
  for (const e of entries(agentId)) await server.entry(e);
  const dir = join(root, `agent-${server.trustDomain}`);
  mkdirSync(join(dir, 'data'), { recursive: true });
  mkdirSync(join(dir, 'keys'), { recursive: true });
  const bundle = join(dir, 'bootstrap.pem');
  writeFileSync(bundle, await server.cli(['bundle', 'show', '-format', 'pem']));
  const socket = join(dir, 'agent.sock');
  const conf = join(dir, 'agent.conf');
  writeFileSync(
    conf,
    `agent {
  data_dir = "${join(dir, 'data')}"
  log_level = "WARN"
  server_address = "127.0.0.1"
  server_port = "${server.port}"
  socket_path = "${socket}"
  trust_domain = "${server.trustDomain}"
  trust_bundle_path = "${bundle}"
  join_token = "${token}"
  # Entries and bundles are synced every second instead of every five: rotation tests wait less.
  experimental { sync_interval = "1s" }
}
plugins {
  NodeAttestor "join_token" {
    plugin_data {}
  }
  # On disk, so that a restarted agent keeps its identity (a join token is single-use).
  KeyManager "disk" {
    plugin_data { directory = "${join(dir, 'keys')}" }
  }
  WorkloadAttestor "unix" {
    plugin_data {}
  }
}
`,
  );
  let d = daemon(bin, ['run', '-config', conf]);
  await healthy(bin, socket, d, 'spire-agent');
  return {
    id: agentId,
    socket,
    address: `unix://${socket}`,
    stop: () => stopDaemon(d),
    restart: async () => {
      await stopDaemon(d);
      d = daemon(bin, ['run', '-config', conf]);
      await healthy(bin, socket, d, 'spire-agent (restarted)');
    },
    output: () => d.output(),
  };
}
