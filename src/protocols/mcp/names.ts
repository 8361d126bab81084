/**
 * Federated names. Tools and prompts of server `s` appear as `s<sep><name>` (default separator `__`), kept within
 * MCP's tool-name rule (1..128 of [A-Za-z0-9_.-]); resource URIs of server `s` appear as
 * `tollgate://s/<original-uri>` so two servers' URIs never collide and the owner is recoverable from the URI alone.
 */
import { createHash } from 'node:crypto';

const MAX_NAME = 128;
const VALID = /^[A-Za-z0-9_.-]{1,128}$/;

export class FederatedNames {
  readonly separator: string;
  /**
   * Shortened names (over 128 chars) -> [server, original], per server; filled whenever a list is fetched. Bounded
   * per server (mcp.limits.aliasesPerServer): an upstream listing ever more long names cannot grow gateway memory
   * without bound, nor crowd out another server's aliases; past the bound a new long name cannot be called.
   */
  private readonly aliases = new Map<string, Map<string, readonly [string, string]>>();
  /** Every server's aliases in one map: resolving a name is one lookup whatever the number of servers. */
  private readonly owners = new Map<string, readonly [string, string]>();
  private readonly cap: () => number;

  constructor(separator = '__', cap: () => number = () => 4096) {
    this.separator = separator;
    this.cap = cap;
  }

  /** The public name of `name` on `server`. */
  publicName(server: string, name: string): string {
    const full = `${server}${this.separator}${name}`;
    if (full.length <= MAX_NAME && VALID.test(full)) return full;
    // Too long or with characters outside the rule: keep a readable prefix and a hash of the original.
    const hash = createHash('sha256').update(`${server}\0${name}`).digest('base64url').slice(0, 10).replace(/[^A-Za-z0-9]/g, 'x');
    const safe = name.replace(/[^A-Za-z0-9_.-]/g, '_');
    const room = MAX_NAME - server.length - this.separator.length - hash.length - 1;
    const alias = `${server}${this.separator}${safe.slice(0, Math.max(1, room))}_${hash}`;
    let own = this.aliases.get(server);
    if (!own) this.aliases.set(server, (own = new Map()));
    if (own.has(alias) || own.size < this.cap()) {
      const owner = [server, name] as const;
      own.set(alias, owner);
      // The first server to claim an alias keeps it (as when each server's map was searched in turn).
      if (!this.owners.has(alias)) this.owners.set(alias, owner);
    }
    return alias;
  }

  /** Splits a public name into [server, original name], or undefined if it names no server. */
  resolve(publicName: string): readonly [string, string] | undefined {
    const alias = this.owners.get(publicName);
    if (alias) return alias;
    const at = publicName.indexOf(this.separator);
    if (at <= 0) return undefined;
    return [publicName.slice(0, at), publicName.slice(at + this.separator.length)];
  }
}

const URI_PREFIX = 'tollgate://';

export function publicUri(server: string, uri: string): string {
  return `${URI_PREFIX}${server}/${uri}`;
}

export function resolveUri(uri: string): readonly [string, string] | undefined {
  if (!uri.startsWith(URI_PREFIX)) return undefined;
  const slash = uri.indexOf('/', URI_PREFIX.length);
  if (slash <= URI_PREFIX.length) return undefined;
  return [uri.slice(URI_PREFIX.length, slash), uri.slice(slash + 1)];
}
