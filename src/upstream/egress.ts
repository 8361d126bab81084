/**
 * Guarding URLs that callers choose and something behind the gateway will connect to (A2A push-notification
 * webhooks): server-side request forgery protection.
 *
 * A URL passes only when its scheme is https (http only when allowed), its host is on the allow-list (exact, or
 * `*.suffix`), and every address the host resolves to is public: loopback, unspecified (0.0.0.0, ::), private
 * (RFC 1918, fc00::/7), shared (100.64/10), link-local (169.254/16 with the 169.254.169.254 metadata service,
 * fe80::/10), multicast, reserved, and IPv4-mapped forms of these are refused. The resolver is injected, so tests
 * prove the refusal happens before any connection (no test ever sends traffic to a non-loopback address).
 */
import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';

const FORBIDDEN = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  FORBIDDEN.addSubnet(net, bits, 'ipv4');
}
for (const [net, bits] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
  ['64:ff9b::', 96],
  ['2001:db8::', 32],
  ['100::', 64],
] as const) {
  FORBIDDEN.addSubnet(net, bits, 'ipv6');
}

/** True for an address no caller-chosen URL may reach (see the module comment). */
export function isForbiddenAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return FORBIDDEN.check(address, 'ipv4');
  if (family !== 6) return true;
  const lower = address.toLowerCase();
  // IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible forms: judge the IPv4 address.
  const mapped = /^(?:0*:)*(?:ffff:)?(\d+\.\d+\.\d+\.\d+)$/.exec(lower.replace(/^::/, '0:'));
  if (mapped !== null) return FORBIDDEN.check(mapped[1]!, 'ipv4');
  const hexMapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(lower);
  if (hexMapped !== null) {
    const hi = parseInt(hexMapped[1]!, 16);
    const lo = parseInt(hexMapped[2]!, 16);
    return FORBIDDEN.check(`${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`, 'ipv4');
  }
  return FORBIDDEN.check(address, 'ipv6');
}

/** Resolves a host name to every address it has (dns.lookup's answers; injected in tests). */
export type Resolver = (host: string) => Promise<readonly string[]>;

export const systemResolver: Resolver = async (host) => (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);

export interface EgressPolicy {
  /** Hosts allowed: exact names, or `*.example.com` for any subdomain. Empty: nothing is allowed. */
  readonly allowHosts: readonly string[];
  readonly allowHttp: boolean;
}

/** Why a URL is refused (undefined: allowed). */
export async function refuseUrl(raw: string, policy: EgressPolicy, resolve: Resolver = systemResolver): Promise<string | undefined> {
  const r = await checkUrl(raw, policy, resolve);
  return 'error' in r ? r.error : undefined;
}

/**
 * The URL checked (see the module comment), with the address to connect to: a connection made to exactly that
 * address (not to a second lookup of the name) cannot be turned to another one by a DNS answer that changes.
 */
export async function checkUrl(raw: string, policy: EgressPolicy, resolve: Resolver = systemResolver): Promise<{ url: URL; address: string } | { error: string }> {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { error: 'not a valid URL' };
  }
  if (url.protocol !== 'https:' && !(policy.allowHttp && url.protocol === 'http:')) return { error: `scheme ${url.protocol.slice(0, -1)} is not allowed (https only)` };
  if (url.username !== '' || url.password !== '') return { error: 'credentials in the URL are not allowed' };
  const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase().replace(/\.$/, '');
  if (isIP(host) !== 0) {
    if (isForbiddenAddress(host)) return { error: `address ${host} is not reachable from here (loopback, private, link-local or reserved)` };
  }
  if (!hostAllowed(host, policy.allowHosts)) return { error: `host ${host} is not on the allow-list` };
  if (isIP(host) !== 0) return { url, address: host };
  let addresses: readonly string[];
  try {
    addresses = await resolve(host);
  } catch {
    return { error: `host ${host} does not resolve` };
  }
  if (addresses.length === 0) return { error: `host ${host} does not resolve` };
  const bad = addresses.find((a) => isForbiddenAddress(a));
  if (bad !== undefined) return { error: `host ${host} resolves to ${bad} (loopback, private, link-local or reserved)` };
  return { url, address: addresses[0]! };
}

function hostAllowed(host: string, allow: readonly string[]): boolean {
  for (const pattern of allow) {
    const p = pattern.toLowerCase();
    if (p.startsWith('*.')) {
      if (host.endsWith(p.slice(1)) && host.length > p.length - 1) return true;
    } else if (host === p) return true;
  }
  return false;
}
