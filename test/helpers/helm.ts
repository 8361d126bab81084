/**
 * The real `helm` (v4, built from the Go module proxy by scripts/install-tools.sh into ~/.cache/tollgate/bin) on
 * the chart in helm/tollgate: lint, template, and the rendered objects parsed back.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { K8sObject } from './k8s-validate.ts';

export const CHART = join(process.cwd(), 'helm/tollgate');
/** Every optional feature on (also the chart-testing convention ci/*-values.yaml). */
export const ALL_FEATURES = join(CHART, 'ci/all-features-values.yaml');

export interface HelmResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function helm(args: string[]): HelmResult {
  const r = spawnSync('helm', args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw new Error(`cannot run helm (scripts/install-tools.sh builds it): ${r.error.message}`);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export interface RenderOptions {
  /** Values files (-f), in order. */
  readonly files?: readonly string[];
  /** --set-json key=json pairs (typed values, as a user's values file would give them). */
  readonly json?: Readonly<Record<string, unknown>>;
  /** --set-string key=value pairs. */
  readonly strings?: Readonly<Record<string, string>>;
  readonly release?: string;
  readonly namespace?: string;
}

function renderArgs(opts: RenderOptions): string[] {
  const args = ['template', opts.release ?? 'gw', CHART, '--namespace', opts.namespace ?? 'tollgate'];
  for (const f of opts.files ?? []) args.push('-f', f);
  for (const [k, v] of Object.entries(opts.json ?? {})) args.push('--set-json', `${k}=${JSON.stringify(v)}`);
  for (const [k, v] of Object.entries(opts.strings ?? {})) args.push('--set-string', `${k}=${v}`);
  return args;
}

/** `helm template`; throws with helm's message when the chart refuses to render. */
export function render(opts: RenderOptions = {}): K8sObject[] {
  const r = helm(renderArgs(opts));
  if (r.status !== 0) throw new Error(`helm template failed: ${r.stderr}`);
  return parseAllDocuments(r.stdout)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

/** `helm template` expected to fail: returns helm's error text. */
export function renderError(opts: RenderOptions): string {
  const r = helm(renderArgs(opts));
  if (r.status === 0) throw new Error('helm template rendered, but a refusal was expected');
  return r.stderr;
}

export function find(objects: readonly K8sObject[], kind: string, name?: string): K8sObject {
  const o = objects.find((x) => x.kind === kind && (name === undefined || x.metadata.name === name));
  if (!o) throw new Error(`no ${kind}${name ? ` ${name}` : ''} in ${objects.map((x) => `${x.kind}/${x.metadata.name}`).join(', ')}`);
  return o;
}

/** The pod spec of a Deployment (or a CronJob's job template). */
export function podSpec(o: K8sObject): PodSpec {
  const spec = o.spec as { template?: { spec: PodSpec }; jobTemplate?: { spec: { template: { spec: PodSpec } } } };
  const pod = spec.template?.spec ?? spec.jobTemplate?.spec.template.spec;
  if (!pod) throw new Error(`${o.kind} has no pod template`);
  return pod;
}

export interface Container {
  name: string;
  image: string;
  args?: string[];
  command?: string[];
  env?: Array<{ name: string; value?: string; valueFrom?: Record<string, unknown> }>;
  ports?: Array<{ name: string; containerPort: number }>;
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean; subPathExpr?: string }>;
  securityContext?: Record<string, unknown>;
  [k: string]: unknown;
}

export interface PodSpec {
  containers: Container[];
  volumes?: Array<{ name: string; [k: string]: unknown }>;
  securityContext?: Record<string, unknown>;
  [k: string]: unknown;
}

/**
 * Writes the files of the rendered config ConfigMap into `dir`, with the pod's absolute paths (/etc/tollgate/...,
 * /var/lib/tollgate) moved under `root`, so the gateway's own loader can read them on this machine.
 */
export function writeConfigUnder(objects: readonly K8sObject[], root: string): string {
  const cm = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name.endsWith('-config'));
  if (!cm) throw new Error('no config ConfigMap');
  const dir = join(root, 'etc/tollgate/routes');
  mkdirSync(dir, { recursive: true });
  for (const [file, text] of Object.entries(cm.data as Record<string, string>)) {
    writeFileSync(join(dir, file), text.replaceAll('/etc/tollgate/', `${root}/etc/tollgate/`).replaceAll('/var/lib/tollgate', `${root}/var/lib/tollgate`));
  }
  return dir;
}
