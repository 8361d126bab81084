import { EventEmitter } from 'node:events';

/**
 * An exchange's abort signal as an EventEmitter, which undici accepts (two plain listeners per call instead of two
 * EventTarget ones). No `aborted` property: undici would take it for an AbortSignal (`fired` is checked instead).
 */
export class AbortEmitter extends EventEmitter {
  fired = false;
  reason: unknown = undefined;

  abort(reason: unknown): void {
    if (this.fired) return;
    this.fired = true;
    this.reason = reason;
    this.emit('abort');
  }
}
