/**
 * `tollgate svid mint`: issues a JWT-SVID from the embedded dev trust domain (key under the data dir, created on
 * first use, the same one the dev gateway trusts). Its `aud` names the gateway's resources (RFC 8707: `<base>/mcp`,
 * `<base>/mcp/<server>`...): every one of the config by default, or those `--resource` names. Prints the token
 * only, so it composes: `Authorization: Bearer $(npx tollgate svid mint --spiffe-id spiffe://dev.tollgate.local/me)`.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfigDir } from '../config/load.ts';
import { devEnabled, gatewayAudiences, listenerOf } from '../guards/identity/config.ts';
import { loadOrCreateDevAuthority, mintDevSvid, parseTtl } from '../guards/identity/dev.ts';
import { resourceBases } from '../guards/identity/policy.ts';
import { allResources } from '../guards/identity/resources.ts';

export const SVID_USAGE = `Usage: tollgate svid mint --spiffe-id spiffe://<dev trust domain>/<path> [--resource PATH]... [--audience URI]... [--ttl 1h] [--config DIR]
  Prints a JWT-SVID signed by the dev trust domain key in the config's data dir (default config: ./routes).
  Its aud names the canonical URI of each --resource (e.g. /mcp, /mcp/everything) under the gateway's base URL
  (identity.audiences[0], listener.publicUrl, or http://HOST:PORT with the PORT/HOST overrides); default: every
  resource of the config. --audience names audiences literally instead. --ttl defaults to 1h.
`;

export async function svid(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'mint') {
    process.stderr.write(SVID_USAGE);
    return 2;
  }
  const { values } = parseArgs({
    args: rest,
    options: {
      'spiffe-id': { type: 'string' },
      audience: { type: 'string', multiple: true },
      resource: { type: 'string', multiple: true },
      ttl: { type: 'string', default: '1h' },
      config: { type: 'string', short: 'c' },
    },
    allowPositionals: false,
  });
  if (!values['spiffe-id']) {
    process.stderr.write(`tollgate svid mint: --spiffe-id is required\n${SVID_USAGE}`);
    return 2;
  }
  const snapshot = loadConfigDir(resolve(values.config ?? process.env.TOLLGATE_CONFIG ?? 'routes'));
  const identity = snapshot.gateway.identity;
  if (!devEnabled(identity)) {
    process.stderr.write('tollgate svid mint: the dev trust domain is not enabled in this config (identity.dev.enabled)\n');
    return 1;
  }
  const ttl = parseTtl(values.ttl);
  if (ttl > identity.dev.maxTtlSeconds) {
    process.stderr.write(`tollgate svid mint: ttl ${ttl}s exceeds identity.dev.maxTtlSeconds (${identity.dev.maxTtlSeconds}s)\n`);
    return 2;
  }
  const authority = loadOrCreateDevAuthority(snapshot.dataDir, identity.dev.trustDomain);
  const base = resourceBases(gatewayAudiences(identity, listenerOf(snapshot.gateway.listener)))[0]!;
  const resources = values.resource?.length ? values.resource.map((r) => (r === '/' ? '' : r.replace(/\/+$/, ''))) : allResources(snapshot);
  const audiences = values.audience?.length ? values.audience : resources.map((r) => `${base}${r}`);
  process.stdout.write(`${mintDevSvid(authority, { spiffeId: values['spiffe-id'], audiences, ttlSeconds: ttl })}\n`);
  return 0;
}
