/**
 * The push-notification URL guard (src/upstream/egress.ts): scheme, allow-list, and every address a host resolves
 * to. The resolver is injected: names that resolve to private, metadata or loopback addresses are refused without
 * any lookup leaving the process, and a connection is never attempted (the guard never connects at all).
 */
import { describe, expect, test } from 'vitest';
import { isForbiddenAddress, refuseUrl, type Resolver } from '../../src/upstream/egress.ts';

const policy = { allowHosts: ['hooks.example.com', '*.callbacks.example.org'], allowHttp: false };

/** A resolver from a fixed table that records what it was asked. */
function table(entries: Record<string, string[]>): Resolver & { asked: string[] } {
  const asked: string[] = [];
  const r = (async (host: string) => {
    asked.push(host);
    const a = entries[host];
    if (a === undefined) throw Object.assign(new Error('ENOTFOUND'), { code: 'ENOTFOUND' });
    return a;
  }) as unknown as Resolver & { asked: string[] };
  r.asked = asked;
  return r;
}

describe('isForbiddenAddress', () => {
  test.each(['127.0.0.1', '127.8.9.1', '0.0.0.0', '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '169.254.169.254', '169.254.0.1', '100.64.0.1', '224.0.0.1', '255.255.255.255', '::1', '::', 'fe80::1', 'fc00::1', 'fd12:3456::1', '::ffff:127.0.0.1', '::ffff:10.0.0.1', '::ffff:a9fe:a9fe', 'not-an-ip'])('%s is forbidden', (a) => {
    expect(isForbiddenAddress(a)).toBe(true);
  });
  test.each(['93.184.216.34', '8.8.8.8', '172.32.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8'])('%s is public', (a) => {
    expect(isForbiddenAddress(a)).toBe(false);
  });
});

describe('refuseUrl', () => {
  test('a listed https host resolving only to public addresses passes', async () => {
    const r = table({ 'hooks.example.com': ['93.184.216.34', '2606:2800:220:1::1'] });
    expect(await refuseUrl('https://hooks.example.com/cb', policy, r)).toBeUndefined();
    expect(await refuseUrl('https://a.callbacks.example.org/x', policy, table({ 'a.callbacks.example.org': ['8.8.4.4'] }))).toBeUndefined();
    expect(r.asked).toEqual(['hooks.example.com']);
  });

  test.each([
    ['a name that resolves to a private address', 'https://hooks.example.com/cb', { 'hooks.example.com': ['10.0.0.5'] }, /resolves to 10\.0\.0\.5/],
    ['a name with one private address among public ones', 'https://hooks.example.com/cb', { 'hooks.example.com': ['93.184.216.34', '192.168.0.10'] }, /resolves to 192\.168\.0\.10/],
    ['a name that resolves to the metadata service', 'https://hooks.example.com/cb', { 'hooks.example.com': ['169.254.169.254'] }, /169\.254\.169\.254/],
    ['a name that resolves to loopback over IPv6', 'https://hooks.example.com/cb', { 'hooks.example.com': ['::1'] }, /::1/],
    ['a name that does not resolve', 'https://hooks.example.com/cb', {}, /does not resolve/],
    ['the suffix pattern alone', 'https://callbacks.example.org/cb', { 'callbacks.example.org': ['8.8.8.8'] }, /not on the allow-list/],
    ['http', 'http://hooks.example.com/cb', { 'hooks.example.com': ['8.8.8.8'] }, /https only/],
    ['a file URL', 'file:///etc/passwd', {}, /https only/],
    ['garbage', 'not a url', {}, /not a valid URL/],
    ['the metadata literal', 'https://169.254.169.254/', {}, /not reachable/],
    ['0.0.0.0', 'https://0.0.0.0/', {}, /not reachable/],
    ['a decimal-encoded loopback', 'https://2130706433/', {}, /not reachable/],
  ] as const)('%s is refused', async (_what, url, entries, why) => {
    expect(await refuseUrl(url, policy, table(entries as Record<string, string[]>))).toMatch(why);
  });

  test('an unlisted host is refused without a lookup', async () => {
    const r = table({ 'evil.example.net': ['8.8.8.8'] });
    expect(await refuseUrl('https://evil.example.net/', policy, r)).toMatch(/allow-list/);
    expect(r.asked).toEqual([]);
  });

  test('allowHttp lets http through for listed public hosts only', async () => {
    const p = { ...policy, allowHttp: true };
    expect(await refuseUrl('http://hooks.example.com/cb', p, table({ 'hooks.example.com': ['8.8.8.8'] }))).toBeUndefined();
    expect(await refuseUrl('http://hooks.example.com/cb', p, table({ 'hooks.example.com': ['127.0.0.1'] }))).toMatch(/127\.0\.0\.1/);
  });
});
