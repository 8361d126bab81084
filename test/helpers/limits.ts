/**
 * Guard-level limit tests: a config snapshot loaded by the real loader from YAML, and Calls as an adapter would
 * make them (principal set as the identity guard would, decision obligations as the policy guard would).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigDir, type ConfigSnapshot } from '../../src/config/load.ts';
import { Call, type Protocol, type Target, type UsageEstimate } from '../../src/core/call.ts';

/** Loads a snapshot from `docs` (RateLimit/Budget YAML) and an optional Gateway `limits` section (YAML, indented 4). */
export function limitsSnapshot(docs: string, limitsYaml = '', extra = ''): ConfigSnapshot {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-limits-'));
  const gateway = `apiVersion: tollgate.dev/v1alpha1\nkind: Gateway\nmetadata: { name: gw }\nspec:\n  limits:\n${limitsYaml || '    {}\n'}`;
  writeFileSync(join(dir, 'gateway.yaml'), gateway + extra);
  writeFileSync(join(dir, 'limits.yaml'), docs);
  return loadConfigDir(dir, {});
}

export interface CallInit {
  principal?: string;
  claims?: Record<string, unknown>;
  protocol?: Protocol;
  operation?: string;
  route?: string;
  target?: Target;
  upstream?: string;
  estimate?: UsageEstimate;
  obligations?: Record<string, unknown>;
}

export function limitCall(init: CallInit = {}): Call {
  const call = new Call({
    id: randomUUID(),
    protocol: init.protocol ?? 'mcp',
    operation: init.operation ?? 'tools/call',
    route: { name: init.route ?? 'mcp', spec: { rules: [] } as never },
    request: { method: 'POST', path: '/mcp', headers: {}, remoteAddress: '127.0.0.1' },
    target: init.target,
    upstream: init.upstream ?? init.target?.server,
  });
  const id = init.principal ?? 'spiffe://example.org/agent/one';
  const m = /^spiffe:\/\/([^/]+)(\/.*)?$/.exec(id);
  call.principal = {
    id,
    issuer: 'spiffe',
    trustDomain: m?.[1] ?? '',
    path: m?.[2] ?? '',
    segments: (m?.[2] ?? '').split('/').filter(Boolean),
    claims: { sub: id, ...init.claims },
    expiresAt: 0,
  };
  if (init.obligations) call.decision = { id: randomUUID(), allow: true, obligations: init.obligations };
  call.estimate = init.estimate;
  return call;
}
