/**
 * `tollgate limits show`: current usage and what is left per limit, for a principal and/or a team. Reads the shared
 * Redis named by the config directly, or asks a running gateway's admin endpoint (the only way when counters are
 * in the gateway's memory).
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfigDir } from '../config/load.ts';
import type { LimitsReport } from '../guards/limits/show.ts';

export const LIMITS_USAGE = `  limits show [--principal ID] [--team T] [--config DIR | --url ADMIN_URL] [--format table|json]
                                                Usage and what is left per rate limit and budget
`;

export async function limitsCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'show') {
    process.stderr.write(`Usage: tollgate\n${LIMITS_USAGE}`);
    return 2;
  }
  const { values } = parseArgs({
    args: rest,
    options: {
      principal: { type: 'string' },
      team: { type: 'string' },
      config: { type: 'string', short: 'c' },
      url: { type: 'string' },
      token: { type: 'string' },
      format: { type: 'string', default: 'table' },
    },
    allowPositionals: false,
  });
  if (values.format !== 'table' && values.format !== 'json') throw new Error('--format is table or json');
  const filter = { principal: values.principal, team: values.team };
  const report = values.url !== undefined ? await fromAdmin(values.url, filter, values.token ?? process.env.TOLLGATE_ADMIN_TOKEN) : await fromStore(values.config, filter);
  const { formatReport } = await import('../guards/limits/show.ts');
  process.stdout.write(values.format === 'json' ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
  return 0;
}

async function fromAdmin(url: string, filter: { principal?: string | undefined; team?: string | undefined }, token: string | undefined): Promise<LimitsReport> {
  const u = new URL('/limits', url);
  if (filter.principal !== undefined) u.searchParams.set('principal', filter.principal);
  if (filter.team !== undefined) u.searchParams.set('team', filter.team);
  const res = await fetch(u, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });
  const body = await res.text();
  if (!res.ok) throw new Error(`${u.origin}/limits answered ${res.status}: ${body.slice(0, 500)}`);
  return JSON.parse(body) as LimitsReport;
}

async function fromStore(dir: string | undefined, filter: { principal?: string | undefined; team?: string | undefined }): Promise<LimitsReport> {
  const configDir = resolve(dir ?? process.env.TOLLGATE_CONFIG ?? 'routes');
  const snapshot = loadConfigDir(configDir);
  if (snapshot.gateway.redis === undefined) {
    throw new Error(`${configDir} configures no redis: the counters live in the gateway's memory; ask it with --url <admin URL>`);
  }
  const { RedisStore } = await import('../store/redis.ts');
  const { LimitsService } = await import('../guards/limits/service.ts');
  const { createLogger } = await import('../telemetry/logger.ts');
  const log = createLogger('silent');
  const store = new RedisStore(snapshot.gateway.redis, snapshot.dir, log);
  try {
    await store.waitReady(snapshot.gateway.redis.connectTimeoutMs + 3_000);
    const service = new LimitsService({ log, store });
    service.compile(snapshot);
    return await service.report(filter);
  } finally {
    await store.close();
  }
}
