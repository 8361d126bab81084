/**
 * The audit guard, last in the pipeline. Its admit step is the audit log's back-pressure (synchronous and free while
 * the buffer has room); its settle step queues the finished call for the writer, which builds, chains and writes the
 * record in the background. Every call that settles gets a record, including calls refused by earlier guards.
 */
import type { Call } from '../../core/call.ts';
import type { Guard } from '../../core/pipeline.ts';
import type { AuditWriter } from '../../audit/writer.ts';

export class AuditGuard implements Guard {
  readonly name = 'audit';
  private readonly writer: AuditWriter;

  constructor(writer: AuditWriter) {
    this.writer = writer;
  }

  admit(_call: Call): void | Promise<void> {
    return this.writer.admit();
  }

  settle(call: Call): void {
    this.writer.enqueue(call, call.elapsedMs());
  }
}
