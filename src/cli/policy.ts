/**
 * `tollgate policy build` and `tollgate policy test`: compile the Rego in policies/ to a WASM bundle (with the
 * capabilities of the WASM runtime, so a builtin it lacks fails here and not at call time) and run its unit tests.
 * Both need opa ($TOLLGATE_OPA or PATH); serving a built bundle does not.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfigDir } from '../config/load.ts';
import { configuredEntrypoints, DEFAULT_ENTRYPOINTS } from '../guards/policy/config.ts';
import { readBundle } from '../guards/policy/bundle.ts';
import { PolicyEngine } from '../guards/policy/engine.ts';
import { buildWasmBundle, findOpa, testPolicies } from '../guards/policy/opa.ts';

export const POLICY_USAGE = `  policy build [--dir policies] [--output bundles/tollgate.tar.gz] [--config routes] [-e ENTRYPOINT]...
              [--signing-key FILE --signing-alg RS256 [--key-id ID]]
                                                Compile Rego to a WASM bundle (opa build -t wasm)
  policy test [--dir policies] [-v]             Run the Rego unit tests (opa test)
`;

const DEFAULT_DIR = 'policies';
const DEFAULT_OUTPUT = 'bundles/tollgate.tar.gz';

function needOpa(): string | undefined {
  const opa = findOpa();
  if (!opa) process.stderr.write('tollgate policy: opa not found: put it on PATH or set TOLLGATE_OPA (scripts/install-tools.sh builds it)\n');
  return opa;
}

/** Entrypoints to compile: those the config names (gateway level and route overrides), else the defaults. */
function entrypointsFrom(configDir: string | undefined): string[] {
  const dir = configDir ?? process.env.TOLLGATE_CONFIG ?? (existsSync('routes') ? 'routes' : undefined);
  const d = DEFAULT_ENTRYPOINTS.tollgate;
  if (dir === undefined) return [d.decision, d.visible];
  let snapshot;
  try {
    snapshot = loadConfigDir(dir);
  } catch (err) {
    if (err instanceof ConfigError) throw new Error(`invalid config in ${resolve(dir)}:\n${err.message}`);
    throw err;
  }
  const spec = snapshot.gateway.policy;
  if (spec === undefined) return [d.decision, d.visible];
  return configuredEntrypoints(spec, snapshot.routeSpecs.values());
}

async function build(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      dir: { type: 'string', short: 'd' },
      output: { type: 'string', short: 'o' },
      config: { type: 'string', short: 'c' },
      entrypoint: { type: 'string', short: 'e', multiple: true },
      'signing-key': { type: 'string' },
      'signing-alg': { type: 'string' },
      'key-id': { type: 'string' },
    },
    allowPositionals: false,
  });
  const opa = needOpa();
  if (!opa) return 1;
  const dir = resolve(values.dir ?? DEFAULT_DIR);
  const output = resolve(values.output ?? DEFAULT_OUTPUT);
  const entrypoints = values.entrypoint ?? entrypointsFrom(values.config);
  const signingKey = values['signing-key'];
  mkdirSync(dirname(output), { recursive: true });
  const built = await buildWasmBundle({
    opa,
    dir,
    entrypoints,
    output,
    signing: signingKey === undefined ? undefined : { key: signingKey, algorithm: values['signing-alg'] ?? 'RS256', keyId: values['key-id'] },
  });
  if (!built.ok) {
    process.stderr.write(`tollgate policy build: ${dir}\n${built.error}\n`);
    return 1;
  }
  // Load what was built, as the gateway will, so a bundle that cannot serve is caught here.
  const bytes = readFileSync(output);
  const engine = await PolicyEngine.load(await readBundle(bytes, { source: output }), { initialPages: 16, maxPages: 512 });
  const missing = entrypoints.filter((e) => !engine.has(e));
  if (missing.length > 0) {
    process.stderr.write(`tollgate policy build: the bundle lacks ${missing.join(', ')}\n`);
    return 1;
  }
  process.stdout.write(`${output}: revision ${built.revision}, entrypoints ${entrypoints.join(', ')}, ${bytes.length} bytes\n`);
  return 0;
}

async function test(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { dir: { type: 'string', short: 'd' }, verbose: { type: 'boolean', short: 'v' } },
    allowPositionals: false,
  });
  const opa = needOpa();
  if (!opa) return 1;
  const r = await testPolicies(opa, resolve(values.dir ?? DEFAULT_DIR), values.verbose ? ['-v'] : []);
  process.stdout.write(r.stdout);
  process.stderr.write(r.stderr);
  return r.code === 0 ? 0 : 1;
}

/** `tollgate policy <build|test>`. */
export async function policyCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'build') return build(rest);
  if (sub === 'test') return test(rest);
  process.stderr.write(`Usage:\n${POLICY_USAGE}`);
  return 2;
}
