/**
 * The Helm chart renders with the real `helm`, passes `helm lint`, and the Tollgate config it ships is valid
 * Tollgate config (loaded by the same loader the gateway uses).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { loadConfigDir } from '../../src/config/load.ts';

const chart = join(process.cwd(), 'helm/tollgate');

function helm(args: string[]): string {
  return execFileSync('helm', args, { encoding: 'utf8' });
}

type K8sObject = { kind: string; metadata: { name: string }; spec?: Record<string, unknown>; data?: Record<string, string> };

function render(set: string[] = []): K8sObject[] {
  const out = helm(['template', 'gw', chart, ...set.flatMap((s) => ['--set', s])]);
  return parseAllDocuments(out)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

describe('helm chart', () => {
  it('lints clean', () => {
    expect(helm(['lint', chart])).toContain('0 chart(s) failed');
  });

  it('renders a hardened Deployment with probes and a drain-friendly grace period', () => {
    const objects = render();
    const deploy = objects.find((o) => o.kind === 'Deployment')!;
    const pod = (deploy.spec!.template as { spec: Record<string, unknown> }).spec;
    const container = (pod.containers as Array<Record<string, unknown>>)[0]!;
    expect((container.livenessProbe as { httpGet: { path: string } }).httpGet.path).toBe('/healthz');
    expect((container.readinessProbe as { httpGet: { path: string } }).httpGet.path).toBe('/readyz');
    expect(container.args).toEqual(['serve', '--config', '/etc/tollgate/routes']);
    expect((container.securityContext as Record<string, unknown>).readOnlyRootFilesystem).toBe(true);
    expect((pod.securityContext as Record<string, unknown>).runAsNonRoot).toBe(true);
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(20);
    expect(objects.map((o) => o.kind).sort()).toEqual(['ConfigMap', 'Deployment', 'PodDisruptionBudget', 'Service', 'ServiceAccount']);
  });

  it('ships config that the Tollgate loader accepts', () => {
    const cm = render().find((o) => o.kind === 'ConfigMap')!;
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-helm-'));
    for (const [file, text] of Object.entries(cm.data!)) writeFileSync(join(dir, file), text);
    const snapshot = loadConfigDir(dir);
    expect(snapshot.gateway.listener.host).toBe('0.0.0.0');
    expect(snapshot.dataDir).toBe('/var/lib/tollgate');
  });

  it('mounts an existing Secret only when one is named', () => {
    const withSecret = render(['existingSecret=tollgate-keys']).find((o) => o.kind === 'Deployment')!;
    expect(JSON.stringify(withSecret)).toContain('"secretName":"tollgate-keys"');
    const without = render().find((o) => o.kind === 'Deployment')!;
    expect(JSON.stringify(without)).not.toContain('secretName');
  });
});
