/**
 * The Helm chart, rendered by the real helm (v4 from the Go module proxy): lint and template with the default values
 * and with every optional feature on; every rendered object valid against the pinned Kubernetes API schemas (no
 * unknown field either); values.schema.json refusing wrong values clearly; the render-time refusals (Redis for
 * multi-replica limits, identity, grace period...); what an HA deployment needs (spread, PDB, probes, admin port
 * only in the cluster, drain); and the Tollgate config it ships accepted by the gateway's own loader under the
 * production profile.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfigDir } from '../../src/config/load.ts';
import { profileProblems } from '../../src/config/profile.ts';
import { ALL_FEATURES, CHART, find, helm, podSpec, render, renderError, writeConfigUnder, type Container } from '../helpers/helm.ts';
import { schemaProblems, typeProblems, type K8sObject } from '../helpers/k8s-validate.ts';

const REDIS = { 'redis.url': 'redis://redis.tollgate.svc:6379/0' };
const temps: string[] = [];
afterAll(() => temps.forEach((d) => rmSync(d, { recursive: true, force: true })));

function container(objects: readonly K8sObject[]): Container {
  return podSpec(find(objects, 'Deployment')).containers[0]!;
}
function env(c: Container, name: string): string | undefined {
  return c.env?.find((e) => e.name === name)?.value;
}
function restartChecksum(objects: readonly K8sObject[]): string {
  const t = (find(objects, 'Deployment').spec as { template: { metadata: { annotations: Record<string, string> } } }).template;
  return t.metadata.annotations['checksum/restart-settings']!;
}
function podTemplate(objects: readonly K8sObject[]): string {
  return JSON.stringify((find(objects, 'Deployment').spec as { template: unknown }).template);
}

describe('helm chart: lint and render', () => {
  it('lints clean (strict) with default values and with every optional feature on', () => {
    const plain = helm(['lint', '--strict', CHART]);
    expect(plain.stdout + plain.stderr).toContain('0 chart(s) failed');
    const all = helm(['lint', '--strict', CHART, '-f', ALL_FEATURES]);
    expect(all.stdout + all.stderr).toContain('0 chart(s) failed');
  });

  it('default values: every object valid against the pinned Kubernetes schemas, no unknown field', async () => {
    const objects = render();
    expect(objects.map((o) => o.kind).sort()).toEqual(['ConfigMap', 'Deployment', 'NetworkPolicy', 'PodDisruptionBudget', 'Secret', 'Service', 'Service', 'ServiceAccount']);
    for (const o of objects) expect(await schemaProblems(o)).toEqual([]);
    expect(typeProblems(objects)).toEqual([]);
  });

  it('every optional feature on: every object valid, no unknown field', async () => {
    const objects = render({ files: [ALL_FEATURES] });
    const kinds = new Set(objects.map((o) => o.kind));
    for (const k of ['HorizontalPodAutoscaler', 'Ingress', 'HTTPRoute', 'NetworkPolicy', 'ServiceMonitor', 'PrometheusRule', 'CronJob', 'PersistentVolumeClaim', 'PodDisruptionBudget']) {
      expect(kinds, k).toContain(k);
    }
    expect(objects.filter((o) => o.kind === 'ConfigMap').map((o) => o.metadata.name).sort()).toEqual(['gw-tollgate-audit-public-key', 'gw-tollgate-config', 'gw-tollgate-dashboard', 'gw-tollgate-policies']);
    for (const o of objects) expect(await schemaProblems(o), `${o.kind}/${o.metadata.name}`).toEqual([]);
    expect(typeProblems(objects)).toEqual([]);
  });

  it('the validation itself catches a wrong type and an unknown field (it can fail)', async () => {
    const deploy = structuredClone(find(render(), 'Deployment')) as K8sObject & { spec: { replicas: unknown; template: { spec: { containers: Array<Record<string, unknown>> } } } };
    deploy.spec.replicas = 'two';
    deploy.spec.template.spec.containers[0]!.readinessProbes = {};
    expect((await schemaProblems(deploy)).join('\n')).toMatch(/replicas.*integer/);
    expect(typeProblems([deploy]).join('\n')).toMatch(/readinessProbes/);
  });
});

describe('helm chart: values.schema.json', () => {
  it.each([
    [{ replicaCount: 'two' }, /replicaCount.*got string, want integer/],
    [{ service: { port: 'http' } }, /service\/port.*got string, want integer/],
    [{ audit: { onFull: 'drop' } }, /audit\/onFull.*(value must be one of|enum)/],
    [{ redis: { url: 'redis://user:secret@redis:6379' } }, /redis\/url.*(does not match pattern|pattern)/],
    [{ redis: { hostname: 'redis' } }, /redis.*additional properties 'hostname' not allowed/],
    [{ spiffe: { workloadApi: { mode: 'socket' } } }, /spiffe\/workloadApi\/mode/],
    [{ routes: { 'gateway.yaml': 'x' } }, /routes\/gateway\.yaml/],
    [{ routes: { 'mcp.txt': 'x' } }, /routes.*additional properties 'mcp.txt' not allowed/],
    [{ metrics: { prometheusRule: { overheadSloSeconds: 0.03 } } }, /overheadSloSeconds/],
  ])('refuses %j with a message naming the value', (values, message) => {
    const [key, value] = Object.entries(values)[0]!;
    const err = renderError({ json: { [key]: value } });
    expect(err).toMatch(message);
  });
});

describe('helm chart: render-time refusals', () => {
  it.each([
    [{ 'limits.enabled': true }, /redis is required when more than one replica runs with limits\.enabled on \(replicaCount=2\)/],
    [{ 'mcp.sessionRevocation': true }, /redis is required .* mcp\.sessionRevocation/],
    [{ 'a2a.taskBinding': true, 'limits.enabled': true }, /limits\.enabled, a2a\.taskBinding on/],
    [{ replicaCount: 1, 'autoscaling.enabled': true, 'autoscaling.maxReplicas': 4, 'limits.enabled': true }, /redis is required .*autoscaling\.maxReplicas=4/],
  ])('more than one replica with %j and no Redis: refused with what to set', (json, message) => {
    const err = renderError({ json });
    expect(err).toMatch(message);
    expect(err).toMatch(/Set redis\.url, redis\.sentinel or redis\.cluster/);
  });

  it('the same settings render with one replica, or with Redis (url, Sentinel, Cluster)', () => {
    expect(() => render({ json: { replicaCount: 1, 'limits.enabled': true } })).not.toThrow();
    const withUrl = render({ json: { 'limits.enabled': true, 'mcp.sessionRevocation': true, ...REDIS } });
    expect((find(withUrl, 'ConfigMap', 'gw-tollgate-config').data as Record<string, string>)['gateway.yaml']).toMatch(/redis:\n[^]*url: redis:\/\/redis\.tollgate\.svc:6379\/0/);
    const sentinel = render({ json: { 'limits.enabled': true, 'redis.sentinel': { name: 'm', nodes: [{ host: 's0', port: 26379 }], password: { existingSecret: 'r', key: 'p' } } } });
    const c = container(sentinel);
    expect(c.env?.find((e) => e.name === 'TOLLGATE_REDIS_SENTINEL_PASSWORD')?.valueFrom).toEqual({ secretKeyRef: { name: 'r', key: 'p' } });
    expect(() => render({ json: { 'limits.enabled': true, 'redis.cluster.nodes': [{ host: 'c0', port: 6379 }] } })).not.toThrow();
  });

  it.each([
    [{ 'redis.url': 'redis://a:6379', 'redis.cluster.nodes': [{ host: 'c', port: 1 }] }, /only one of redis\.url, redis\.sentinel or redis\.cluster/],
    [{ 'identity.trustDomains': [] }, /no identity configured/],
    [{ 'spiffe.workloadApi.mode': 'none' }, /example\.org takes its bundle from the Workload API but spiffe\.workloadApi\.mode is none/],
    [{ terminationGracePeriodSeconds: 20 }, /terminationGracePeriodSeconds \(20\) must exceed preStopSleepSeconds \(5\) \+ gateway\.drainMs \(20s\)/],
    [{ 'audit.verify.enabled': true }, /audit\.verify needs audit\.persistence\.enabled/],
    [{ 'gateway.extraSpec': { identity: { dev: { enabled: true } } } }, /gateway\.extraSpec\.identity is not allowed/],
    [{ 'httpRoute.enabled': true }, /httpRoute\.parentRefs/],
    [{ 'admin.console.enabled': true }, /admin\.console\.enabled needs admin\.principals or admin\.groups/],
  ])('refuses %j', (json, message) => {
    expect(renderError({ json })).toMatch(message);
  });
});

describe('helm chart: a highly available, hardened Deployment', () => {
  const objects = render();
  const deploy = find(objects, 'Deployment');
  const pod = podSpec(deploy);
  const c = pod.containers[0]!;

  it('two replicas by default, spread over zones and nodes, a PDB, surge-first rollouts', () => {
    const spec = deploy.spec as { replicas: number; strategy: { rollingUpdate: Record<string, number> } };
    expect(spec.replicas).toBeGreaterThanOrEqual(2);
    expect(spec.strategy.rollingUpdate).toEqual({ maxSurge: 1, maxUnavailable: 0 });
    const spread = pod.topologySpreadConstraints as Array<{ topologyKey: string }>;
    expect(spread.map((s) => s.topologyKey)).toEqual(['topology.kubernetes.io/zone', 'kubernetes.io/hostname']);
    const anti = (pod.affinity as { podAntiAffinity: Record<string, Array<{ podAffinityTerm: { topologyKey: string } }>> }).podAntiAffinity;
    expect(anti.preferredDuringSchedulingIgnoredDuringExecution![0]!.podAffinityTerm.topologyKey).toBe('kubernetes.io/hostname');
    expect(find(objects, 'PodDisruptionBudget').spec).toMatchObject({ maxUnavailable: 1 });
    const hard = podSpec(find(render({ json: { podAntiAffinity: 'hard' } }), 'Deployment'));
    expect((hard.affinity as { podAntiAffinity: Record<string, unknown> }).podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution).toBeDefined();
  });

  it('with the HPA on, the Deployment leaves replicas to it; CPU and a custom per-pod metric', () => {
    const all = render({ files: [ALL_FEATURES] });
    expect((find(all, 'Deployment').spec as Record<string, unknown>).replicas).toBeUndefined();
    const metrics = (find(all, 'HorizontalPodAutoscaler').spec as { metrics: Array<{ type: string }> }).metrics;
    expect(metrics.map((m) => m.type)).toEqual(['Resource', 'Pods']);
  });

  it('non-root, read-only root filesystem, no privilege escalation, all capabilities dropped, seccomp', () => {
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: 'RuntimeDefault' } });
    expect(c.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, privileged: false, capabilities: { drop: ['ALL'] } });
    const mounts = Object.fromEntries(c.volumeMounts!.map((m) => [m.mountPath, m]));
    expect(mounts['/var/lib/tollgate']).toBeDefined();
    expect(mounts['/tmp']).toBeDefined();
    expect(mounts['/etc/tollgate/routes']!.readOnly).toBe(true);
    expect(env(c, 'TOLLGATE_PROFILE')).toBe('production');
    expect(c.resources).toMatchObject({ requests: { cpu: '250m', memory: '256Mi' }, limits: { memory: '768Mi' } });
  });

  it('probes: liveness and startup on the public /healthz, readiness on the admin /readyz', () => {
    expect(c.livenessProbe).toMatchObject({ httpGet: { path: '/healthz', port: 'http' } });
    expect(c.startupProbe).toMatchObject({ httpGet: { path: '/healthz', port: 'http' } });
    expect(c.readinessProbe).toMatchObject({ httpGet: { path: '/readyz', port: 'admin' } });
    expect(c.ports).toEqual([expect.objectContaining({ name: 'http', containerPort: 8080 }), expect.objectContaining({ name: 'admin', containerPort: 9090 })]);
  });

  it('preStop, then a termination grace longer than preStop plus the drain', () => {
    const preStop = (c.lifecycle as { preStop: { sleep: { seconds: number } } }).preStop.sleep.seconds;
    const gateway = (find(objects, 'ConfigMap', 'gw-tollgate-config').data as Record<string, string>)['gateway.yaml']!;
    const drainMs = Number(/drainMs: (\d+)/.exec(gateway)![1]);
    expect(pod.terminationGracePeriodSeconds as number).toBeGreaterThan(preStop + drainMs / 1000);
  });

  it('the admin port is bound on the pod IP but reachable only inside the cluster and only from adminFrom', () => {
    expect(env(c, 'TOLLGATE_ADMIN_HOST')).toBe('0.0.0.0');
    expect(env(c, 'TOLLGATE_ADMIN_PORT')).toBe('9090');
    const admin = find(objects, 'Service', 'gw-tollgate-admin').spec as { type: string; ports: Array<{ targetPort: string }> };
    expect(admin.type).toBe('ClusterIP');
    expect(admin.ports.map((p) => p.targetPort)).toEqual(['admin']);
    // Whatever the public Service type, it never carries the admin port; Ingress and HTTPRoute point at it only.
    const all = render({ files: [ALL_FEATURES] });
    const pub = find(all, 'Service', 'gw-tollgate').spec as { type: string; ports: Array<{ targetPort: string }> };
    expect(pub.type).toBe('LoadBalancer');
    expect(pub.ports.map((p) => p.targetPort)).toEqual(['http']);
    expect(find(all, 'Service', 'gw-tollgate-admin').spec).toMatchObject({ type: 'ClusterIP' });
    expect(JSON.stringify(find(all, 'Ingress').spec)).toContain('"service":{"name":"gw-tollgate","port":{"name":"http"}}');
    expect((find(all, 'HTTPRoute').spec as { rules: Array<{ backendRefs: unknown[] }> }).rules[0]!.backendRefs).toEqual([{ name: 'gw-tollgate', port: 8080 }]);
    const np = find(all, 'NetworkPolicy').spec as { ingress: Array<{ ports: Array<{ port: string }>; from?: unknown[] }>; policyTypes: string[] };
    const adminRule = np.ingress.find((r) => r.ports.some((p) => p.port === 'admin'))!;
    expect(adminRule.from).toEqual([{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } }, podSelector: { matchLabels: { 'app.kubernetes.io/name': 'prometheus' } } }]);
    expect(np.policyTypes).toEqual(['Ingress', 'Egress']);
  });

  it('SPIFFE Workload API: the CSI driver volume by default, a hostPath socket directory on request', () => {
    expect(pod.volumes!.find((v) => v.name === 'spiffe-workload-api')).toEqual({ name: 'spiffe-workload-api', csi: { driver: 'csi.spiffe.io', readOnly: true } });
    expect(env(c, 'SPIFFE_ENDPOINT_SOCKET')).toBe('unix:///spiffe-workload-api/spire-agent.sock');
    const host = render({ files: [ALL_FEATURES] });
    expect(podSpec(find(host, 'Deployment')).volumes!.find((v) => v.name === 'spiffe-workload-api')).toEqual({ name: 'spiffe-workload-api', hostPath: { path: '/run/spire/agent-sockets', type: 'Directory' } });
    expect(env(container(host), 'SPIFFE_ENDPOINT_SOCKET')).toBe('unix:///spiffe-workload-api/api.sock');
  });

  it('session keys from a Secret (generated once and kept, or yours), mounted read-only and referenced by file', () => {
    const secret = find(objects, 'Secret', 'gw-tollgate-session-keys');
    expect(secret.metadata.annotations).toEqual({ 'helm.sh/resource-policy': 'keep' });
    expect(Buffer.from((secret.data as Record<string, string>).k1!, 'base64').length).toBeGreaterThanOrEqual(32);
    const all = render({ files: [ALL_FEATURES] });
    expect(all.some((o) => o.kind === 'Secret')).toBe(false); // existingSecret: the chart creates none
    const gateway = (find(all, 'ConfigMap', 'gw-tollgate-config').data as Record<string, string>)['gateway.yaml']!;
    expect(gateway).toMatch(/sessionKeys:\n\s+- id: k2\n\s+valueFrom:\n\s+file: \/etc\/tollgate\/session-keys\/k2\n\s+- id: k1/);
  });

  it('OTel exporter settings as the standard OTEL_* variables, credentials from a Secret', () => {
    const c2 = container(render({ files: [ALL_FEATURES] }));
    expect(env(c2, 'OTEL_EXPORTER_OTLP_ENDPOINT')).toBe('http://otel-collector.observability:4318');
    expect(env(c2, 'OTEL_EXPORTER_OTLP_PROTOCOL')).toBe('http/protobuf');
    expect(env(c2, 'OTEL_TRACES_SAMPLER_ARG')).toBe('0.25');
    expect(c2.env!.find((e) => e.name === 'OTEL_EXPORTER_OTLP_HEADERS')!.valueFrom).toEqual({ secretKeyRef: { name: 'otel-auth', key: 'headers' } });
    expect(env(c2, 'OTEL_RESOURCE_ATTRIBUTES')).toBe('k8s.pod.name=$(POD_NAME),k8s.namespace.name=$(POD_NAMESPACE),k8s.deployment.name=gw-tollgate,deployment.environment=prod');
  });

  it('audit: one directory per pod on the shared claim, and a CronJob running audit verify --strict on all of them', () => {
    const all = render({ files: [ALL_FEATURES] });
    const mount = container(all).volumeMounts!.find((m) => m.name === 'audit')!;
    expect(mount).toMatchObject({ mountPath: '/var/lib/tollgate/audit', subPathExpr: '$(POD_NAME)' });
    const job = find(all, 'CronJob');
    const jobPod = podSpec(job);
    const script = jobPod.containers[0]!.args!.join('\n');
    expect(script).toContain('node /app/bin/tollgate.mjs audit verify "$dir" --allow-open --strict --key /etc/tollgate/audit-public/audit-signing-key.pub.pem');
    expect(jobPod.containers[0]!.volumeMounts!.find((m) => m.mountPath === '/audit')!.readOnly).toBe(true);
    expect(jobPod.containers[0]!.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
    expect(find(all, 'PersistentVolumeClaim').spec).toMatchObject({ accessModes: ['ReadWriteMany'] });
  });
});

describe('helm chart: live reload and restarts', () => {
  it('routes, policies and identity change the ConfigMap only: the pod template (hence no rollout) stays the same', () => {
    const base = render({ json: REDIS });
    const changed = render({
      json: {
        ...REDIS,
        routes: { 'extra.yaml': 'apiVersion: tollgate.dev/v1alpha1\nkind: Backend\nmetadata: { name: x }\nspec: { protocol: mcp, url: http://x:1/mcp }\n' },
        'policy.rego': { 'main.rego': 'package tollgate\n' },
        'identity.trustDomains': [{ name: 'example.org', bundle: { workload_api: {} } }, { name: 'other.example', bundle: { https_web: { url: 'https://other.example/b' } } }],
        'gateway.drainMs': 25000,
      },
    });
    expect(find(changed, 'ConfigMap', 'gw-tollgate-config').data).not.toEqual(find(base, 'ConfigMap', 'gw-tollgate-config').data);
    // The policies ConfigMap is a new volume: the template changes only by that mount, not by the checksum.
    expect(restartChecksum(changed)).toBe(restartChecksum(base));
    const onlyRoutes = render({ json: { ...REDIS, routes: { 'a.yaml': '# nothing\n' }, 'identity.audiences': ['https://gw.example.com'] } });
    expect(podTemplate(onlyRoutes)).toBe(podTemplate(base));
  });

  it.each([
    [{ 'redis.url': 'redis://other:6379/0' }],
    [{ 'gateway.logLevel': 'debug' }],
    [{ 'otel.endpoint': 'http://collector:4318' }],
    [{ 'audit.sinks': { stdout: true, otlp: false } }],
  ])('a restart-needing setting %j changes the restart checksum', (json) => {
    expect(restartChecksum(render({ json: { ...REDIS, ...json } }))).not.toBe(restartChecksum(render({ json: REDIS })));
  });
});

describe('helm chart: the Tollgate config it ships', () => {
  function loads(objects: K8sObject[]): ReturnType<typeof loadConfigDir> {
    const root = mkdtempSync(join(tmpdir(), 'tollgate-chart-'));
    temps.push(root);
    // The files the pod would have mounted from Secrets.
    for (const id of ['k1', 'k2']) {
      mkdirSync(join(root, 'etc/tollgate/session-keys'), { recursive: true });
      writeFileSync(join(root, 'etc/tollgate/session-keys', id), `session-key-${id}-0123456789abcdef0123456789`);
    }
    mkdirSync(join(root, 'etc/tollgate/audit-key'), { recursive: true });
    writeFileSync(join(root, 'etc/tollgate/audit-key/signing-key.pem'), generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }));
    mkdirSync(join(root, 'etc/tollgate/secrets/weather-token'), { recursive: true });
    writeFileSync(join(root, 'etc/tollgate/secrets/weather-token/token'), 'Bearer upstream-credential');
    return loadConfigDir(writeConfigUnder(objects, root), { ...process.env, TOLLGATE_REDIS_PASSWORD: 'pw', TOLLGATE_REDIS_SENTINEL_PASSWORD: 'spw' });
  }

  it('default values: accepted by the loader and by the production profile (an issuer, no dev issuer)', () => {
    const s = loads(render());
    expect(s.gateway.listener.host).toBe('0.0.0.0');
    expect(s.dataDir).toMatch(/\/var\/lib\/tollgate$/);
    expect(s.gateway.identity.dev.enabled).toBe(false);
    expect(s.gateway.identity.trustDomains.map((t) => t.name)).toEqual(['example.org']);
    expect(s.mcpSessionKeys.map((k) => k.id)).toEqual(['k1']);
    expect(profileProblems(s, 'production')).toEqual([]);
  });

  it('every optional feature on: accepted too (Sentinel, OIDC, Kubernetes issuers, rego policy, routes)', () => {
    const s = loads(render({ files: [ALL_FEATURES] }));
    expect(s.gateway.redis?.sentinel?.name).toBe('tollgate');
    expect(s.gateway.identity.oidc.map((o) => o.name)).toEqual(['corp']);
    expect(s.gateway.policy?.dir).toMatch(/\/etc\/tollgate\/policies$/);
    expect(s.backends.get('weather')?.headers.authorization).toBe('Bearer upstream-credential');
    expect(s.gateway.audit.sinks).toEqual({ stdout: true, otlp: true });
    expect(s.gateway.admin.console).toMatchObject({ enabled: true, traceUrl: 'https://jaeger.example.com/trace/{traceId}' });
    expect(s.gateway.admin.principals).toEqual(['spiffe://example.org/ops/*']);
    expect(s.gateway.admin.groups).toEqual(['tollgate-admins']);
    expect(profileProblems(s, 'production')).toEqual([]);
  });

  it('the console is off by default, and its trace link must be an http(s) URL with {traceId}', () => {
    expect(loads(render()).gateway.admin.console.enabled).toBe(false);
    expect(renderError({ json: { 'admin.principals': ['spiffe://example.org/ops'], 'admin.console': { enabled: true, traceUrl: 'javascript:alert(1)' } } })).toMatch(/traceUrl/);
  });
});
