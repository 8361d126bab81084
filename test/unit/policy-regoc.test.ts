/**
 * The persistent Rego compiler (tools/regoc, `tollgate-regoc`) against `opa build` itself: the same sources give the
 * same bundle (policy.wasm, data, manifest) and the same decisions, a broken policy the same error text; a compiler
 * that was killed is started again by the next build, and one that cannot run leaves the build to `opa build`.
 * Real binaries only: a missing opa or tollgate-regoc fails loudly (scripts/install-tools.sh builds both).
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readBundle } from '../../src/guards/policy/bundle.ts';
import { PolicyEngine } from '../../src/guards/policy/engine.ts';
import { buildWasmBundle, findRegoc } from '../../src/guards/policy/opa.ts';
import { RegoCompiler } from '../../src/guards/policy/regoc.ts';
import { requireOpa, writeTree } from '../helpers/policy.ts';

function requireRegoc(): string {
  const regoc = findRegoc({ ...process.env, TOLLGATE_REGOC: '' });
  if (!regoc) throw new Error('tollgate-regoc not found: run scripts/install-tools.sh and put ~/.cache/tollgate/bin on PATH');
  return regoc;
}

const ENTRYPOINTS = ['app/decision', 'app/visible'];

const SOURCES: Record<string, string> = {
  'app/main.rego': `package app

default decision := {"allow": false, "reason": "closed"}

decision := {"allow": true} if {
	input.user in data.app.admins
}

decision := {"allow": true, "reason": "reader"} if {
	input.method == "GET"
	startswith(input.path, "/public/")
}

visible contains name if {
	some name in data.app.catalog
	not endswith(name, "_secret")
}
`,
  'app/data.json': '{"admins": ["ada"], "catalog": ["a", "b_secret", "c"]}',
  'app/lib/util.rego': 'package app.lib\n\ndouble(x) := x * 2\n',
  // Left out of the bundle by both (`--ignore *_test.rego`): it would not even compile against the policy.
  'app/main_test.rego': 'package app\n\ntest_broken if { nope }\n',
};

const INPUTS = [
  { user: 'ada', method: 'POST', path: '/x' },
  { user: 'bob', method: 'GET', path: '/public/readme' },
  { user: 'bob', method: 'POST', path: '/public/readme' },
  {},
];

/** The tar entries of a bundle, name -> bytes (ustar: 512-byte headers, contents padded to 512). */
function tarEntries(gz: Buffer): Map<string, Buffer> {
  const tar = gunzipSync(gz);
  const out = new Map<string, Buffer>();
  for (let off = 0; off + 512 <= tar.length; ) {
    const name = tar.subarray(off, off + 100).toString('utf8').replace(/\0.*$/s, '');
    if (name === '') break;
    const size = Number.parseInt(tar.subarray(off + 124, off + 136).toString('utf8').replace(/\0.*$/s, '').trim() || '0', 8);
    out.set(name, Buffer.from(tar.subarray(off + 512, off + 512 + size)));
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

let opa: string;
let compiler: RegoCompiler;
const temps: string[] = [];

beforeAll(() => {
  opa = requireOpa();
  compiler = new RegoCompiler(requireRegoc());
});

afterAll(() => {
  compiler.close();
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

async function both(files: Record<string, string>, entrypoints = ENTRYPOINTS) {
  const dir = writeTree(files);
  temps.push(dir);
  const viaOpa = await buildWasmBundle({ opa, dir, entrypoints, output: join(dir, '..', `${dir.split('/').pop()}-opa.tar.gz`), revision: 'rev-1' });
  const viaRegoc = await buildWasmBundle({ opa, dir, entrypoints, output: join(dir, '..', `${dir.split('/').pop()}-regoc.tar.gz`), revision: 'rev-1', compiler });
  temps.push(join(dir, '..', `${dir.split('/').pop()}-opa.tar.gz`), join(dir, '..', `${dir.split('/').pop()}-regoc.tar.gz`));
  return { dir, viaOpa, viaRegoc, opaFile: join(dir, '..', `${dir.split('/').pop()}-opa.tar.gz`), regocFile: join(dir, '..', `${dir.split('/').pop()}-regoc.tar.gz`) };
}

describe('tollgate-regoc builds what opa build builds', () => {
  it('is built from the opa module version install-tools.sh builds opa from', () => {
    const script = readFileSync('scripts/install-tools.sh', 'utf8');
    const version = /^OPA_VERSION=(v[\d.]+)$/m.exec(script)?.[1];
    expect(version).toMatch(/^v\d+\.\d+\.\d+$/);
    const gomod = readFileSync('tools/regoc/go.mod', 'utf8');
    expect(gomod).toMatch(new RegExp(`github\\.com/open-policy-agent/opa ${version!.replaceAll('.', '\\.')}(\\s|$)`));
  });

  it('the same bundle contents (wasm, data, manifest) and the same decisions', async () => {
    const r = await both(SOURCES);
    expect(r.viaOpa).toEqual({ ok: true, revision: 'rev-1' });
    expect(r.viaRegoc).toEqual({ ok: true, revision: 'rev-1' });
    const a = tarEntries(readFileSync(r.opaFile));
    const b = tarEntries(readFileSync(r.regocFile));
    expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
    expect([...b.keys()].some((k) => k.endsWith('main_test.rego'))).toBe(false);
    for (const [name, bytes] of a) expect(b.get(name)!.equals(bytes), name).toBe(true);

    const memory = { initialPages: 16, maxPages: 64 };
    const engineA = await PolicyEngine.load(await readBundle(readFileSync(r.opaFile), { source: 'opa' }), memory);
    const engineB = await PolicyEngine.load(await readBundle(readFileSync(r.regocFile), { source: 'regoc' }), memory);
    expect(engineB.revision).toBe('rev-1');
    const decisions = INPUTS.map((i) => engineB.evaluate('app/decision', JSON.stringify(i)));
    expect(decisions).toEqual(INPUTS.map((i) => engineA.evaluate('app/decision', JSON.stringify(i))));
    // Not vacuous: the inputs reach different rules.
    expect(decisions).toEqual([{ allow: true }, { allow: true, reason: 'reader' }, { allow: false, reason: 'closed' }, { allow: false, reason: 'closed' }]);
    expect(engineB.evaluate('app/visible', '{}')).toEqual(engineA.evaluate('app/visible', '{}'));
  });

  it('a broken policy: the same error text as opa build, naming the file and line, and no bundle written', async () => {
    const r = await both({ 'app/main.rego': 'package app\n\ndecision := {"allow": true} if {\n' });
    expect(r.viaOpa.ok).toBe(false);
    expect(r.viaRegoc).toEqual(r.viaOpa);
    expect((r.viaRegoc as { error: string }).error).toMatch(/^error: .*app\/main\.rego:\d+/s);
    expect(() => readFileSync(r.regocFile)).toThrow(/ENOENT/);
  });

  it('a missing entrypoint and a builtin outside the WASM capabilities: the same errors as opa build', async () => {
    const missing = await both({ 'app/main.rego': 'package app\n\nsomething_else := true\n' });
    expect(missing.viaOpa.ok).toBe(false);
    expect(missing.viaRegoc).toEqual(missing.viaOpa);
    const http = await both({ 'app/main.rego': 'package app\n\ndecision := http.send({"method": "GET", "url": "http://x"})\nvisible := set()\n' });
    expect(http.viaOpa.ok).toBe(false);
    expect((http.viaOpa as { error: string }).error).toMatch(/http\.send/);
    expect(http.viaRegoc).toEqual(http.viaOpa);
  });
});

describe('the compiler process', () => {
  it('one process serves every build; a killed one is started again by the next build', async () => {
    const dir = writeTree(SOURCES);
    temps.push(dir);
    const c = new RegoCompiler(requireRegoc());
    try {
      const out = join(dir, 'out.tar.gz');
      const build = () => buildWasmBundle({ opa, dir, entrypoints: ENTRYPOINTS, output: out, compiler: c });
      expect((await build()).ok).toBe(true);
      const first = c.pid!;
      expect(first).toBeGreaterThan(0);
      expect((await build()).ok).toBe(true);
      expect(c.pid).toBe(first);
      expect(c.starts).toBe(1);
      const exited = new Promise((r) => {
        const t = setInterval(() => {
          if (c.pid === undefined) r(clearInterval(t));
        }, 5);
      });
      process.kill(first, 'SIGKILL');
      await exited;
      const again = await build();
      expect(again.ok).toBe(true);
      expect(c.starts).toBe(2);
      expect(c.pid).toBeGreaterThan(0);
      expect(c.pid).not.toBe(first);
    } finally {
      c.close();
    }
    expect(c.pid).toBeUndefined();
  });

  it('a compiler that cannot run or dies leaves the build to opa build (same outcome)', async () => {
    const dir = writeTree(SOURCES);
    temps.push(dir);
    for (const binary of ['/nonexistent/tollgate-regoc', '/bin/false']) {
      const c = new RegoCompiler(binary);
      try {
        const out = join(dir, 'fallback.tar.gz');
        rmSync(out, { force: true });
        const r = await buildWasmBundle({ opa, dir, entrypoints: ENTRYPOINTS, output: out, compiler: c });
        expect(r.ok, binary).toBe(true);
        expect((await readBundle(readFileSync(out), { source: 'fallback' })).manifest.wasm?.length).toBeGreaterThan(0);
        const broken = writeTree({ 'app/main.rego': 'package app\n\ndecision := {\n' });
        temps.push(broken);
        const e = await buildWasmBundle({ opa, dir: broken, entrypoints: ENTRYPOINTS, output: join(broken, 'x.tar.gz'), compiler: c });
        expect(e.ok).toBe(false);
        expect((e as { error: string }).error).toMatch(/main\.rego:\d+/);
      } finally {
        c.close();
      }
    }
  });

  it('a closed compiler refuses builds instead of starting again', async () => {
    const c = new RegoCompiler(requireRegoc());
    c.close();
    const dir = writeTree(SOURCES);
    temps.push(dir);
    const r = await buildWasmBundle({ opa, dir, entrypoints: ENTRYPOINTS, output: join(dir, 'closed.tar.gz'), compiler: c });
    expect(r).toEqual({ ok: false, error: 'the Rego compiler is closed' });
    expect(c.pid).toBeUndefined();
    expect(c.starts).toBe(0);
  });
});
