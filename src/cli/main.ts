/**
 * The `tollgate` command for operators. Subcommands register themselves in COMMANDS; each returns an exit code.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfigDir } from '../config/load.ts';
import { deploymentProfile, ProfileError, profileProblems } from '../config/profile.ts';
import { AUDIT_USAGE, audit } from './audit.ts';
import { LIMITS_USAGE, limitsCommand } from './limits.ts';
import { POLICY_USAGE, policyCommand } from './policy.ts';
import { SVID_USAGE, svid } from './svid.ts';

type Command = (args: string[]) => Promise<number>;

const USAGE = `Usage: tollgate <command> [options]

Commands:
  serve [--config DIR] [--port N] [--host H]   Run the gateway (default config: ./routes)
  config validate [DIR]                         Check a config directory; prints file:line: reason per problem
  audit verify DIR | audit query DIR ...        Check an audit log's chain and signatures; search it (audit help)
  svid mint --spiffe-id ID [--audience URI] [--ttl 1h] [--config DIR]
                                                Print a JWT-SVID of the dev trust domain the dev gateway accepts
${POLICY_USAGE}${LIMITS_USAGE}  help [COMMAND]                                This text, or one command's (also COMMAND --help)
  version                                       The version (also --version)
`;

/** What `tollgate <command> --help` prints: the command's own usage where it has one. */
const HELP: Readonly<Record<string, string>> = {
  audit: AUDIT_USAGE,
  svid: SVID_USAGE,
  policy: `Usage:\n${POLICY_USAGE}`,
  limits: `Usage: tollgate\n${LIMITS_USAGE}`,
};

/** `--help` or `-h` among a command's words (before a `--` that ends the options). */
function asksHelp(args: readonly string[]): boolean {
  for (const a of args) {
    if (a === '--') return false;
    if (a === '--help' || a === '-h') return true;
  }
  return false;
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
  return pkg.version ?? 'unknown';
}

async function serve(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { config: { type: 'string', short: 'c' }, port: { type: 'string', short: 'p' }, host: { type: 'string' } },
    allowPositionals: false,
  });
  const configDir = resolve(values.config ?? process.env.TOLLGATE_CONFIG ?? 'routes');
  // Loaded here, not at the top: the other subcommands (audit query...) should not pay for the whole gateway.
  const { startGateway } = await import('../main.ts');
  let running;
  try {
    running = await startGateway({
      configDir,
      port: values.port === undefined ? undefined : Number(values.port),
      host: values.host,
    });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`tollgate: invalid config in ${configDir}\n${err.message}\n`);
      return 1;
    }
    if (err instanceof ProfileError) {
      process.stderr.write(`tollgate: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  // The compile cache (bin/tollgate.mjs) is written now rather than at exit: a process that is killed still leaves
  // the next start a warm cache.
  process.getBuiltinModule('node:module').flushCompileCache?.();
  // `on`, not `once`: a second SIGHUP must reload again, not fall back to the default action (exit).
  process.on('SIGHUP', () => void running.reload());
  // The first SIGTERM/SIGINT drains; a second one exits at once, after sealing the audit log.
  let stopping = false;
  return new Promise<number>((done) => {
    const stop = (signal: 'SIGTERM' | 'SIGINT'): void => {
      if (stopping) {
        void running.abort().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
        return;
      }
      stopping = true;
      running.log.info({ signal }, 'shutting down');
      void running.shutdown().then(() => done(0));
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}

/** The protocol values the built-in adapters serve (loaded here only: other subcommands do not pay for them). */
async function servedProtocols(): Promise<ReadonlySet<string>> {
  const [{ ProtocolRegistry }, { BUILTIN_PROTOCOLS }] = await Promise.all([import('../gateway/registry.ts'), import('../protocols/builtin.ts')]);
  return new ProtocolRegistry(BUILTIN_PROTOCOLS).names();
}

async function config(args: string[]): Promise<number> {
  const [sub, dir] = args;
  if (sub !== 'validate') {
    process.stderr.write(USAGE);
    return 2;
  }
  const target = resolve(dir ?? 'routes');
  try {
    const s = loadConfigDir(target, process.env, await servedProtocols());
    // Under the production profile (the container image) a config that could not serve is not valid either.
    const problems = profileProblems(s, deploymentProfile());
    if (problems.length > 0) {
      process.stderr.write(problems.map((p) => `${target}: ${p} (TOLLGATE_PROFILE=production)\n`).join(''));
      return 1;
    }
    process.stdout.write(`${target}: OK (${s.routeSpecs.size} routes, ${s.backends.size} backends)\n`);
    return 0;
  } catch (err) {
    if (err instanceof ConfigError || err instanceof ProfileError) {
      process.stderr.write(`${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

export const COMMANDS: Record<string, Command> = {
  serve,
  config,
  audit,
  svid,
  policy: policyCommand,
  limits: limitsCommand,
  help: async ([name]) => {
    process.stdout.write((name !== undefined ? HELP[name] : undefined) ?? USAGE);
    return 0;
  },
  version: async () => {
    process.stdout.write(`tollgate ${version()}\n`);
    return 0;
  },
};

export async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  // `tollgate --help`, `tollgate -h`, `tollgate --version`: the spellings every CLI accepts, exit 0.
  const name = first === '--help' || first === '-h' ? 'help' : first === '--version' || first === '-V' ? 'version' : first;
  const command = COMMANDS[name ?? 'help'];
  if (!command) {
    process.stderr.write(`tollgate: unknown command ${name}\n${USAGE}`);
    return 2;
  }
  if (name !== 'help' && asksHelp(rest)) return COMMANDS.help!([name!]);
  try {
    return await command(rest);
  } catch (err) {
    process.stderr.write(`tollgate ${name}: ${(err as Error).message}\n`);
    return 1;
  }
}
