/**
 * Wiring only: load config, build the gateway and its services, listen, reload on change, drain on SIGTERM.
 */
import type { AddressInfo } from 'node:net';
import { loadConfigDir, type ConfigSnapshot } from './config/load.ts';
import { assertProfile, deploymentProfile, profileProblems } from './config/profile.ts';
import { watchConfig, type ConfigWatcher } from './config/watch.ts';
import type { GuardServices } from './core/pipeline.ts';
import type { ProtocolDefinition } from './gateway/adapter.ts';
import { Gateway } from './gateway/gateway.ts';
import { ProtocolRegistry } from './gateway/registry.ts';
import { createServices, type Services } from './gateway/services.ts';
import { createConsole, type ConsoleHandle } from './console/index.ts';
import { BUILTIN_PROTOCOLS } from './protocols/builtin.ts';
import { adminListener } from './server/admin-config.ts';
import { AdminServer } from './server/admin-listener.ts';
import { HttpServer } from './server/http.ts';
import { createLogger, flushLogs, type Logger } from './telemetry/logger.ts';

export interface StartOptions {
  readonly configDir: string;
  readonly port?: number | undefined;
  readonly host?: string | undefined;
  /** Overrides the configured log level (tests use 'silent'). */
  readonly logLevel?: string | undefined;
  readonly watch?: boolean;
  /** Protocols served besides the built-in ones (tests register their own adapters this way). */
  readonly protocols?: readonly ProtocolDefinition[];
  /** Guard services added after policy, before audit (tests add their own guards this way). */
  readonly guards?: readonly GuardServices[];
}

export interface RunningGateway {
  readonly gateway: Gateway;
  readonly server: HttpServer;
  readonly address: AddressInfo;
  readonly url: string;
  /** The admin listener's base URL (operational endpoints and the console), when one is configured. */
  readonly adminUrl: string | undefined;
  readonly log: Logger;
  readonly watcher: ConfigWatcher;
  /** SIGHUP: reloads the config directory and rebuilds/reloads the policy, changed or not. */
  reload(): Promise<void>;
  /** The long-lived guard services (identity, ...). */
  readonly services: Services;
  /** Drains in-flight work up to the configured deadline, then closes everything. */
  shutdown(): Promise<void>;
  /** Skips the drain: flushes and seals the audit log only (a second SIGTERM/SIGINT); the caller exits after. */
  abort(): Promise<void>;
}

export async function startGateway(opts: StartOptions): Promise<RunningGateway> {
  // A given protocol of a built-in's name takes its place (tests build an adapter with injected dependencies).
  const given = opts.protocols ?? [];
  const registry = new ProtocolRegistry(BUILTIN_PROTOCOLS.filter((b) => !given.some((p) => p.name === b.name)));
  for (const p of given) registry.register(p);
  const served = registry.names();
  const load = (dir: string): ConfigSnapshot => loadConfigDir(dir, process.env, served);
  const snapshot = load(opts.configDir);
  // Before anything is created: the production profile (the container image) never serves without a real issuer.
  const profile = deploymentProfile();
  assertProfile(snapshot, profile);
  const level = opts.logLevel ?? process.env.TOLLGATE_LOG_LEVEL ?? snapshot.gateway.log.level;
  const log = createLogger(level as Parameters<typeof createLogger>[0]);
  const services = await createServices(snapshot, log, { guards: opts.guards });
  const gateway = new Gateway(snapshot, {
    log,
    protocols: registry.definitions(),
    services: services.guards,
    telemetry: services.telemetry,
    credentials: services.credentials,
    store: services.store,
    policy: () => services.policy.status(),
  });
  const server = new HttpServer({ gateway, publicExtensions: services.publicExtensions });
  const envPort = process.env.PORT === undefined || process.env.PORT === '' ? undefined : Number(process.env.PORT);
  const port = opts.port ?? envPort ?? snapshot.gateway.listener.port;
  const host = opts.host ?? process.env.HOST ?? snapshot.gateway.listener.host;
  const address = await server.listen(port, host);
  // The admin listener (its own port, loopback by default): the console is served there and nowhere else.
  const adminAt = adminListener(snapshot.gateway.admin, port);
  const consoleWanted = snapshot.gateway.admin.console.enabled;
  if (adminAt === undefined) {
    await server.drain(0);
    await services.close();
    throw new Error(`invalid admin listener port: TOLLGATE_ADMIN_PORT=${process.env.TOLLGATE_ADMIN_PORT ?? ''} (an integer 0-65535)`);
  }
  let adminServer: AdminServer | undefined;
  let consoleHandle: ConsoleHandle | undefined;
  let adminUrl: string | undefined;
  if (adminAt !== undefined) {
    consoleHandle = consoleWanted ? createConsole(gateway, services) : undefined;
    adminServer = new AdminServer(gateway, consoleHandle ? [...services.admin, consoleHandle.extension] : services.admin);
    const a = await adminServer.listen(adminAt.port, adminAt.host);
    adminUrl = `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
    log.info({ admin: adminUrl, console: consoleWanted }, 'admin listener');
  }
  // The default audience and resource URIs follow where the listener really is (PORT/HOST, an ephemeral port).
  services.identity.setListenerAddress({ host: address.address, port: address.port });
  gateway.refresh();
  // A reload the profile forbids (e.g. one that drops the last issuer) is refused like an invalid file.
  const apply = (s: ConfigSnapshot): void => {
    const problems = profileProblems(s, profile);
    if (problems.length === 0) return gateway.apply(s);
    for (const reason of problems) log.error({ reason }, 'config rejected by the production profile; previous config stays in force');
    gateway.rejectConfig(problems.map((message) => ({ file: s.dir, line: 0, column: 0, message })));
  };
  const watcher =
    opts.watch === false ? { close: () => {}, reload: () => false } : watchConfig(opts.configDir, apply, log, (issues) => gateway.rejectConfig(issues), { load });
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  log.info({ address: `${shown}:${address.port}`, admin: adminUrl?.replace(/^http:\/\//, ''), config: snapshot.dir, revision: snapshot.revision }, 'tollgate listening');
  let stopping: Promise<void> | undefined;
  return {
    gateway,
    server,
    address,
    url: `http://${shown}:${address.port}`,
    adminUrl,
    log,
    watcher,
    services,
    reload: async () => {
      log.info('reload requested (SIGHUP)');
      watcher.reload();
      const errors = await services.policy.reload();
      for (const reason of errors) log.error({ reason }, 'policy reload refused; the policy in force stays');
    },
    abort: async () => {
      log.warn('second stop signal: exiting without draining');
      await services.sealAudit();
      flushLogs();
    },
    shutdown: () => {
      stopping ??= (async () => {
        watcher.close();
        const deadline = gateway.state().snapshot.gateway.shutdown.drainMs;
        log.info({ inFlight: server.inFlight, deadlineMs: deadline }, 'draining');
        const cut = await server.drain(deadline);
        if (cut > 0) log.warn({ cut }, 'drain deadline reached; remaining exchanges closed');
        consoleHandle?.close();
        await adminServer?.close();
        await gateway.close();
        await services.close();
        log.info('stopped');
        flushLogs();
      })();
      return stopping;
    },
  };
}
