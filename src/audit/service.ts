/**
 * Wires the audit log into the gateway: opens the writer in the data dir (or the configured dir), builds the audit
 * guard for each snapshot, and closes the log at shutdown (after the HTTP drain, so in-flight calls are recorded).
 */
import { isAbsolute, resolve } from 'node:path';
import type { ConfigSnapshot } from '../config/load.ts';
import type { Guard } from '../core/pipeline.ts';
import type { GuardServices } from '../core/pipeline.ts';
import { AuditGuard } from '../guards/audit/guard.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { DecisionLog } from '../guards/policy/decision-log.ts';
import { recordPolicyDecisions } from './decisions.ts';
import { keyId } from './format.ts';
import { loadSigningKey } from './keys.ts';
import { ArgumentPolicy } from './redact.ts';
import { otlpLogSink, stdoutSink } from './sinks.ts';
import { AuditWriter, type RecordSink } from './writer.ts';

export interface AuditService extends GuardServices {
  readonly writer: AuditWriter;
  close(): Promise<void>;
}

/** The audit directory a snapshot designates. */
export function auditDir(snapshot: ConfigSnapshot): string {
  const dir = snapshot.gateway.audit.dir;
  return isAbsolute(dir) ? dir : resolve(snapshot.dataDir, dir);
}

/** Opens the audit log when the config enables it (the default); undefined otherwise. */
export async function createAuditService(snapshot: ConfigSnapshot, log: Logger, opts: { decisionLog?: DecisionLog | undefined } = {}): Promise<AuditService | undefined> {
  const spec = snapshot.gateway.audit;
  if (!spec.enabled) {
    log.warn('audit log disabled by config: calls are not recorded');
    return undefined;
  }
  const key = loadSigningKey(spec, snapshot.dir, snapshot.dataDir);
  const sinks: RecordSink[] = [];
  if (spec.sinks.stdout) sinks.push(stdoutSink);
  if (spec.sinks.otlp) sinks.push(otlpLogSink());
  const dir = auditDir(snapshot);
  const writer = await AuditWriter.open({ dir, key, spec, args: new ArgumentPolicy(spec.arguments), log, sinks });
  log.info({ dir, key: keyId(key.publicKey), keySource: key.source, onFull: spec.buffer.onFull }, 'audit log open');
  const unsubscribe = spec.decisions && opts.decisionLog ? recordPolicyDecisions(opts.decisionLog) : undefined;
  let guard = new AuditGuard(writer);
  let applied = spec;
  return {
    writer,
    guardsFor(s: ConfigSnapshot): Guard[] {
      const next = s.gateway.audit;
      if (next !== applied) {
        if (!next.enabled || auditDir(s) !== dir) log.warn('audit: enabling, disabling or moving the log takes effect at the next restart');
        writer.reconfigure(next, new ArgumentPolicy(next.arguments));
        applied = next;
        guard = new AuditGuard(writer);
      }
      return [guard];
    },
    close: async () => {
      unsubscribe?.();
      await writer.close();
    },
  };
}
