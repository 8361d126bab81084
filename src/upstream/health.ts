/**
 * Active health checks of a pool's endpoints. A probe per endpoint every `intervalMs` (the first round at once),
 * each bounded by `timeoutMs`; `unhealthyThreshold` failures in a row take an endpoint out, `healthyThreshold`
 * passes in a row put it back. The probe itself is the protocol's (the hook): an HTTP GET of a path answering 2xx
 * by default (vLLM `/health`), or anything an adapter supplies (Triton: every served model's `/ready`).
 */
import type { Dispatcher } from 'undici';
import type { Endpoint } from './http-upstream.ts';

/** Resolves when the endpoint is healthy; rejects (with the reason) when it is not. Must honour `signal`. */
export type HealthProbe = (endpoint: Endpoint, signal: AbortSignal) => Promise<void>;

export interface HealthSettings {
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly unhealthyThreshold: number;
  readonly healthyThreshold: number;
}

/** GET `path` on the endpoint with the backend's own headers (its credentials); healthy on 2xx. */
export function httpProbe(path: string, headers: Readonly<Record<string, string>>, timeoutMs: number): HealthProbe {
  return async (endpoint, signal) => {
    const res = await endpoint.dispatcher.request({
      method: 'GET',
      path: endpoint.basePath + path,
      headers,
      signal,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    } as Dispatcher.RequestOptions);
    await res.body.dump().catch(() => {});
    if (res.statusCode < 200 || res.statusCode > 299) throw new Error(`health check ${path} answered ${res.statusCode}`);
  };
}

interface Tally {
  passes: number;
  failures: number;
  running: boolean;
}

export class HealthChecker<E extends Endpoint = Endpoint> {
  private readonly settings: HealthSettings;
  private readonly probe: HealthProbe;
  private readonly endpoints: readonly E[];
  private readonly verdict: (endpoint: E, healthy: boolean, detail: string | undefined) => void;
  private readonly tallies: Tally[];
  private timer: NodeJS.Timeout | undefined;
  private readonly controller = new AbortController();

  constructor(settings: HealthSettings, probe: HealthProbe, endpoints: readonly E[], verdict: (endpoint: E, healthy: boolean, detail: string | undefined) => void) {
    this.settings = settings;
    this.probe = probe;
    this.endpoints = endpoints;
    this.verdict = verdict;
    this.tallies = endpoints.map(() => ({ passes: 0, failures: 0, running: false }));
  }

  start(): void {
    if (this.timer !== undefined || this.controller.signal.aborted) return;
    this.round();
    this.timer = setInterval(() => this.round(), this.settings.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.controller.abort();
  }

  /** Probes every endpoint whose previous probe has finished. */
  private round(): void {
    this.endpoints.forEach((e, i) => {
      const t = this.tallies[i]!;
      if (t.running) return;
      t.running = true;
      void this.once(e).then(
        () => this.record(e, t, true, undefined),
        (err: unknown) => this.record(e, t, false, err instanceof Error ? err.message : String(err)),
      );
    });
  }

  private async once(e: E): Promise<void> {
    const timeout = AbortSignal.timeout(this.settings.timeoutMs);
    try {
      await this.probe(e, AbortSignal.any([this.controller.signal, timeout]));
    } catch (err) {
      if (timeout.aborted) throw new Error(`health check: no answer within ${this.settings.timeoutMs} ms`);
      throw err;
    }
  }

  private record(e: E, t: Tally, ok: boolean, detail: string | undefined): void {
    t.running = false;
    if (this.controller.signal.aborted) return;
    if (ok) {
      t.failures = 0;
      t.passes++;
      if (t.passes >= this.settings.healthyThreshold) this.verdict(e, true, undefined);
    } else {
      t.passes = 0;
      t.failures++;
      if (t.failures >= this.settings.unhealthyThreshold) this.verdict(e, false, detail);
    }
  }
}
