/** Extra destinations for audit records besides the segment files. */
import { logs, SeverityNumber } from '@opentelemetry/api-logs';
import { writeStdoutLine } from '../telemetry/logger.ts';
import type { RecordSink } from './writer.ts';

/** Each record as one JSON line on stdout, through the same asynchronous destination as the logs (no interleaving). */
export const stdoutSink: RecordSink = {
  write(line: string): void {
    writeStdoutLine(line);
  },
};

/** Each record as an OTLP log record (exported by the logger provider the OTel SDK set up from OTEL_* variables). */
export function otlpLogSink(): RecordSink {
  const logger = logs.getLogger('tollgate.audit');
  return {
    write(line: string): void {
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      const attributes: Record<string, string | number | boolean> = { 'tollgate.audit.seq': rec.seq as number, 'tollgate.audit.kind': rec.kind as string };
      for (const k of ['principal', 'route', 'protocol', 'operation', 'outcome', 'code', 'call'] as const) {
        if (typeof rec[k] === 'string') attributes[`tollgate.audit.${k}`] = rec[k];
      }
      const decision = rec.decision as { allow?: boolean; id?: string } | undefined;
      if (decision?.id !== undefined) attributes['tollgate.decision.id'] = decision.id;
      if (decision?.allow !== undefined) attributes['tollgate.decision.allow'] = decision.allow;
      logger.emit({
        eventName: 'tollgate.audit',
        severityNumber: SeverityNumber.INFO,
        severityText: 'INFO',
        timestamp: Date.parse(rec.time as string),
        body: line,
        attributes,
      });
    },
  };
}
