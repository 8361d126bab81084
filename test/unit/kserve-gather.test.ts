/**
 * Binary infer bodies gathered into one write (src/protocols/kserve/request.ts gather): small declared bodies come
 * back whole, large or undeclared ones are left to stream, the process-wide allowance refuses a newcomer (it streams)
 * instead of touching bodies already held, and is given back on release and when the client goes away mid-body.
 */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { COALESCE_BODY_BYTES, COALESCE_TOTAL_BYTES, gather } from '../../src/protocols/kserve/request.ts';

function body(bytes: number, pieces = 3): { stream: PassThrough; data: Buffer } {
  const data = Buffer.alloc(bytes, 7);
  const stream = new PassThrough();
  const step = Math.ceil(bytes / pieces);
  let at = 0;
  const next = (): void => {
    if (at >= bytes) return void stream.end();
    stream.write(data.subarray(at, at + step));
    at += step;
    setImmediate(next);
  };
  setImmediate(next);
  return { stream, data };
}

describe('gather', () => {
  it('returns a small declared body whole, arrived in pieces', async () => {
    const { stream, data } = body(128 * 1024);
    const got = await gather(stream, data.length);
    expect(got).toBeDefined();
    expect(got!.data.equals(data)).toBe(true);
    got!.release();
  });

  it('leaves an undeclared or large body to stream (nothing read)', async () => {
    const small = body(1000).stream;
    expect(await gather(small, undefined)).toBeUndefined();
    const large = body(COALESCE_BODY_BYTES + 1).stream;
    expect(await gather(large, COALESCE_BODY_BYTES + 1)).toBeUndefined();
    // Nothing was read: the stream still flows to whoever pipes it.
    expect(large.readableFlowing).not.toBe(true);
  });

  it('a full allowance refuses the newcomer (it streams); bodies held keep theirs; release gives it back', async () => {
    const held: Array<{ data: Buffer; release: () => void }> = [];
    const each = COALESCE_BODY_BYTES;
    for (let i = 0; i < COALESCE_TOTAL_BYTES / each; i++) {
      const { stream } = body(each, 1);
      const got = await gather(stream, each);
      expect(got).toBeDefined();
      held.push(got!);
    }
    expect(await gather(body(10, 1).stream, 10)).toBeUndefined();
    for (const h of held) expect(h.data.length).toBe(each);
    held.pop()!.release();
    const again = await gather(body(10, 1).stream, 10);
    expect(again?.data.length).toBe(10);
    again!.release();
    for (const h of held) h.release();
  });

  it('a body that fails mid-way (client gone) rejects and gives its allowance back', async () => {
    const stream = new PassThrough();
    const pending = gather(stream, COALESCE_BODY_BYTES);
    stream.write(Buffer.alloc(10));
    stream.destroy(new Error('client gone'));
    await expect(pending).rejects.toThrow(/client gone/);
    // The whole allowance is free again: it holds as many full-size bodies as it did before.
    const held: Array<{ release: () => void }> = [];
    for (let i = 0; i < COALESCE_TOTAL_BYTES / COALESCE_BODY_BYTES; i++) {
      const got = await gather(body(COALESCE_BODY_BYTES, 1).stream, COALESCE_BODY_BYTES);
      expect(got).toBeDefined();
      held.push(got!);
    }
    for (const h of held) h.release();
  });
});
