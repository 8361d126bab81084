/**
 * The live view's feed: an audit sink that keeps the newest record lines in a ring (cheap: no parsing unless someone
 * watches) and pushes each new call or decision, as its view, to the SSE streams open on the console.
 */
import type { RecordSink } from '../audit/writer.ts';
import { viewOfLine, type RecordView } from './views.ts';

export type LiveListener = (view: RecordView) => void;

export class LiveFeed implements RecordSink {
  private readonly ring: (string | undefined)[];
  private next = 0;
  private readonly listeners = new Set<LiveListener>();
  /** Open streams are capped: a newcomer over the cap is refused (nobody else is cut). */
  readonly maxListeners: number;

  constructor(size: number, maxListeners = 32) {
    this.ring = new Array<string | undefined>(size);
    this.maxListeners = maxListeners;
  }

  write(line: string): void {
    // Only call and decision records (the writer's signed records start with the same prefix but another kind).
    if (!line.includes('"kind":"call"') && !line.includes('"kind":"decision"')) return;
    this.ring[this.next] = line;
    this.next = (this.next + 1) % this.ring.length;
    if (this.listeners.size === 0) return;
    const view = viewOfLine(line);
    if (view === undefined) return;
    for (const l of this.listeners) {
      try {
        l(view);
      } catch {
        // A broken stream must not stop the others (it is removed when it closes).
      }
    }
  }

  /** The newest records kept, newest first, as views. */
  recent(limit: number, keep: (v: RecordView) => boolean = () => true): RecordView[] {
    const out: RecordView[] = [];
    const n = this.ring.length;
    for (let i = 1; i <= n && out.length < limit; i++) {
      const line = this.ring[(this.next - i + n) % n];
      if (line === undefined) break;
      const v = viewOfLine(line);
      if (v !== undefined && keep(v)) out.push(v);
    }
    return out;
  }

  /** Adds a listener; undefined when the cap is reached. Returns the removal. */
  listen(l: LiveListener): (() => void) | undefined {
    if (this.listeners.size >= this.maxListeners) return undefined;
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}
