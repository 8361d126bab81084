/**
 * The Pipeline's settle steps (src/core/pipeline.ts) and the protocol registry (src/gateway/registry.ts).
 * Settle may be asynchronous: later steps (the audit guard last) run once earlier ones finished, failed or timed
 * out, failures are noted on the Call, and a pipeline of synchronous steps stays synchronous (no promise).
 */
import { describe, expect, it } from 'vitest';
import type { Call } from '../../src/core/call.ts';
import { Pipeline, type Guard } from '../../src/core/pipeline.ts';
import type { ProtocolDefinition } from '../../src/gateway/adapter.ts';
import { ProtocolRegistry } from '../../src/gateway/registry.ts';
import { makeCall } from '../helpers/audit-calls.ts';

function call(): Call {
  return makeCall({ id: 'c1', time: Date.now() });
}

describe('Pipeline.settle', () => {
  it('stays synchronous when every step is', () => {
    const order: string[] = [];
    const p = new Pipeline([
      { name: 'a', settle: () => void order.push('a') },
      { name: 'b', settle: () => void order.push('b') },
    ]);
    expect(p.settle(call(), () => {})).toBeUndefined();
    expect(order).toEqual(['a', 'b']);
  });

  it('runs the steps after an asynchronous one once it has finished, in order', async () => {
    const order: string[] = [];
    let release!: () => void;
    const slow: Guard = { name: 'slow', settle: () => new Promise<void>((r) => (release = () => (order.push('slow'), r()))) };
    const p = new Pipeline([{ name: 'first', settle: () => void order.push('first') }, slow, { name: 'audit', settle: () => void order.push('audit') }]);
    const pending = p.settle(call(), () => {});
    expect(pending).toBeInstanceOf(Promise);
    expect(order).toEqual(['first']);
    release();
    await pending;
    expect(order).toEqual(['first', 'slow', 'audit']);
  });

  it('notes failed, throwing and hung steps on the call, and still runs the rest', async () => {
    const errors: string[] = [];
    let audited: string[] | undefined;
    const p = new Pipeline(
      [
        { name: 'throws', settle: () => { throw new Error('sync failure'); } },
        { name: 'rejects', settle: () => Promise.reject(new Error('store down')) },
        { name: 'hangs', settle: () => new Promise<void>(() => {}) },
        { name: 'audit', settle: (c) => void (audited = c.settleFailures && [...c.settleFailures]) },
      ],
      undefined,
      { settleTimeoutMs: 30 },
    );
    const c = call();
    await p.settle(c, (guard) => errors.push(guard));
    expect(errors).toEqual(['throws', 'rejects', 'hangs']);
    expect(audited).toEqual(['throws', 'rejects', 'hangs']);
  });
});

describe('ProtocolRegistry', () => {
  const def = (name: string, protocols: string[]): ProtocolDefinition => ({ name, protocols, create: () => { throw new Error('not created here'); } });

  it('serves the union of the registered protocol values', () => {
    const r = new ProtocolRegistry([def('mcp', ['mcp'])]).register(def('models', ['openai', 'kserve']));
    expect([...r.names()].sort()).toEqual(['kserve', 'mcp', 'openai']);
    expect(r.definitions().map((d) => d.name)).toEqual(['mcp', 'models']);
  });

  it('refuses a protocol value registered twice, and a definition serving none', () => {
    const r = new ProtocolRegistry([def('mcp', ['mcp'])]);
    expect(() => r.register(def('other-mcp', ['mcp']))).toThrow(/registered twice/);
    expect(() => r.register(def('empty', []))).toThrow(/serves no protocol/);
  });
});
