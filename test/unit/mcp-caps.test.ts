/**
 * The bounds behind issue 12's defect 2 that a process test cannot reach cheaply: replay buffers bounded in bytes
 * (ended streams forgotten first, then the oldest events), federated aliases bounded per server (one server cannot
 * crowd out another's), pending server-to-client requests bounded per session, and per-principal slots.
 */
import { describe, expect, it } from 'vitest';
import { FederatedNames } from '../../src/protocols/mcp/names.ts';
import { ReplayLog } from '../../src/protocols/mcp/replay.ts';
import { ServerRequests } from '../../src/protocols/mcp/server-requests.ts';
import { PrincipalSlots } from '../../src/core/slots.ts';
import type { SseWriter } from '../../src/server/sse.ts';

/** An SseWriter stand-in that only records (the replay log writes to it, it never reads it). */
function writer(): SseWriter {
  const sent: string[] = [];
  return { send: (d: string) => (sent.push(d), true), isOpen: true, end: () => {} } as unknown as SseWriter;
}

describe('replay buffers are bounded in bytes', () => {
  it('forgets ended streams first, then the oldest events of the others, and never grows past the bound', () => {
    const log = new ReplayLog(1000, 60_000, 1000);
    const done = log.open(writer());
    for (let i = 0; i < 5; i++) done.send('x'.repeat(100));
    done.end();
    expect(log.size).toBe(500);
    const live = log.open(writer());
    for (let i = 0; i < 8; i++) live.send(`${i}`.repeat(100));
    expect(log.size).toBeLessThanOrEqual(1000);
    // The ended stream went first: the live one still has all of its 800 bytes.
    expect(live.bytes).toBe(800);
    for (let i = 0; i < 10; i++) live.send('y'.repeat(100));
    expect(log.size).toBeLessThanOrEqual(1000);
    // Its oldest events are gone: resuming from the start is out of range, from the recent past it works.
    expect(() => live.check(0)).toThrow(/outside the replay window/);
    expect(() => live.check(17)).not.toThrow();
  });

  it('keeps nothing of one event larger than the whole bound (it was delivered live)', () => {
    const log = new ReplayLog(10, 60_000, 1024);
    const s = log.open(writer());
    s.send('z'.repeat(4096));
    expect(log.size).toBe(0);
  });
});

describe('federated aliases are bounded per server', () => {
  it('registers at most the cap of long names per server, each server on its own', () => {
    const names = new FederatedNames('__', () => 3);
    const long = (i: number) => `${'n'.repeat(130)}${i}`;
    const aliases = Array.from({ length: 5 }, (_, i) => names.publicName('a', long(i)));
    expect(aliases.slice(0, 3).map((x) => names.resolve(x))).toEqual([0, 1, 2].map((i) => ['a', long(i)]));
    // Past the cap a new alias does not resolve to the long name (the tool cannot be called by it)...
    expect(names.resolve(aliases[4]!)?.[1]).not.toBe(long(4));
    // ...and another server's aliases are unaffected.
    const b = names.publicName('b', long(9));
    expect(names.resolve(b)).toEqual(['b', long(9)]);
    // A name already registered keeps resolving (a list fetched again re-registers it).
    expect(names.resolve(names.publicName('a', long(0)))).toEqual(['a', long(0)]);
  });
});

describe('pending server-to-client requests are bounded per session', () => {
  it('refuses the newcomer past the cap and delivers answers only to ids it issued', () => {
    const r = new ServerRequests(2);
    const got: string[] = [];
    const a = r.outbound('{"jsonrpc":"2.0","id":1,"method":"sampling/createMessage"}', 1, (x) => got.push(x));
    const b = r.outbound('{"jsonrpc":"2.0","id":2,"method":"sampling/createMessage"}', 2, (x) => got.push(x));
    expect(a).toBeDefined();
    expect(b).toBeDefined();
    expect(r.outbound('{"jsonrpc":"2.0","id":3,"method":"ping"}', 3, () => {})).toBeUndefined();
    const idA = (JSON.parse(a!) as { id: string }).id;
    expect(idA).toMatch(/^tg-[A-Za-z0-9_-]{22}$/);
    expect(r.inbound('tg:1', '{"jsonrpc":"2.0","id":"tg:1","result":{}}')).toBe(false);
    expect(r.inbound(idA, `{"jsonrpc":"2.0","id":"${idA}","result":{}}`)).toBe(true);
    expect(got).toEqual(['{"jsonrpc":"2.0","id":1,"result":{}}']);
    // Answered once only.
    expect(r.inbound(idA, `{"jsonrpc":"2.0","id":"${idA}","result":{}}`)).toBe(false);
  });
});

describe('per-principal slots', () => {
  it('refuses a principal at its cap without touching another principal, and gives slots back once', () => {
    const slots = new PrincipalSlots();
    const r1 = slots.take('p', 2)!;
    slots.take('p', 2);
    expect(slots.take('p', 2)).toBeUndefined();
    expect(slots.take('q', 2)).toBeDefined();
    r1();
    r1();
    expect(slots.count('p')).toBe(1);
    expect(slots.take('p', 2)).toBeDefined();
  });
});
