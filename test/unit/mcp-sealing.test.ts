/** Sealed values (session ids, requestState): round trip, rotation, domain separation, tampering. */
import { describe, expect, it } from 'vitest';
import { Sealer } from '../../src/protocols/mcp/sealer.ts';

const K1 = { id: 'k1', secret: 'first-key-0123456789abcdef' };
const K2 = { id: 'k2', secret: 'second-key-0123456789abcdef' };

describe('Sealer', () => {
  it('opens what it sealed, and every seal is different', () => {
    const s = new Sealer('mcp-session', [K1]);
    const a = s.seal({ r: 'mcp', p: 'spiffe://x/y' });
    const b = s.seal({ r: 'mcp', p: 'spiffe://x/y' });
    expect(a).not.toBe(b);
    expect(a.startsWith('k1.')).toBe(true);
    expect(s.open(a)).toEqual({ r: 'mcp', p: 'spiffe://x/y' });
    expect(a).not.toContain('spiffe'); // encrypted, not just signed
  });

  it('never repeats an IV (AES-GCM), also after its pool of random IVs is used up and refilled', () => {
    const s = new Sealer('mcp-session', [K1]);
    const ivs = new Set<string>();
    const n = 2_000; // several refills of the pooled IVs
    for (let i = 0; i < n; i++) ivs.add(Buffer.from(s.seal({ i }).split('.')[1]!, 'base64url').subarray(0, 12).toString('hex'));
    expect(ivs.size).toBe(n);
  });

  it('rotates: the first key seals, every key opens; a dropped key no longer opens', () => {
    const old = new Sealer('mcp-session', [K1]);
    const rotated = new Sealer('mcp-session', [K2, K1]);
    const dropped = new Sealer('mcp-session', [K2]);
    const sealedOld = old.seal({ v: 1 });
    expect(rotated.open(sealedOld)).toEqual({ v: 1 });
    expect(rotated.seal({ v: 2 }).startsWith('k2.')).toBe(true);
    expect(dropped.open(sealedOld)).toBeUndefined();
    expect(old.open(rotated.seal({ v: 2 }))).toBeUndefined();
  });

  it('keeps purposes apart: a session id is not a valid requestState', () => {
    const sessions = new Sealer('mcp-session', [K1]);
    const states = new Sealer('mcp-request-state', [K1]);
    expect(states.open(sessions.seal({ x: 1 }))).toBeUndefined();
  });

  it('refuses tampered, truncated, foreign-key, oversized and garbage values', () => {
    const s = new Sealer('mcp-session', [K1]);
    const good = s.seal({ p: 'alice' });
    const body = good.slice(3);
    const flipped = `k1.${body.slice(0, 10)}${body[10] === 'A' ? 'B' : 'A'}${body.slice(11)}`;
    for (const bad of [flipped, good.slice(0, -5), `k2.${body}`, `k1.${'A'.repeat(9000)}`, 'k1.', '.abc', 'nodot', '', 'k1.!!!!']) {
      expect(s.open(bad)).toBeUndefined();
    }
  });

  it('uses a random per-process key when none is configured', () => {
    const a = new Sealer('mcp-session', []);
    const b = new Sealer('mcp-session', []);
    expect(a.ephemeral).toBe(true);
    expect(a.open(a.seal({ ok: true }))).toEqual({ ok: true });
    expect(b.open(a.seal({ ok: true }))).toBeUndefined();
  });
});
