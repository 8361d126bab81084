/**
 * The import rules of src/ (.dependency-cruiser.cjs, run by `npm test`): src/ passes them with no baseline of
 * known violations, and a deliberately
 * wrong tree (test/fixtures/dependency-rules) fails them, each wrong import caught by its rule and nothing else.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = process.cwd();
const DEPCRUISE = join(ROOT, 'node_modules/.bin/depcruise');
const CONFIG = join(ROOT, '.dependency-cruiser.cjs');

interface Violation {
  readonly from: string;
  readonly to: string;
  readonly rule: { readonly name: string; readonly severity: string };
}

/** Runs the rules as scripts/test.sh does (its exit code), and again for the violations as JSON. */
function cruise(cwd: string, extra: string[] = []): { status: number | null; violations: Violation[] } {
  const plain = spawnSync(DEPCRUISE, ['src', '--config', CONFIG, ...extra], { cwd, encoding: 'utf8' });
  if (plain.error) throw plain.error;
  const json = spawnSync(DEPCRUISE, ['src', '--config', CONFIG, '--output-type', 'json', ...extra], { cwd, encoding: 'utf8' });
  const out = JSON.parse(json.stdout) as { summary: { violations: Violation[] } };
  return { status: plain.status, violations: out.summary.violations.filter((v) => v.rule.severity === 'error') };
}

describe('dependency rules', () => {
  it('fail on a tree with a wrong import of each kind, naming each one', () => {
    const { status, violations } = cruise(join(ROOT, 'test/fixtures/dependency-rules'));
    expect(status).not.toBe(0);
    const found = violations.map((v) => `${v.rule.name}: ${v.from} -> ${v.to}`).sort();
    expect(found).toEqual([
      'gateway-knows-no-protocol: src/gateway/gateway.ts -> src/protocols/mcp/adapter.ts',
      'no-circular: src/core/a.ts -> src/core/b.ts',
      'protocols-are-independent: src/protocols/a2a/adapter.ts -> src/protocols/mcp/adapter.ts',
      'upstream-imports-no-guard: src/upstream/pool.ts -> src/guards/limits.ts',
    ]);
  });

  it('pass on src/', () => {
    const { status, violations } = cruise(ROOT);
    expect(violations).toEqual([]);
    expect(status).toBe(0);
  });
});
