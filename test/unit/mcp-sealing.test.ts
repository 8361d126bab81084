/** Sealed values (session ids, requestState): round trip, rotation, domain separation, tampering; session ids restored. */
import { describe, expect, it } from 'vitest';
import { Sealer } from '../../src/protocols/mcp/sealer.ts';
import { McpSession } from '../../src/protocols/mcp/session.ts';
import { SessionTokens } from '../../src/protocols/mcp/session-token.ts';
import { McpUpstreams } from '../../src/protocols/mcp/upstream/registry.ts';
import { createLogger } from '../../src/telemetry/logger.ts';

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

describe('SessionTokens (sealed session ids)', () => {
  const log = createLogger('silent');
  const registry = new McpUpstreams(log);
  const hello = { protocolVersion: '2025-11-25', capabilities: { roots: {} }, clientInfo: { name: 'c', version: '1' } };
  const session = (principal: string | undefined, scope: string | undefined = undefined): McpSession =>
    new McpSession({ route: 'mcp', mount: '/mcp', scope, hello, protocolVersion: '2025-11-25', principal, registry, log });

  it('a session id restores what it was minted with, on any replica holding the key; the fingerprint is the same there', () => {
    const a = new SessionTokens([K1]);
    const b = new SessionTokens([K2, K1]);
    const s = session('spiffe://example.org/alice', 'files');
    const id = a.mint(s, 60_000);
    expect(s.expiresAt).toBeGreaterThan(Date.now());
    const r = b.restore(id, registry, log);
    expect('session' in r).toBe(true);
    const restored = (r as { session: McpSession }).session;
    expect(restored).toMatchObject({ id, route: 'mcp', mount: '/mcp', scope: 'files', principal: 'spiffe://example.org/alice', protocolVersion: '2025-11-25', expiresAt: s.expiresAt, hello });
    expect(restored.fingerprint).toBe(s.fingerprint);
    expect(b.fingerprint(id)).toBe(s.fingerprint);
    expect(s.fingerprint).not.toBe(a.fingerprint(a.mint(session('spiffe://example.org/alice'), 60_000)));
    // Anonymous and federated: no principal, no scope.
    const anon = (a.restore(a.mint(session(undefined), 60_000), registry, log) as { session: McpSession }).session;
    expect(anon.principal).toBeUndefined();
    expect(anon.scope).toBeUndefined();
  });

  it('refuses an expired id, one sealed with another key or for another purpose, and claims of another shape', () => {
    const tokens = new SessionTokens([K1]);
    expect(tokens.restore(tokens.mint(session('p'), -1), registry, log)).toEqual({ error: 'expired' });
    expect(tokens.restore(new SessionTokens([K2]).mint(session('p'), 60_000), registry, log)).toEqual({ error: 'invalid' });
    expect(tokens.restore(new Sealer('mcp-request-state', [K1]).seal({ v: 1, r: 'mcp', m: '/mcp', pv: 'x', c: {}, i: {}, e: Date.now() + 60_000 }), registry, log)).toEqual({ error: 'invalid' });
    // Sealed with the right key and purpose but not a session description of this version.
    const forger = new Sealer('mcp-session', [K1]);
    const claims = { v: 1, r: 'mcp', m: '/mcp', pv: '2025-11-25', c: {}, i: { name: 'c', version: '1' }, e: Date.now() + 60_000 };
    expect('session' in tokens.restore(forger.seal(claims), registry, log)).toBe(true);
    for (const bad of [{ ...claims, v: 2 }, { ...claims, r: 7 }, { ...claims, e: String(claims.e) }, 'not an object']) {
      expect(tokens.restore(forger.seal(bad), registry, log), JSON.stringify(bad)).toEqual({ error: 'invalid' });
    }
  });
});
