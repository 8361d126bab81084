import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PolicyEngine, PolicyEvalError } from '../../src/guards/policy/engine.ts';
import { buildBytes, buildEngine, requireOpa, writeTree } from '../helpers/policy.ts';
import { readBundle } from '../../src/guards/policy/bundle.ts';
import { runOpa } from '../../src/guards/policy/opa.ts';
import { rmSync } from 'node:fs';

const BUILTINS = `package t

ns := 1772364896123456789

r := {
	"rfc": time.parse_rfc3339_ns("2026-03-01T12:34:56.123456789+01:00"),
	"rfc_exact": time.parse_rfc3339_ns("2026-03-01T11:34:56.123456789Z") == 1772364896123456789,
	"rfc_undefined": object.get({}, "x", "fallback") == "fallback",
	"date": time.date(ns),
	"date_tz": time.date([ns, "Asia/Tokyo"]),
	"clock": time.clock([ns, "America/New_York"]),
	"weekday": time.weekday(ns),
	"add": time.add_date(ns, 0, 1, 30),
	"dur": time.parse_duration_ns("1h2m3.5s"),
	"dur_ms": time.parse_duration_ns("-150ms"),
	"sha": crypto.sha256("abc"),
	"hmac": crypto.hmac.sha256("message", "key"),
	"heq": crypto.hmac.equal("abc", "abc"),
	"hne": crypto.hmac.equal("abc", "abd"),
	"pre": strings.any_prefix_match("/srv/shared/a", ["/tmp/", "/srv/"]),
	"suf": strings.any_suffix_match(["a.txt", "b.md"], {".md"}),
	"jwt": io.jwt.decode("eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJzcGlmZmU6Ly90b2xsZ2F0ZS5kZXYvYSJ9.c2ln"),
}

# A builtin error makes the expression undefined (OPA's non-strict semantics), it does not fail the evaluation.
bad_time_is_undefined if not time.parse_rfc3339_ns("not a time")

bad_duration_is_undefined if not time.parse_duration_ns("5 parsecs")

now := [time.now_ns(), time.now_ns(), time.now_ns()]
`;

describe('policy engine (real opa build, WASM evaluation)', () => {
  let engine: PolicyEngine;
  beforeAll(async () => {
    engine = await buildEngine({ 't.rego': BUILTINS }, ['t/r', 't/now', 't/bad_time_is_undefined', 't/bad_duration_is_undefined']);
  });

  it('JS builtins give the same values as opa itself', async () => {
    const dir = writeTree({ 't.rego': BUILTINS });
    try {
      const ref = await runOpa(requireOpa(), ['eval', '-f', 'json', '-d', dir, 'data.t.r']);
      expect(ref.code, ref.diagnostics).toBe(0);
      const expected = (JSON.parse(ref.stdout) as { result: Array<{ expressions: Array<{ value: unknown }> }> }).result[0]!.expressions[0]!.value;
      const got = engine.evaluate('t/r', '{}');
      expect(got).toEqual(expected);
      expect((got as Record<string, unknown>).rfc_exact).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a builtin error makes the expression undefined, not the evaluation fail', () => {
    expect(engine.evaluate('t/bad_time_is_undefined', '{}')).toBe(true);
    expect(engine.evaluate('t/bad_duration_is_undefined', '{}')).toBe(true);
  });

  it('time.now_ns is one value for a whole evaluation, and moves between evaluations', async () => {
    const [a, b, c] = engine.evaluate('t/now', '{}') as number[];
    expect(a).toBe(b);
    expect(b).toBe(c);
    expect(Math.abs(a! / 1e6 - Date.now())).toBeLessThan(5_000);
    await new Promise((r) => setTimeout(r, 5));
    const [d] = engine.evaluate('t/now', '{}') as number[];
    expect(d).toBeGreaterThan(a!);
  });

  it('evaluates with input and data, and undefined rules give undefined', async () => {
    const e = await buildEngine(
      {
        'p.rego': 'package p\n\nallow if input.user in data.p.admins\n\nname := input.user\n',
        'p/data.json': JSON.stringify({ admins: ['ann'] }),
      },
      ['p/allow', 'p/name'],
    );
    expect(e.evaluate('p/allow', JSON.stringify({ user: 'ann' }))).toBe(true);
    expect(e.evaluate('p/allow', JSON.stringify({ user: 'bob' }))).toBeUndefined();
    expect(e.evaluate('p/name', JSON.stringify({ user: 'zoë ✓' }))).toBe('zoë ✓');
    expect(() => e.evaluate('p/nope', '{}')).toThrow(/not in the bundle/);
  });

  it('a policy error (conflicting values) fails that evaluation only', async () => {
    const e = await buildEngine({ 'c.rego': 'package c\n\nx := 1 if input.a\n\nx := 2 if input.b\n' }, ['c/x']);
    expect(e.evaluate('c/x', '{"a":true}')).toBe(1);
    expect(() => e.evaluate('c/x', '{"a":true,"b":true}')).toThrow(PolicyEvalError);
    expect(e.evaluate('c/x', '{"b":true}')).toBe(2);
  });

  it('input larger than the memory bound fails closed; the engine keeps serving', async () => {
    const e = await buildEngine({ 'm.rego': 'package m\n\nn := count(input.items)\n' }, ['m/n'], { initialPages: 4, maxPages: 16 });
    expect(e.evaluate('m/n', JSON.stringify({ items: [1, 2, 3] }))).toBe(3);
    const huge = JSON.stringify({ items: Array.from({ length: 400_000 }, (_, i) => i) });
    expect(() => e.evaluate('m/n', huge)).toThrow(/memory/);
    expect(e.evaluate('m/n', JSON.stringify({ items: [1] }))).toBe(1);
  });

  it('a policy that allocates beyond the memory bound fails closed; the engine keeps serving', async () => {
    const e = await buildEngine(
      { 'b.rego': 'package b\n\nsmall := count([x | some x in numbers.range(1, 10)])\n\nbig := count([x | some x in numbers.range(1, input.n)])\n' },
      ['b/big', 'b/small'],
      { initialPages: 4, maxPages: 32 },
    );
    expect(() => e.evaluate('b/big', '{"n":5000000}')).toThrow(PolicyEvalError);
    expect(e.evaluate('b/small', '{}')).toBe(10);
    expect(e.evaluate('b/big', '{"n":100}')).toBe(100);
    expect(e.memoryBytes).toBeLessThanOrEqual(32 * 64 * 1024);
  });

  it('a builtin the WASM runtime lacks fails at build time, not at call time', async () => {
    await expect(buildBytes({ 'h.rego': 'package h\n\nr := http.send({"method": "get", "url": "http://127.0.0.1:1"})\n' }, ['h/r'])).rejects.toThrow(
      /http\.send/,
    );
    await expect(buildBytes({ 'x.rego': 'package x\n\nr := crypto.x509.parse_certificates(input.pem)\n' }, ['x/r'])).rejects.toThrow(/crypto\.x509/);
  });

  it('reads the bundle revision and refuses what is not a bundle', async () => {
    const bytes = await buildBytes({ 'p.rego': 'package p\n\nallow := true\n' }, ['p/allow']);
    const b = await readBundle(bytes, { source: 'mem' });
    expect(b.revision).toMatch(/^src-[0-9a-f]{16}$/);
    await expect(readBundle(Buffer.from('not gzip'), { source: 'junk' })).rejects.toThrow(/not a gzipped bundle/);
  });
});
