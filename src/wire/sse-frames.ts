/**
 * Cuts a relayed Server-Sent Events byte stream into whole events without re-encoding them, for protocols that relay
 * an upstream's stream byte for byte but must look at (or drop) single events: OpenAI-compatible completions (usage,
 * the extra usage chunk), KServe generate_stream. Only whole events are handed on, so an event the gateway adds (an
 * error when the upstream breaks) always starts on an event boundary, and an event cut by a broken upstream is never
 * half-delivered. Event boundaries are blank lines with any of the WHATWG line endings (LF, CRLF, CR).
 *
 * Bytes are never decoded here: an event ends at an ASCII line break, so a multi-byte character is never split.
 */

const LF = 0x0a;
const CR = 0x0d;

export class SseFramer {
  /** Bytes of an event not yet complete. */
  private pending: Buffer | undefined;
  /** The last byte seen ended a line with CR (a following LF belongs to it). */
  private afterCr = false;
  /** The current line (since the last line break) is empty so far. */
  private lineEmpty = true;
  /** The current event has at least one line (so a blank line ends it). */
  private inEvent = false;

  /**
   * Feeds a chunk; returns the bytes of the events it completed (several events in one Buffer, in order, exactly as
   * received) and keeps the rest for the next chunk. `frames`, when given, receives each complete event's bytes.
   */
  push(chunk: Buffer, frames?: Buffer[]): Buffer | undefined {
    const data = this.pending === undefined ? chunk : Buffer.concat([this.pending, chunk]);
    const scanFrom = this.pending === undefined ? 0 : this.pending.length;
    let eventStart = 0;
    let lastEnd = 0;
    for (let i = scanFrom; i < data.length; i++) {
      const b = data[i]!;
      if (b === LF && this.afterCr) {
        // The LF of a CRLF whose CR ended the line already.
        this.afterCr = false;
        if (eventStart === i) eventStart = i + 1;
        if (lastEnd === i) lastEnd = i + 1;
        continue;
      }
      this.afterCr = b === CR;
      if (b !== LF && b !== CR) {
        this.lineEmpty = false;
        continue;
      }
      if (this.lineEmpty && this.inEvent) {
        // A blank line: the event ends after this line break (and its LF when it is a CRLF split across chunks).
        let end = i + 1;
        if (b === CR && data[end] === LF) {
          end++;
          i++;
          this.afterCr = false;
        }
        frames?.push(data.subarray(eventStart, end));
        eventStart = end;
        lastEnd = end;
        this.inEvent = false;
      } else if (this.lineEmpty) {
        // A blank line outside an event dispatches nothing; it travels with the next event.
      } else {
        this.inEvent = true;
      }
      this.lineEmpty = true;
    }
    this.pending = lastEnd < data.length ? data.subarray(lastEnd) : undefined;
    if (lastEnd === 0) return undefined;
    return lastEnd === data.length ? data : data.subarray(0, lastEnd);
  }

  /** Takes the bytes of an event not finished yet (at the end of a stream), and starts afresh. */
  take(): Buffer | undefined {
    const rest = this.pending;
    this.pending = undefined;
    this.afterCr = false;
    this.lineEmpty = true;
    this.inEvent = false;
    return rest;
  }
}

/**
 * The `data` of one whole event (its `data:` lines joined with LF, one leading space removed as the spec says), or
 * undefined when it has none (a comment, a keep-alive).
 */
export function eventData(frame: Buffer): string | undefined {
  const text = frame.toString('utf8');
  let data: string | undefined;
  let start = 0;
  while (start < text.length) {
    let end = start;
    while (end < text.length && text.charCodeAt(end) !== LF && text.charCodeAt(end) !== CR) end++;
    if (end > start && text.startsWith('data', start)) {
      const after = start + 4;
      if (after === end || text.charCodeAt(after) === 0x3a /* : */) {
        let v = after === end ? '' : text.slice(after + 1, end);
        if (v.charCodeAt(0) === 0x20) v = v.slice(1);
        data = data === undefined ? v : `${data}\n${v}`;
      }
    }
    start = end + 1;
    if (text.charCodeAt(end) === CR && text.charCodeAt(start) === LF) start++;
  }
  return data;
}

/**
 * The bytes of `whole` with each of its events (`frames`, views of it) replaced by what `map` makes of it (undefined:
 * dropped); what lies between events (a line break outside an event) stays.
 */
export function mapFrames(whole: Buffer, frames: readonly Buffer[], map: (frame: Buffer) => Buffer | undefined): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (const f of frames) {
    const offset = f.byteOffset - whole.byteOffset;
    if (offset > at) parts.push(whole.subarray(at, offset));
    const mapped = map(f);
    if (mapped !== undefined) parts.push(mapped);
    at = offset + f.length;
  }
  if (at < whole.length) parts.push(whole.subarray(at));
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

/**
 * Events read after their bytes were passed on: `push` queues an event and reads the queue in a microtask (the
 * relay writes first, so reading is never on an event's way to the client); `catchUp` reads what is queued now (at
 * the end of a stream, or before an event that must be read in order).
 */
export class LateReader {
  private unread: Buffer[] = [];
  private readonly read: (frame: Buffer) => unknown;
  private readonly flush = (): void => this.catchUp();

  constructor(read: (frame: Buffer) => unknown) {
    this.read = read;
  }

  push(frame: Buffer): void {
    if (this.unread.length === 0) queueMicrotask(this.flush);
    this.unread.push(frame);
  }

  catchUp(): void {
    if (this.unread.length === 0) return;
    const events = this.unread;
    this.unread = [];
    for (const f of events) this.read(f);
  }
}
