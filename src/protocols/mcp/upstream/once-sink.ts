/**
 * Wraps a ReplySink so it settles once: after the final response, a failure or a cancellation, anything the
 * upstream still sends is dropped. A class rather than three closures: one allocation per forwarded request.
 */
import type { GatewayError } from '../../../core/errors.ts';
import type { ReplySink } from './types.ts';

export class OnceSink implements ReplySink {
  done = false;
  private readonly sink: ReplySink;
  private readonly onFinal: ((message: string | Buffer) => void) | undefined;
  /** Called once when the exchange settles (answered, failed or cancelled): frees the upstream's in-flight slot. */
  private readonly onSettled: (() => void) | undefined;

  constructor(sink: ReplySink, onFinal?: (message: string | Buffer) => void, onSettled?: () => void) {
    this.sink = sink;
    this.onFinal = onFinal;
    this.onSettled = onSettled;
  }

  private settle(): void {
    this.done = true;
    this.onSettled?.();
  }

  interim(message: string): void {
    if (!this.done) this.sink.interim(message);
  }

  final(message: string | Buffer): void {
    if (this.done) return;
    this.settle();
    this.onFinal?.(message);
    this.sink.final(message);
  }

  fail(err: GatewayError): void {
    if (this.done) return;
    this.settle();
    this.sink.fail(err);
  }

  /** Stops relaying (cancelled): nothing reaches the wrapped sink any more. */
  stop(): void {
    if (!this.done) this.settle();
  }
}
