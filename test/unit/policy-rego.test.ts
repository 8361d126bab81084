import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { readBundle } from '../../src/guards/policy/bundle.ts';
import { sourceRevision, testPolicies } from '../../src/guards/policy/opa.ts';
import { requireOpa } from '../helpers/policy.ts';

describe('policies/ (Rego sources and the committed bundle)', () => {
  it('opa test policies/ passes (with the WASM capabilities: no test may lean on a builtin the gateway lacks)', async () => {
    const r = await testPolicies(requireOpa(), 'policies', ['-v']);
    expect(r.code, r.diagnostics).toBe(0);
    const pass = /^PASS: (\d+)\/(\d+)$/m.exec(r.stdout);
    expect(pass, r.stdout).not.toBeNull();
    expect(pass![1]).toBe(pass![2]);
    expect(Number(pass![1])).toBeGreaterThanOrEqual(20);
  });

  it('the committed bundle is built from the current sources (run `tollgate policy build` after editing policies/)', async () => {
    const bundle = await readBundle(readFileSync('bundles/tollgate.tar.gz'), { source: 'bundles/tollgate.tar.gz' });
    expect(bundle.revision).toBe(sourceRevision('policies'));
    expect(bundle.manifest.wasm?.map((w) => w.entrypoint).sort()).toEqual(['tollgate/decision', 'tollgate/visible']);
  });
});
