import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfigDir } from '../../src/config/load.ts';
import { configuredEntrypoints, gatewayEntrypoints } from '../../src/guards/policy/config.ts';
import { policyCommand } from '../../src/cli/policy.ts';
import { readBundle } from '../../src/guards/policy/bundle.ts';
import { requireOpa, writeTree } from '../helpers/policy.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function load(policy: string, routePolicy = ''): ReturnType<typeof loadConfigDir> {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-policy-config-'));
  dirs.push(dir);
  writeFileSync(
    join(dir, 'gateway.yaml'),
    `apiVersion: tollgate.dev/v1alpha1\nkind: Gateway\nmetadata: { name: t }\nspec:\n  policy:\n${policy}`,
  );
  writeFileSync(
    join(dir, 'mcp.yaml'),
    `apiVersion: tollgate.dev/v1alpha1\nkind: Backend\nmetadata: { name: b }\nspec: { protocol: mcp, url: "http://127.0.0.1:9/mcp" }\n---\napiVersion: tollgate.dev/v1alpha1\nkind: Route\nmetadata: { name: r }\nspec:\n${routePolicy}  rules: [{ matches: [{ path: { value: /mcp } }], backendRefs: [{ name: b }] }]\n`,
  );
  return loadConfigDir(dir);
}

function issues(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('policy config', () => {
  it('fills defaults and collects every entrypoint the config names', () => {
    const s = load('    bundle: b.tar.gz\n', '  policy: { entrypoints: { decision: strict/decision } }\n');
    const spec = s.gateway.policy!;
    expect(spec.memory).toEqual({ initialPages: 16, maxPages: 512 });
    expect(spec.input.shape).toBe('tollgate');
    expect(gatewayEntrypoints(spec)).toEqual({ decision: 'tollgate/decision', visible: 'tollgate/visible' });
    expect(configuredEntrypoints(spec, s.routeSpecs.values())).toEqual(['strict/decision', 'tollgate/decision', 'tollgate/visible']);
  });

  it('defaults the Envoy shape to OPA-Envoy entrypoints, without list filtering', () => {
    const spec = load('    bundle: b.tar.gz\n    input: { shape: envoy }\n').gateway.policy!;
    expect(gatewayEntrypoints(spec)).toEqual({ decision: 'envoy/authz/allow', visible: null });
  });

  it('reports problems with file and line', () => {
    expect(issues(() => load('    watch: true\n'))).toMatch(/gateway\.yaml:\d+:\d+: .*set at least one of dir, bundle or service/);
    expect(issues(() => load('    service: { url: "http://b/x", headers: [{ name: authorization, value: "Bearer x" }] }\n'))).toMatch(
      /carries a credential: use valueFrom/,
    );
    expect(issues(() => load('    bundle: b.tar.gz\n    entrypoints: { decision: "data.x" }\n'))).toMatch(/slash-separated rule path/);
    expect(issues(() => load('    bundle: b.tar.gz\n    memory: { initialPages: 64, maxPages: 8 }\n'))).toMatch(/maxPages must be >= initialPages/);
  });
});

describe('tollgate policy build / test', () => {
  it('builds a loadable bundle with the requested entrypoints and runs the Rego tests', async () => {
    requireOpa();
    const src = writeTree({ 'x/main.rego': 'package x\n\nallow if input.ok\n', 'x/main_test.rego': 'package x_test\n\nimport data.x\n\ntest_ok if x.allow with input as {"ok": true}\n' });
    dirs.push(src);
    const out = join(src, '..', `${src.split('/').pop()}-bundle.tar.gz`);
    dirs.push(out);
    expect(await policyCommand(['build', '--dir', src, '--output', out, '-e', 'x/allow'])).toBe(0);
    const b = await readBundle(readFileSync(out), { source: out });
    expect(b.manifest.wasm?.map((w) => w.entrypoint)).toEqual(['x/allow']);
    expect(await policyCommand(['test', '--dir', src])).toBe(0);
    writeFileSync(join(src, 'x/main_test.rego'), 'package x_test\n\nimport data.x\n\ntest_fails if x.allow with input as {"ok": false}\n');
    expect(await policyCommand(['test', '--dir', src])).toBe(1);
    expect(await policyCommand(['build', '--dir', src, '--output', out, '-e', 'x/missing'])).toBe(1);
  });
});
