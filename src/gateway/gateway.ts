/**
 * The Gateway owns what outlives a single request: the current state (config snapshot + pipeline), the protocol
 * adapters created from the registered protocol definitions, the call lifecycle and the guard services. It knows
 * no protocol: a matched request goes to the adapter registered for `rule.protocol`. Wired by main.ts and by tests.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ConfigIssue, ConfigSnapshot } from '../config/load.ts';
import { Errors, GatewayError } from '../core/errors.ts';
import type { PolicyStatus } from '../guards/policy/service.ts';
import type { RedisStore, StoreStatus } from '../store/redis.ts';
import type { Logger } from '../telemetry/logger.ts';
import { NO_TELEMETRY, type CallTelemetry } from '../telemetry/service.ts';
import type { UpstreamCredentials } from '../upstream/credentials.ts';
import { writeHttpError } from '../wire/errors.ts';
import type { AdapterContext, ErrorTarget, ProtocolAdapter, ProtocolDefinition, UpstreamReadiness } from './adapter.ts';
import { Admission, type AdmissionStatus } from './admission.ts';
import { buildPipeline, type GuardServices } from './guards.ts';
import { CallLifecycle } from './lifecycle.ts';
import type { GatewayState } from './state.ts';

export interface GatewayOptions {
  readonly log: Logger;
  /** The protocols served (main.ts passes src/protocols/builtin.ts plus what tests register). */
  readonly protocols: readonly ProtocolDefinition[];
  readonly services?: readonly GuardServices[];
  /** Spans and metrics per call (none by default). */
  readonly telemetry?: CallTelemetry;
  /** Tollgate's own credentials for upstream calls (e.g. JWT-SVIDs from the Workload API). */
  readonly credentials?: UpstreamCredentials | undefined;
  /**
   * The shared Redis store (services.store): adapters' cross-replica state (MCP session revocations...), and its
   * state in /readyz (strict readiness also requires it).
   */
  readonly store?: RedisStore | undefined;
  /** The policy in force and its sources' state, for /readyz (absent: no policy configured). */
  readonly policy?: (() => PolicyStatus) | undefined;
}

/** The policy part of /readyz: what is in force, since when, and a refused load with its reason. */
export interface PolicyReadiness {
  readonly revision: string | undefined;
  readonly source: string | undefined;
  readonly loadedAt: string | undefined;
  readonly sources: PolicyStatus['sources'];
  readonly rejected?: { readonly at: string | undefined; readonly location: string; readonly error: string };
}

export interface Readiness {
  readonly ready: boolean;
  readonly config: { revision: number; loadedAt: string; dir: string; rejected?: { at: string; issues: readonly ConfigIssue[] } };
  readonly upstreams: Record<string, UpstreamReadiness>;
  readonly sessions: number;
  /** The shared Redis store (absent when none is configured): limits apply their fail modes while it is down. */
  readonly store?: StoreStatus;
  /** Load shedding: calls in flight and waiting, event-loop delay, refusals by reason. */
  readonly overload: AdmissionStatus;
  /** The policy in force (absent when no policy is configured). A refused load does not make the gateway unready. */
  readonly policy?: PolicyReadiness;
}

/** A config reload, applied or refused (the console's reload history). */
export interface ReloadEvent {
  readonly at: string;
  readonly revision: number;
  readonly applied: boolean;
  readonly issues?: readonly ConfigIssue[];
}

/** Reload events kept in memory. */
const HISTORY = 50;

export class Gateway {
  readonly log: Logger;
  /** The one call lifecycle every adapter uses. */
  readonly calls: CallLifecycle;
  private readonly services: readonly GuardServices[];
  private readonly store: GatewayOptions['store'];
  private readonly policy: GatewayOptions['policy'];
  private readonly telemetry: CallTelemetry;
  /** Adapter by protocol value; `adapterList` holds each adapter once. */
  private readonly adapters = new Map<string, ProtocolAdapter>();
  private readonly adapterList: ProtocolAdapter[] = [];
  private current: GatewayState;
  private rejected: { at: string; issues: readonly ConfigIssue[] } | undefined;
  private readonly reloads: ReloadEvent[] = [];
  /** Load shedding for every matched request (admin endpoints are never shed). */
  private readonly admission: Admission;

  constructor(snapshot: ConfigSnapshot, opts: GatewayOptions) {
    this.log = opts.log;
    this.services = opts.services ?? [];
    this.store = opts.store;
    this.policy = opts.policy;
    this.telemetry = opts.telemetry ?? NO_TELEMETRY;
    this.current = { snapshot, pipeline: buildPipeline(snapshot, this.services, this.telemetry.observer) };
    this.admission = new Admission(snapshot.gateway.overload);
    this.calls = new CallLifecycle({
      log: this.log,
      telemetry: this.telemetry,
      state: () => this.current,
      render: (protocol, err, to) => this.renderError(protocol, err, to),
    });
    const ctx: AdapterContext = { log: this.log, state: () => this.current, calls: this.calls, credentials: opts.credentials, store: opts.store };
    for (const definition of opts.protocols) {
      const adapter = definition.create(ctx);
      this.adapterList.push(adapter);
      for (const p of adapter.protocols) this.adapters.set(p, adapter);
    }
    this.telemetry.watch(this);
    this.remember({ at: new Date(snapshot.loadedAt).toISOString(), revision: snapshot.revision, applied: true });
  }

  private remember(e: ReloadEvent): void {
    this.reloads.push(e);
    if (this.reloads.length > HISTORY) this.reloads.shift();
  }

  /** The last config loads (the first one included), oldest first: applied revisions and refused edits. */
  reloadHistory(): readonly ReloadEvent[] {
    return [...this.reloads];
  }

  state(): GatewayState {
    return this.current;
  }

  /** The adapter serving a protocol value (tests and tools look inside it). */
  adapter(protocol: string): ProtocolAdapter | undefined {
    return this.adapters.get(protocol);
  }

  /** Puts a new snapshot in force atomically. Live sessions and unchanged upstreams are kept. */
  apply(snapshot: ConfigSnapshot): void {
    const pipeline = buildPipeline(snapshot, this.services, this.telemetry.observer);
    this.current = { snapshot, pipeline };
    this.admission.configure(snapshot.gateway.overload);
    for (const adapter of this.adapterList) adapter.reconfigure(snapshot);
    this.rejected = undefined;
    this.remember({ at: new Date().toISOString(), revision: snapshot.revision, applied: true });
    this.log.info({ revision: snapshot.revision, routes: snapshot.routeSpecs.size, backends: snapshot.backends.size }, 'config applied');
  }

  /** Rebuilds the pipeline for the snapshot in force (a guard service's settings changed, e.g. the bound address). */
  refresh(): void {
    this.current = { snapshot: this.current.snapshot, pipeline: buildPipeline(this.current.snapshot, this.services, this.telemetry.observer) };
  }

  /** Records a refused reload (the previous snapshot stays in force); shown by /readyz until a reload succeeds. */
  rejectConfig(issues: readonly ConfigIssue[]): void {
    this.rejected = { at: new Date().toISOString(), issues };
    this.remember({ at: this.rejected.at, revision: this.current.snapshot.revision, applied: false, issues });
  }

  /** Dispatches a request that matched a route to the adapter of its protocol. False: no route matched. */
  dispatch(req: IncomingMessage, res: ServerResponse, path: string): boolean {
    const state = this.current;
    const match = state.snapshot.routes.match(path, req.headers);
    if (!match) return false;
    const adapter = this.adapters.get(match.rule.protocol);
    if (adapter === undefined) {
      // The loader refuses a Backend of an unregistered protocol, so this only happens to a gateway built by hand.
      this.calls.refuse({ protocol: match.rule.protocol, rule: match.rule, req, res }, new GatewayError(Errors.NOT_FOUND, `Protocol ${match.rule.protocol} is not served`));
      return true;
    }
    this.admission.admit(
      req,
      res,
      () => adapter.handle({ req, res, match, state }),
      (err) => {
        // Shedding must stay cheap: no Call, no audit record (nothing was accepted), the body is discarded.
        req.resume();
        adapter.renderError(err, { res, req });
      },
    );
    return true;
  }

  /**
   * Refuses a request before anything else looks at it (shutting down): in the shape of the protocol of the route it
   * matches, plain HTTP when it matches none. No Call, no audit record: nothing was accepted.
   */
  reject(req: IncomingMessage, res: ServerResponse, path: string, err: GatewayError): void {
    const match = this.current.snapshot.routes.match(path, req.headers);
    const adapter = match ? this.adapters.get(match.rule.protocol) : undefined;
    if (adapter !== undefined) adapter.renderError(err, { res, req });
    else writeHttpError(res, err);
  }

  /** Writes an error in the shape of the protocol that serves `protocol` (plain HTTP when none does). */
  renderError(protocol: string, err: GatewayError, to: ErrorTarget): void {
    const adapter = this.adapters.get(protocol);
    if (adapter !== undefined) adapter.renderError(err, to);
    else writeHttpError(to.res, err);
  }

  readiness(strict = false): Readiness {
    const snapshot = this.current.snapshot;
    const upstreams: Record<string, UpstreamReadiness> = {};
    let sessions = 0;
    for (const adapter of this.adapterList) {
      Object.assign(upstreams, adapter.upstreams());
      sessions += adapter.sessions();
    }
    // Not strict: an HTTP upstream that is down does not make the gateway unready (clients may still reach the
    // others); a local process (stdio) that is down does.
    // A store that is down does not make the gateway unready (each limit applies its fail mode) unless strict.
    const storeReady = this.store === undefined || this.store.ready || !strict;
    const ready = storeReady && Object.values(upstreams).every((u) => u.up || (!strict && u.transport !== 'stdio'));
    return {
      ready,
      config: {
        revision: snapshot.revision,
        loadedAt: new Date(snapshot.loadedAt).toISOString(),
        dir: snapshot.dir,
        ...(this.rejected ? { rejected: this.rejected } : {}),
      },
      upstreams,
      sessions,
      ...(this.store ? { store: this.store.status() } : {}),
      overload: this.admission.status(),
      ...this.policyReadiness(),
    };
  }

  private policyReadiness(): { policy?: PolicyReadiness } {
    const status = this.policy?.();
    if (status === undefined || (status.active === undefined && status.sources.length === 0)) return {};
    const refused = status.sources.find((s) => s.error !== undefined);
    return {
      policy: {
        revision: status.active?.revision,
        source: status.active?.source,
        loadedAt: status.active?.since,
        sources: status.sources,
        ...(refused ? { rejected: { at: refused.rejectedAt, location: refused.location, error: refused.error! } } : {}),
      },
    };
  }

  /** Shutdown has begun: adapters end idle server streams so the drain only waits for real in-flight calls. */
  beginDrain(): void {
    for (const adapter of this.adapterList) adapter.drain();
  }

  /**
   * Closes the adapters, then waits for the calls whose settle steps are still running, so that the audit records
   * they owe are queued before the audit log closes. The wait is bounded: the pipeline gives each asynchronous
   * settle step at most SETTLE_TIMEOUT_MS before the steps after it (the audit guard last) run without it.
   */
  async close(): Promise<void> {
    this.admission.close();
    await Promise.allSettled(this.adapterList.map((a) => a.close()));
    if (this.calls.pending > 0) {
      this.log.info({ calls: this.calls.pending }, 'waiting for settle steps to finish');
      await this.calls.settled(Number.MAX_SAFE_INTEGER);
    }
  }
}
