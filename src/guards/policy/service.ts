/**
 * The policy service: owns the policy sources, keeps the engine in force, and gives the pipeline its guard.
 *
 * Precedence when several sources are configured: bundle service > Rego directory (built with opa) > bundle file.
 * The engine in force is the highest-ranked source that has loaded one; a source that fails keeps its last good
 * engine, so a bad edit or a tampered download never replaces a working policy. A swap is one reference
 * assignment between two synchronous evaluations: no request sees a half-loaded policy or is dropped.
 */
import { resolve } from 'node:path';
import type { ConfigSnapshot } from '../../config/load.ts';
import { resolveSecret } from '../../config/load.ts';
import type { Guard } from '../../core/pipeline.ts';
import type { GuardServices } from '../../core/pipeline.ts';
import type { Logger } from '../../telemetry/logger.ts';
import type { PolicyBundle } from './bundle.ts';
import { configuredEntrypoints, gatewayEntrypoints, type PolicySpec } from './config.ts';
import { DecisionLog } from './decision-log.ts';
import { PolicyEngine, type MemoryBounds } from './engine.ts';
import { PolicyGuard, type Entrypoints, type PolicyRuntime } from './guard.ts';
import { InputBuilder, inputOptions } from './input.ts';
import { VisibleMemo } from './visible-memo.ts';
import { findOpa, findRegoc } from './opa.ts';
import { RegoCompiler } from './regoc.ts';
import type { VerificationConfig } from './signature.ts';
import { DirSource, FileSource, ServiceSource, type PolicySource, type SourceHost, type SourceStatus } from './sources.ts';

export interface PolicyStatus {
  /** Where the policy in force came from, its revision and when it was put in force. */
  readonly active: { readonly source: string; readonly revision: string; readonly since: string } | undefined;
  /** Each source's state: its last loaded revision, and the error of a refused load (the policy in force stays). */
  readonly sources: readonly SourceStatus[];
}

interface Resolved {
  readonly spec: PolicySpec;
  readonly entrypoints: Entrypoints;
  /** Every entrypoint the config names (gateway level and route overrides): what a directory build compiles. */
  readonly all: readonly string[];
  readonly verification: VerificationConfig | undefined;
  readonly serviceHeaders: Readonly<Record<string, string>>;
  readonly dir: string | undefined;
  readonly bundle: string | undefined;
}

/** A policy put in force (the console's reload history). */
export interface PolicyChange {
  readonly at: string;
  readonly source: string;
  readonly location: string | undefined;
  readonly revision: string | undefined;
  readonly reloadMs: number | undefined;
}

export class PolicyService implements GuardServices, PolicyRuntime, SourceHost {
  private readonly changes: PolicyChange[] = [];
  engine: PolicyEngine | undefined;
  readonly decisionLog: DecisionLog;
  readonly log: Logger;
  private sources: PolicySource[] = [];
  private key: string | undefined;
  private resolved: Resolved | undefined;
  private regocMissingLogged = false;
  /** The engine in force before the last reconfiguration, kept until a new source loads one. */
  private fallback: PolicyEngine | undefined;
  private guard: { key: string; snapshot: ConfigSnapshot; guard: PolicyGuard } | undefined;
  private readonly env: NodeJS.ProcessEnv;
  /** When the engine in force was put in force. */
  private since = 0;

  constructor(log: Logger, env: NodeJS.ProcessEnv = process.env) {
    this.log = log.child({ guard: 'policy' });
    this.decisionLog = new DecisionLog(this.log);
    this.env = env;
  }

  /**
   * Applies a snapshot's policy config. When it changed, starts the new sources and resolves once the first
   * policy is in force; rejects when none could be loaded (at start-up: the gateway does not start without one).
   */
  async configure(snapshot: ConfigSnapshot): Promise<void> {
    const spec = snapshot.gateway.policy;
    if (spec === undefined) {
      this.stop();
      return;
    }
    const all = configuredEntrypoints(spec, snapshot.routeSpecs.values());
    const key = JSON.stringify({ spec, dir: snapshot.dir, all });
    if (key === this.key) return;
    const resolved = this.resolve(snapshot, spec, all);
    this.key = key;
    this.resolved = resolved;
    this.fallback = this.engine;
    for (const s of this.sources) s.close();
    this.sources = this.createSources(resolved);
    const local = this.sources.filter((s) => s.kind !== 'service');
    const service = this.sources.find((s) => s.kind === 'service');
    const errors: string[] = [];
    const servicePending = service?.start().then((e) => e && errors.push(`${service.location}: ${e}`));
    for (const e of await Promise.all(local.map(async (s) => [s, await s.start()] as const))) if (e[1]) errors.push(`${e[0].location}: ${e[1]}`);
    // Only wait for the bundle server when nothing local can serve meanwhile.
    if (this.engine === undefined && servicePending) await servicePending;
    if (this.engine === undefined) {
      throw new Error(`policy: no policy could be loaded\n${errors.join('\n') || 'no source configured'}`);
    }
  }

  /** Resolves paths and secrets; throws with the config problem. */
  private resolve(snapshot: ConfigSnapshot, spec: PolicySpec, all: readonly string[]): Resolved {
    const secret = (ref: { valueFrom: { env: string } | { file: string } }, what: string): string => {
      const r = resolveSecret(ref.valueFrom, snapshot.dir, this.env);
      if ('error' in r) throw new Error(`policy: ${what}: ${r.error}`);
      return r.value;
    };
    let verification: VerificationConfig | undefined;
    if (spec.verification) {
      const keys: Record<string, { algorithm: string; key: string; scope?: string | undefined }> = {};
      for (const [id, k] of Object.entries(spec.verification.keys)) keys[id] = { algorithm: k.algorithm, key: secret(k.key, `verification key ${id}`), scope: k.scope };
      verification = { keys, keyId: spec.verification.keyId, scope: spec.verification.scope, exclude: spec.verification.exclude };
    }
    const serviceHeaders: Record<string, string> = {};
    for (const h of spec.service?.headers ?? []) {
      serviceHeaders[h.name] = h.value ?? secret({ valueFrom: h.valueFrom! }, `service header ${h.name}`);
    }
    return {
      spec,
      entrypoints: gatewayEntrypoints(spec),
      all,
      verification,
      serviceHeaders,
      dir: spec.dir === undefined ? undefined : resolve(snapshot.dir, spec.dir),
      bundle: spec.bundle === undefined ? undefined : resolve(snapshot.dir, spec.bundle),
    };
  }

  /** Sources in precedence order. */
  private createSources(r: Resolved): PolicySource[] {
    const out: PolicySource[] = [];
    const { spec } = r;
    if (spec.service) {
      out.push(
        new ServiceSource(this, {
          url: spec.service.url,
          headers: r.serviceHeaders,
          minDelayMs: spec.service.minDelayMs,
          maxDelayMs: spec.service.maxDelayMs,
          timeoutMs: spec.service.timeoutMs,
          maxBytes: spec.service.maxBytes,
          verification: r.verification,
        }),
      );
    }
    if (r.dir !== undefined) {
      const opa = findOpa(this.env);
      const regoc = opa === undefined ? undefined : this.regoc();
      const compiler = regoc === undefined ? undefined : new RegoCompiler(regoc, { log: this.log });
      if (opa) out.push(new DirSource(this, { dir: r.dir, opa, compiler, watch: spec.watch, checkIntervalMs: spec.checkIntervalMs, entrypoints: r.all }));
      else if (r.bundle === undefined) this.log.error({ dir: r.dir }, 'policy.dir needs opa (PATH or TOLLGATE_OPA) to be built, and no bundle is configured');
      else this.log.info({ dir: r.dir, bundle: r.bundle }, 'opa not found: serving the built bundle; .rego edits take effect after `tollgate policy build`');
    }
    if (r.bundle !== undefined) {
      out.push(
        new FileSource(this, {
          file: r.bundle,
          watch: spec.watch,
          checkIntervalMs: spec.checkIntervalMs,
          verification: r.verification,
          maxBytes: spec.service?.maxBytes ?? 256 * 1024 * 1024,
        }),
      );
    }
    return out;
  }

  /** The persistent Rego compiler's binary; when there is none, says once that Rego is built with `opa build`. */
  private regoc(): string | undefined {
    const found = findRegoc(this.env);
    if (found === undefined && !this.regocMissingLogged) {
      this.regocMissingLogged = true;
      this.log.info({}, 'tollgate-regoc not found (PATH, TOLLGATE_REGOC) or TOLLGATE_REGOC=off: Rego is compiled by `opa build`, a process per edit');
    }
    return found;
  }

  /** SourceHost: loads a bundle and checks it serves the configured entrypoints. */
  async load(bundle: PolicyBundle): Promise<PolicyEngine> {
    const r = this.resolved;
    if (!r) throw new Error('policy is not configured');
    const engine = await PolicyEngine.load(bundle, r.spec.memory as MemoryBounds);
    const needed = [r.entrypoints.decision, ...(r.entrypoints.visible === null ? [] : [r.entrypoints.visible])];
    const missing = needed.filter((e) => !engine.has(e));
    if (missing.length > 0) {
      throw new Error(`${bundle.source}: bundle lacks entrypoint(s) ${missing.join(', ')} (has ${[...engine.entrypoints.keys()].join(', ') || 'none'})`);
    }
    const others = r.all.filter((e) => !engine.has(e) && !needed.includes(e));
    if (others.length > 0) this.log.warn({ missing: others, bundle: bundle.source }, 'route-level entrypoints missing from the bundle: those routes fail closed');
    return engine;
  }

  /** SourceHost: a source loaded a new engine; put the right one in force. */
  offer(source: PolicySource, sinceNs: bigint | undefined): void {
    const next = this.sources.find((s) => s.engine !== undefined)?.engine ?? this.fallback;
    if (next === this.engine) return;
    this.engine = next;
    this.since = Date.now();
    const reloadMs = sinceNs === undefined ? undefined : Math.round(Number(process.hrtime.bigint() - sinceNs) / 1e4) / 100;
    this.changes.push({ at: new Date().toISOString(), source: source.kind, location: next?.source, revision: next?.revision, reloadMs });
    if (this.changes.length > 50) this.changes.shift();
    this.log.info({ source: source.kind, location: next?.source, revision: next?.revision, reloadMs }, 'policy in force');
  }

  guardsFor(snapshot: ConfigSnapshot): Guard[] {
    const spec = snapshot.gateway.policy;
    if (spec === undefined) {
      if (this.key !== undefined) this.stop();
      return [];
    }
    this.configure(snapshot).catch((err: unknown) => {
      // A reload whose policy config cannot load: the previous policy (fallback) stays in force.
      this.log.error({ err: (err as Error).message }, 'policy reconfiguration failed; the previous policy stays in force');
    });
    const r = this.resolved;
    if (r === undefined) return [];
    const cached = this.guard;
    if (cached !== undefined && cached.key === this.key && cached.snapshot === snapshot) return [cached.guard];
    const memo = new VisibleMemo(r.spec.visibleCache.maxEntries, r.spec.visibleCache.ttlMs);
    const guard = new PolicyGuard({ runtime: this, inputs: new InputBuilder(inputOptions(r.spec)), entrypoints: r.entrypoints, mask: r.spec.decisionLog.mask, visibleMemo: memo });
    this.guard = { key: this.key!, snapshot, guard };
    return [guard];
  }

  /** The last policies put in force, oldest first. */
  history(): readonly PolicyChange[] {
    return [...this.changes];
  }

  status(): PolicyStatus {
    return {
      active: this.engine ? { source: this.engine.source, revision: this.engine.revision, since: new Date(this.since).toISOString() } : undefined,
      sources: this.sources.map((s) => s.status()),
    };
  }

  /**
   * Loads every source again, changed or not (SIGHUP): a Rego directory is rebuilt, a bundle file re-read, a bundle
   * server polled. Resolves with the errors of the sources that refused (the policy in force stays).
   */
  async reload(): Promise<string[]> {
    const errors: string[] = [];
    await Promise.all(
      this.sources.map(async (s) => {
        const err = await s.reload();
        if (err !== undefined) errors.push(`${s.location}: ${err}`);
      }),
    );
    return errors;
  }

  /** The source of a kind, if configured (tests poll the service source directly). */
  source(kind: PolicySource['kind']): PolicySource | undefined {
    return this.sources.find((s) => s.kind === kind);
  }

  private stop(): void {
    for (const s of this.sources) s.close();
    this.sources = [];
    this.key = undefined;
    this.resolved = undefined;
    this.engine = undefined;
    this.fallback = undefined;
    this.guard = undefined;
  }

  async close(): Promise<void> {
    this.stop();
  }
}
