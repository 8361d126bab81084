import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfigDir } from '../../src/config/load.ts';

function dirWith(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-cfg-'));
  for (const [n, t] of Object.entries(files)) writeFileSync(join(dir, n), t);
  return dir;
}

function issues(files: Record<string, string>, env: NodeJS.ProcessEnv = {}) {
  try {
    loadConfigDir(dirWith(files), env);
  } catch (err) {
    if (err instanceof ConfigError) return err.issues;
    throw err;
  }
  throw new Error('config unexpectedly valid');
}

const backend = (extra: string) => `apiVersion: tollgate.dev/v1alpha1
kind: Backend
metadata:
  name: up
spec:
  protocol: mcp
  url: http://127.0.0.1:1/mcp
${extra}`;

describe('config loader', () => {
  it('reports YAML syntax errors with file and line', () => {
    const [i] = issues({ 'a.yaml': 'apiVersion: x\nkind: [\n' });
    expect(i?.file).toMatch(/a\.yaml$/);
    expect(i?.line).toBeGreaterThanOrEqual(2);
  });

  it('reports schema errors at the offending line with the field path', () => {
    const found = issues({ 'b.yaml': backend('  pool:\n    connections: -3\n') });
    expect(found).toHaveLength(1);
    expect(found[0]?.line).toBe(9);
    expect(found[0]?.message).toContain('spec.pool.connections');
  });

  it('refuses credentials inline and names the header', () => {
    const found = issues({ 'c.yaml': backend('  headers:\n    - name: Authorization\n      value: Bearer abc\n') });
    expect(found[0]?.message).toMatch(/Authorization carries a credential/);
    expect(found[0]?.line).toBe(10);
  });

  it('resolves secrets from env and files, and reports a missing one', () => {
    const dir = dirWith({
      'd.yaml': backend('  headers:\n    - name: Authorization\n      valueFrom: { env: UP_TOKEN }\n    - name: X-Api-Key\n      valueFrom: { file: key.txt }\n'),
      'key.txt': 'k-123\n',
    });
    const snap = loadConfigDir(dir, { UP_TOKEN: 'Bearer t' });
    expect(snap.backends.get('up')?.headers).toEqual({ authorization: 'Bearer t', 'x-api-key': 'k-123' });
    const missing = issues({ 'd.yaml': backend('  headers:\n    - name: Authorization\n      valueFrom: { env: UP_TOKEN }\n') }, {});
    expect(missing[0]?.message).toContain('UP_TOKEN is not set');
  });

  it('refuses an MCP name separator that could be part of a server name (federated names would be ambiguous)', () => {
    const gateway = (sep: string) => `apiVersion: tollgate.dev/v1alpha1\nkind: Gateway\nmetadata: { name: g }\nspec:\n  mcp: { separator: "${sep}" }\n`;
    for (const sep of ['-', '--', 'x', '1_']) expect(issues({ 'g.yaml': gateway(sep) })[0]?.message, sep).toContain('spec.mcp.separator');
    for (const sep of ['__', '_', '.', 'X', '_-']) expect(loadConfigDir(dirWith({ 'g.yaml': gateway(sep) }), {}).gateway.mcp.separator, sep).toBe(sep);
  });

  it('refuses unknown backends, mixed protocols and conflicting rules', () => {
    const route = (name: string, path: string, refs: string[]) => `---
apiVersion: tollgate.dev/v1alpha1
kind: Route
metadata: { name: ${name} }
spec:
  rules:
    - matches: [{ path: { type: PathPrefix, value: ${path} } }]
      backendRefs: [${refs.map((r) => `{ name: ${r} }`).join(', ')}]
`;
    expect(issues({ 'e.yaml': backend('') + route('r', '/mcp', ['nope']) })[0]?.message).toContain('unknown Backend "nope"');
    const conflict = issues({ 'f.yaml': backend('') + route('r1', '/mcp', ['up']) + route('r2', '/mcp', ['up']) });
    expect(conflict[0]?.message).toContain('same requests');
  });

  it('gives each rule its route body limit, the Gateway one by default, and refuses a tiny one', () => {
    const doc = (name: string, path: string, http: string) => `---
apiVersion: tollgate.dev/v1alpha1
kind: Route
metadata: { name: ${name} }
spec:
${http}  rules:
    - matches: [{ path: { type: PathPrefix, value: ${path} } }]
      backendRefs: [{ name: up }]
`;
    const gateway = 'apiVersion: tollgate.dev/v1alpha1\nkind: Gateway\nmetadata: { name: g }\nspec: { http: { maxBodyBytes: 65536 } }\n';
    const snap = loadConfigDir(dirWith({ 'g.yaml': gateway, 'r.yaml': backend('') + doc('big', '/big', '  http: { maxBodyBytes: 1073741824 }\n') + doc('plain', '/plain', '') }), {});
    expect(snap.routes.match('/big/x', {})?.rule.maxBodyBytes).toBe(1073741824);
    expect(snap.routes.match('/plain', {})?.rule.maxBodyBytes).toBe(65536);
    const tiny = issues({ 'r.yaml': backend('') + doc('tiny', '/t', '  http: { maxBodyBytes: 10 }\n') });
    expect(tiny[0]?.message).toContain('spec.http.maxBodyBytes');
  });

  it('refuses a Backend of a protocol the gateway does not serve, at its line, when told what is served', () => {
    const dir = dirWith({ 'p.yaml': backend('').replace('protocol: mcp', 'protocol: smtp') });
    expect(loadConfigDir(dir, {}).backends.get('up')?.spec.protocol).toBe('smtp');
    try {
      loadConfigDir(dir, {}, new Set(['mcp', 'a2a']));
      throw new Error('config unexpectedly valid');
    } catch (err) {
      const [i] = (err as ConfigError).issues;
      expect(i?.line).toBe(6);
      expect(i?.message).toBe('Backend "up": protocol "smtp" is not served by this gateway (served: a2a, mcp)');
    }
  });

  it('loads the committed example config', () => {
    const snap = loadConfigDir(join(process.cwd(), 'routes'));
    expect(snap.routes.match('/mcp', {})?.rule.protocol).toBe('mcp');
    expect(snap.routes.match('/mcpx', {})).toBeUndefined();
    expect(snap.routes.match('/mcp/everything', {})?.rest).toBe('/everything');
  });
});
