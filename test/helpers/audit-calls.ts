/** Builds real Calls and audit writers for audit unit tests and benches. */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { auditSpec, type AuditSpec } from '../../src/audit/config.ts';
import { loadSigningKey } from '../../src/audit/keys.ts';
import { ArgumentPolicy } from '../../src/audit/redact.ts';
import { AuditWriter } from '../../src/audit/writer.ts';
import type { RouteSpec } from '../../src/config/schema.ts';
import { Call, type Principal } from '../../src/core/call.ts';
import { createLogger } from '../../src/telemetry/logger.ts';

const ROUTE = { name: 'mcp', spec: { rules: [] } as unknown as RouteSpec };

export function principal(id: string): Principal {
  const url = new URL(id);
  const segments = url.pathname.split('/').filter(Boolean);
  return { id, issuer: 'spiffe', trustDomain: url.host, path: url.pathname, segments, claims: {}, expiresAt: 0 };
}

export interface CallSpec {
  readonly id: string;
  readonly time: number;
  readonly principal?: string | undefined;
  readonly tool?: string | undefined;
  readonly allow?: boolean | undefined;
  readonly outcome?: Call['outcome'];
  readonly args?: unknown;
  readonly obligations?: Record<string, unknown>;
  readonly operation?: string;
}

export function makeCall(s: CallSpec): Call {
  const [server, local] = s.tool?.split('__') ?? [];
  const call = new Call({
    id: s.id,
    protocol: 'mcp',
    operation: s.operation ?? 'tools/call',
    route: ROUTE,
    request: { method: 'POST', path: '/mcp', headers: {}, remoteAddress: '127.0.0.1' },
    target: s.tool === undefined ? undefined : { kind: 'tool', name: s.tool, server, local },
    args: s.args,
    rpcId: 1,
  });
  (call as { startedAt: number }).startedAt = s.time;
  if (s.principal !== undefined) call.principal = principal(s.principal);
  if (s.allow !== undefined) call.decision = { id: `d-${s.id}`, allow: s.allow, reason: s.allow ? undefined : 'not granted', obligations: s.obligations };
  call.outcome = s.outcome ?? (s.allow === false ? 'denied' : 'ok');
  call.status = 200;
  return call;
}

export async function openWriter(root: string, overrides: Record<string, unknown> = {}): Promise<{ writer: AuditWriter; dir: string; spec: AuditSpec }> {
  const spec = auditSpec.parse(overrides);
  const dataDir = join(root, 'data');
  mkdirSync(dataDir, { recursive: true });
  const dir = join(dataDir, 'audit');
  const writer = await AuditWriter.open({
    dir,
    key: loadSigningKey(spec, root, dataDir),
    spec,
    args: new ArgumentPolicy(spec.arguments),
    log: createLogger('silent'),
  });
  return { writer, dir, spec };
}
