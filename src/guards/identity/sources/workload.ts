/**
 * Trust bundles from the SPIFFE Workload API's FetchJWTBundles stream. One stream per agent (the hub) feeds every
 * trust domain configured with `bundle: {workload_api: {}}`; a trust domain missing from a message keeps its last
 * good bundle (an agent only drops a federated bundle on purpose, and we would rather log than fail open or shut).
 */
import type { Logger } from '../../../telemetry/logger.ts';
import type { WorkloadApiClient } from '../workload-api.ts';
import { KeySource } from './source.ts';

export class WorkloadBundleHub {
  private readonly client: WorkloadApiClient;
  private readonly log: Logger;
  private readonly sources = new Set<WorkloadKeySource>();
  private last: ReadonlyMap<string, unknown> | undefined;
  private stop: (() => void) | undefined;

  constructor(client: WorkloadApiClient, log: Logger) {
    this.client = client;
    this.log = log;
  }

  attach(source: WorkloadKeySource): void {
    this.sources.add(source);
    if (this.last) source.receive(this.last);
    this.stop ??= this.client.watchJwtBundles(
      (bundles) => {
        this.last = bundles;
        for (const s of this.sources) s.receive(bundles);
      },
      (reason) => {
        this.log.warn({ workloadApi: this.client.address, reason }, 'Workload API bundle stream failed; retrying');
        for (const s of this.sources) s.streamFailed(reason);
      },
    );
  }

  detach(source: WorkloadKeySource): void {
    this.sources.delete(source);
  }

  close(): void {
    this.stop?.();
    this.stop = undefined;
  }
}

export class WorkloadKeySource extends KeySource {
  readonly trustDomain: string;
  private readonly hub: WorkloadBundleHub;

  constructor(init: { label: string; fingerprint: string; log: Logger; trustDomain: string; hub: WorkloadBundleHub }) {
    super({ ...init, profile: 'spiffe' });
    this.trustDomain = init.trustDomain;
    this.hub = init.hub;
  }

  start(): void {
    this.hub.attach(this);
  }

  receive(bundles: ReadonlyMap<string, unknown>): void {
    const doc = bundles.get(`spiffe://${this.trustDomain}`) ?? bundles.get(this.trustDomain);
    if (doc === undefined) this.fail(`the Workload API sent no bundle for ${this.trustDomain}`);
    else this.publish(doc);
  }

  streamFailed(reason: string): void {
    this.fail(reason);
  }

  close(): void {
    this.hub.detach(this);
  }
}
