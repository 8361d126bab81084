/**
 * Pipeline stages the bench switches on in the gateway, declaratively: a stage is the config it adds (Gateway spec
 * fragment, extra config documents, environment for secret references) and the headers a client must send (a
 * minted SVID...). The bench runs the gateway with every available stage on, and with each stage alone.
 *
 * To add a stage when its code lands on main: append an entry to STAGES. `requires` names a file of that code so a
 * branch without it reports the stage as pending instead of failing. Example (identity, once `tollgate svid mint`
 * and the identity config exist; adapt the names to what landed):
 *
 *   {
 *     name: 'identity',
 *     what: 'SPIFFE JWT-SVID authentication (ES256, verified-token cache)',
 *     requires: 'src/guards/identity/guard.ts',
 *     gateway: { identity: { trustDomain: 'bench.test', ... } },
 *     async setup(ctx) { ...write a key with `tollgate` CLI into ctx.work... },
 *     async headers(ctx) { return { authorization: `Bearer ${await mint(ctx)}` }; },
 *   }
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

/** What a stage may look at when it prepares itself for one gateway process. */
export interface StageContext {
  /** Repository root (for the CLI, policies...). */
  readonly root: string;
  /** A private directory for this gateway process (keys, bundles, audit segments). */
  readonly work: string;
  /** The gateway's config directory (the bench writes gateway.yaml, backends and the route there). */
  readonly configDir: string;
  /** Names of the scenario's backends and the route serving them. */
  readonly backends: readonly string[];
  readonly route: string;
}

/** One config document (apiVersion/kind/metadata/spec), written as YAML (JSON flow style). */
export type ConfigDocument = Record<string, unknown>;

export interface Stage {
  readonly name: string;
  /** One line for the results table. */
  readonly what: string;
  /** A file (relative to the repository root) whose presence means the stage's code is on this branch. */
  readonly requires: string;
  /** Deep-merged into the Gateway object's spec. */
  readonly gateway?: Record<string, unknown>;
  /** Runs once per gateway process before the config is written (mint keys, build a policy bundle...). */
  setup?(ctx: StageContext): Promise<void> | void;
  /** Extra config documents, by file name. */
  files?(ctx: StageContext): Record<string, ConfigDocument[]>;
  /** Environment of the gateway process (for `valueFrom: {env}` secret references). */
  env?(ctx: StageContext): Record<string, string>;
  /** Headers every bench request through the gateway carries (from initialize on). */
  headers?(ctx: StageContext): Promise<Record<string, string>> | Record<string, string>;
}

/** Stages whose code is on main. Order is the pipeline's: identity -> policy -> limits -> telemetry/audit. */
export const STAGES: readonly Stage[] = [];

/** Stages announced but not on this branch yet: listed in results as pending so a missing one is visible. */
export const PENDING_STAGES: ReadonlyArray<{ name: string; what: string }> = [
  { name: 'identity', what: 'SPIFFE JWT-SVID authentication (branch identity)' },
  { name: 'policy', what: 'Rego policy compiled to WASM, argument rule and list filtering (branch policy)' },
  { name: 'limits', what: 'Redis rate/cost limits (not started)' },
  { name: 'audit', what: 'OpenTelemetry spans/metrics and the tamper-evident audit log (branch audit)' },
].filter((p) => !STAGES.some((s) => s.name === p.name));

export function availableStages(root: string): Stage[] {
  return STAGES.filter((s) => existsSync(join(root, s.requires)));
}

/** Gateway variants to measure: everything on, then each stage alone (when there is more than one). */
export interface Variant {
  readonly label: string;
  readonly stages: readonly Stage[];
  /** Overrides the run's gateway log level (e.g. to measure the access log's share). */
  readonly logLevel?: string;
  /** Runs the gateway from another checkout (a baseline commit, measured interleaved in the same run). */
  readonly root?: string;
  /** Extra Node options for the gateway process (e.g. V8 heap flags). */
  readonly nodeOptions?: readonly string[];
}

export function variants(stages: readonly Stage[], opts: { each: boolean }): Variant[] {
  if (stages.length === 0) return [{ label: 'gateway', stages: [] }];
  const out: Variant[] = [{ label: 'gateway', stages }];
  if (opts.each && stages.length > 1) for (const s of stages) out.push({ label: `gateway[${s.name}]`, stages: [s] });
  return out;
}
