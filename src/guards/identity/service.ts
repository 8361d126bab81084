/**
 * The identity service: long-lived owner of the key sources (trust bundles, OIDC/Kubernetes JWKS, the dev trust
 * domain), the verified-token cache, the Workload API client, Tollgate's own upstream SVIDs and the RFC 9728
 * metadata endpoint. Each config snapshot gets a fresh IdentityGuard; sources whose config did not change survive
 * reloads with their keys, and the token cache survives as long as the identity section is unchanged.
 */
import { createHash } from 'node:crypto';
import type { ConfigSnapshot } from '../../config/load.ts';
import type { Guard } from '../../core/pipeline.ts';
import type { GuardServices } from '../../core/pipeline.ts';
import type { AdminExtension } from '../../server/admin.ts';
import type { Logger } from '../../telemetry/logger.ts';
import { configuredTrustDomains, devEnabled, gatewayAudiences, listenerOf } from './config.ts';
import { loadOrCreateDevAuthority } from './dev.ts';
import { IdentityGuard, TokenAuthority, type TokenChecks } from './guard.ts';
import type { Issuer } from './issuers/issuer.ts';
import { KubernetesIssuer, createKubernetesSource } from './issuers/kubernetes.ts';
import { OidcIssuer, createOidcSource } from './issuers/oidc.ts';
import { SpiffeTrustDomain, createTrustDomainSource, type SourceContext } from './issuers/spiffe.ts';
import { protectedResourceMetadata, type MetadataView } from './metadata.ts';
import { compileRoutePolicy, resourceBases, type RoutePolicy } from './policy.ts';
import { routeResources } from './resources.ts';
import { StaticKeySource, type KeySource } from './sources/source.ts';
import { WorkloadBundleHub } from './sources/workload.ts';
import { WorkloadSvidCredentials } from './upstream-identity.ts';
import { WorkloadApiClient, workloadAddress } from './workload-api.ts';

/** How long startup waits for remote bundles before serving (tokens of a domain without keys yet are refused). */
const STARTUP_WAIT_MS = 5_000;

interface Compiled {
  readonly key: string;
  readonly authority: TokenAuthority;
  readonly sources: ReadonlyMap<string, KeySource>;
  readonly trustDomains: readonly string[];
  readonly audiences: readonly string[];
}

export class IdentityService implements GuardServices {
  readonly admin: AdminExtension;
  /** Token verifications really run, by result (tollgate_token_verifications_total). */
  readonly checks: TokenChecks = { ok: 0, failed: 0 };
  readonly credentials: WorkloadSvidCredentials;
  private readonly log: Logger;
  private compiled: Compiled | undefined;
  private view: MetadataView | undefined;
  private client: WorkloadApiClient | undefined;
  private hub: WorkloadBundleHub | undefined;
  private workloadSocket: string | undefined;
  private renewAt = 0.5;
  /** Where the listener actually is (known once it listens): the default audience follows it. */
  private bound: { host: string; port: number } | undefined;

  private constructor(log: Logger) {
    this.log = log;
    this.admin = protectedResourceMetadata(() => this.view);
    this.credentials = new WorkloadSvidCredentials({ client: () => this.workloadClient(), renewAt: () => this.renewAt, log });
  }

  /** Creates the service for the first snapshot and waits (bounded) for its key sources to load. */
  static async create(snapshot: ConfigSnapshot, log: Logger): Promise<IdentityService> {
    const service = new IdentityService(log);
    const compiled = service.compile(snapshot);
    await Promise.all([...compiled.sources.values()].map((s) => s.ready(STARTUP_WAIT_MS)));
    for (const s of compiled.sources.values()) {
      if (!s.current) log.warn({ source: s.label, reason: s.lastError }, 'no keys yet; tokens of this issuer are refused until they load');
    }
    return service;
  }

  /**
   * The address the public listener is bound to (PORT/HOST overrides and ephemeral ports included). The gateway's
   * default audience and resource URIs follow it; the next `guardsFor` uses it.
   */
  setListenerAddress(address: { host: string; port: number }): void {
    this.bound = address;
  }

  /** The gateway's audiences in force (tests mint tokens for them). */
  get audiences(): readonly string[] {
    return this.compiled?.audiences ?? [];
  }

  /** The canonical URI of a resource path (`/mcp`, `/mcp/<server>`) in force. */
  resourceUri(path: string): string {
    return `${this.compiled?.authority.base ?? ''}${path}`;
  }

  /** The token authority in force (tests and benchmarks look inside). */
  get authority(): TokenAuthority | undefined {
    return this.compiled?.authority;
  }

  guardsFor(snapshot: ConfigSnapshot): Guard[] {
    const compiled = this.compile(snapshot);
    const policies = new Map<string, RoutePolicy>();
    const resources = routeResources(snapshot);
    const byResource = new Map<string, RoutePolicy>();
    for (const [name, spec] of snapshot.routeSpecs) {
      const policy = compileRoutePolicy(name, spec, snapshot.gateway.identity, compiled.trustDomains, resources.get(name) ?? []);
      policies.set(name, policy);
      for (const r of policy.resources) if (!byResource.has(r)) byResource.set(r, policy);
    }
    this.view = { bases: compiled.authority.audiences.bases, lookup: (path) => byResource.get(path) };
    return [new IdentityGuard(compiled.authority, policies)];
  }

  /** Builds (or keeps) the authority for a snapshot's identity section. */
  private compile(snapshot: ConfigSnapshot): Compiled {
    const identity = snapshot.gateway.identity;
    const listener = listenerOf(snapshot.gateway.listener);
    const audiences = gatewayAudiences(identity, this.bound ? { ...listener, ...this.bound } : listener);
    const key = createHash('sha256').update(JSON.stringify([identity, audiences, snapshot.dataDir, snapshot.dir])).digest('base64url');
    if (this.compiled?.key === key) return this.compiled;

    const socket = workloadAddress(identity.workloadApi.socket);
    // Refuse before touching anything in force: a reload that fails here leaves the running sources alone.
    const needsAgent = identity.trustDomains.filter((t) => t.bundle.workload_api !== undefined).map((t) => t.name);
    if (needsAgent.length > 0 && !socket) {
      throw new Error(`trust domains ${needsAgent.join(', ')} take their bundle from the Workload API, but neither identity.workloadApi.socket nor SPIFFE_ENDPOINT_SOCKET is set`);
    }
    this.renewAt = identity.workloadApi.renewAt;
    this.setWorkloadSocket(socket);
    const previous = this.compiled?.sources ?? new Map<string, KeySource>();
    const sources = new Map<string, KeySource>();
    const ctx: SourceContext = { log: this.log, configDir: snapshot.dir, workloadSocket: this.workloadSocket, hub: () => this.bundleHub() };
    const reuse = (source: KeySource): KeySource => {
      const kept = previous.get(source.fingerprint) ?? sources.get(source.fingerprint);
      if (kept) {
        source.close();
        sources.set(kept.fingerprint, kept);
        return kept;
      }
      sources.set(source.fingerprint, source);
      source.start();
      return source;
    };
    // A source is created for every entry but started only when its fingerprint is new (nothing happens before
    // start()); otherwise the running one is kept with its keys.
    const trustDomains = new Map<string, Issuer>();
    const byIss = new Map<string, Issuer>();
    for (const td of identity.trustDomains) {
      trustDomains.set(td.name, new SpiffeTrustDomain(td.name, reuse(createTrustDomainSource(td, ctx)), td.allowMissingKid));
    }
    if (devEnabled(identity) && !trustDomains.has(identity.dev.trustDomain)) {
      const dev = loadOrCreateDevAuthority(snapshot.dataDir, identity.dev.trustDomain);
      const source = new StaticKeySource({
        label: `dev trust domain ${dev.trustDomain} (${dev.keyFile})`,
        fingerprint: `dev:${dev.trustDomain}:${dev.kid}`,
        profile: 'spiffe',
        log: this.log,
        doc: dev.bundle,
      });
      trustDomains.set(dev.trustDomain, new SpiffeTrustDomain(dev.trustDomain, reuse(source)));
    }
    for (const o of identity.oidc) byIss.set(o.issuer, new OidcIssuer(o, reuse(createOidcSource(o, ctx))));
    for (const k of identity.kubernetes) byIss.set(k.issuer, new KubernetesIssuer(k, reuse(createKubernetesSource(k, ctx))));

    for (const [fp, s] of previous) if (!sources.has(fp)) s.close();
    const authority = new TokenAuthority({
      issuers: { trustDomains, byIss },
      maxTokenBytes: identity.maxTokenBytes,
      clockSkewSeconds: identity.clockSkewSeconds,
      cacheEntries: identity.cache.maxEntries,
      audiences: { bases: resourceBases(audiences), gateway: new Set(audiences), sharedAudience: identity.sharedAudience },
      negative: identity.negativeCache,
      checks: this.checks,
    });
    this.compiled = { key, authority, sources, trustDomains: configuredTrustDomains(identity), audiences };
    this.log.info(
      { trustDomains: [...trustDomains.keys()], oidc: identity.oidc.map((o) => o.name), kubernetes: identity.kubernetes.map((k) => k.name), audiences },
      'identity configured',
    );
    return this.compiled;
  }

  private setWorkloadSocket(address: string | undefined): void {
    if (address === this.workloadSocket) return;
    this.hub?.close();
    this.client?.close();
    this.hub = undefined;
    this.client = undefined;
    this.workloadSocket = address;
  }

  private workloadClient(): WorkloadApiClient {
    if (!this.workloadSocket) throw new Error('the SPIFFE Workload API is not configured (identity.workloadApi.socket or SPIFFE_ENDPOINT_SOCKET)');
    this.client ??= new WorkloadApiClient(this.workloadSocket);
    return this.client;
  }

  private bundleHub(): WorkloadBundleHub {
    this.hub ??= new WorkloadBundleHub(this.workloadClient(), this.log);
    return this.hub;
  }

  async close(): Promise<void> {
    for (const s of this.compiled?.sources.values() ?? []) s.close();
    this.credentials.close();
    this.hub?.close();
    this.client?.close();
  }
}

