/**
 * Run as a child process by the crash-recovery test: writes calls to an audit log, tears a line in half the way a
 * crash mid-write would, then dies with SIGKILL (no close, no seal).
 */
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeCall, openWriter } from './audit-calls.ts';

const [root, count] = process.argv.slice(2);
const { writer, dir } = await openWriter(root!, { segment: { maxRecords: 40 }, checkpoint: { everyRecords: 15 } });
const n = Number(count);
for (let i = 0; i < n; i++) writer.enqueue(makeCall({ id: `crash-${i}`, time: Date.now(), principal: 'spiffe://example.org/ns/a/sa/b', tool: 'srv__echo', allow: true }), 1);
while (writer.pending > 0 || writer.written < n) await new Promise((r) => setTimeout(r, 5));
// A torn record: a crash in the middle of a write.
const segments = (await import('../../src/audit/segments.ts')).listSegments(dir);
appendFileSync(join(dir, `segment-${String(segments[segments.length - 1]).padStart(8, '0')}.jsonl`), '{"seq":999999,"prev":"ab');
process.kill(process.pid, 'SIGKILL');
