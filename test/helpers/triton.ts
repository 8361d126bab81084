/**
 * A real Triton Inference Server for the KServe v2 tests: tritonserver bundled by nvidia-pytriton, on CPU, from the
 * virtualenv scripts/install-tools.sh builds (~/.cache/tollgate/venv-triton), serving the models of
 * test/python/triton_models.py (`add` FP32, text `echo`, decoupled `stream`, `tally` stateful by its generate
 * `sequence_id`). Started once per test file (a cold start takes ~7-13 s), ready when every model answers
 * /v2/models/<m>/ready (the server's own /v2/health/ready answers 200 before any model has loaded), stopped with
 * SIGTERM (the script exits cleanly and PyTriton removes its workspace). A missing virtualenv fails the test run; it
 * never skips.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './net.ts';

export const TRITON_VENV = join(process.env.TOLLGATE_CACHE ?? join(homedir(), '.cache/tollgate'), 'venv-triton');
export const TRITON_PYTHON = join(TRITON_VENV, 'bin/python');
export const TRITON_MODELS = ['add', 'echo', 'stream', 'tally'] as const;

/** What a Triton is started with: the script (it takes --http-port, --grpc-port, --metrics-port) and its models. */
export interface TritonSetup {
  readonly script: string;
  readonly models: readonly string[];
}

/** The PyTriton models of test/python/triton_models.py (the default). */
export const PYTRITON_MODELS: TritonSetup = { script: 'test/python/triton_models.py', models: TRITON_MODELS };
/**
 * A stateful model behind Triton's sequence batcher (`accumulate`, test/python/triton_sequence_models.py): the same
 * bundled tritonserver run directly, since PyTriton cannot configure sequence batching.
 */
export const SEQUENCE_MODELS: TritonSetup = { script: 'test/python/triton_sequence_models.py', models: ['accumulate'] };

export interface Triton {
  /** http://127.0.0.1:<port> (KServe v2 over HTTP). */
  readonly url: string;
  readonly port: number;
  /** What the server printed (stdout and stderr), for failure messages. */
  log(): string;
  stop(): Promise<void>;
}

/** Cold start ~7 s idle, ~13 s on a loaded machine (measured); 120 s leaves room for a 2-core machine under CI load. */
const START_DEADLINE_MS = 120_000;

export async function startTriton(setup: TritonSetup = PYTRITON_MODELS): Promise<Triton> {
  if (!existsSync(TRITON_PYTHON)) throw new Error(`${TRITON_PYTHON} is missing: run scripts/install-tools.sh (it builds the Triton virtualenv)`);
  const [port, grpc, metrics] = [await freePort(), await freePort(), await freePort()];
  const child = spawn(TRITON_PYTHON, [setup.script, '--http-port', String(port), '--grpc-port', String(grpc), '--metrics-port', String(metrics)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PYTHONUNBUFFERED: '1' },
  });
  let output = '';
  const keep = (b: Buffer): void => {
    output += b.toString('utf8');
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const url = `http://127.0.0.1:${port}`;
  const triton: Triton = { url, port, log: () => output, stop: () => stop(child, exited) };
  const deadline = Date.now() + START_DEADLINE_MS;
  for (const model of setup.models) {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`Triton exited with ${child.exitCode} before ${model} was ready:\n${output.slice(-4000)}`);
      if (await ready(`${url}/v2/models/${model}/ready`)) break;
      if (Date.now() > deadline) {
        await triton.stop();
        throw new Error(`Triton: model ${model} not ready within ${START_DEADLINE_MS} ms:\n${output.slice(-4000)}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  return triton;
}

async function ready(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

/** SIGTERM, then SIGKILL if it has not exited within 30 s (a clean stop takes ~8 s). */
async function stop(child: ChildProcess, exited: Promise<number | null>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  await exited;
  clearTimeout(timer);
}
