/**
 * Import rules of src/ (run by `npm test` through scripts/test.sh, and proven to catch a wrong import by
 * test/unit/dependency-rules.test.ts). The layers, from the top:
 *
 *   main.ts, cli/                wiring: may import anything
 *   protocols/<name>/            one adapter per protocol; protocols never import each other
 *   gateway/                     registry, lifecycle, dispatch: knows no protocol
 *   guards/, audit/, telemetry/  see Calls, never a wire format
 *   upstream/, server/, wire/    forwarding, listening, shared wire formats (JSON-RPC, SSE, error shapes)
 *   core/, config/, store/       Call, Pipeline, errors; config schema and loader; Redis
 *
 * Layering rules cover type-only imports too (a type names what a module knows); the cycle rule covers runtime
 * imports only (Node strips types, so a type-only cycle cannot deadlock module initialisation).
 */
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'A runtime import cycle makes module initialisation order-dependent; split the shared part out.',
      from: { path: '^src/' },
      to: { circular: true, viaOnly: { dependencyTypesNot: ['type-only'] } },
    },
    {
      name: 'gateway-knows-no-protocol',
      severity: 'error',
      comment: 'The gateway routes through the protocol registry; main.ts wires the adapters.',
      from: { path: '^src/gateway/' },
      to: { path: '^src/protocols/' },
    },
    {
      name: 'lower-layers-know-no-protocol',
      severity: 'error',
      comment: 'Guards, core, config, audit, telemetry, upstream, server, wire and store see Calls, not wire protocols.',
      from: { path: '^src/(guards|core|config|audit|telemetry|upstream|server|wire|store|console)/' },
      to: { path: '^src/protocols/' },
    },
    {
      name: 'protocols-are-independent',
      severity: 'error',
      comment: 'One protocol never reaches into another; what two share lives in src/wire/ or the core.',
      from: { path: '^src/protocols/([^/]+)/' },
      to: { path: '^src/protocols/', pathNot: '^src/protocols/$1/' },
    },
    {
      name: 'guards-below-gateway',
      severity: 'error',
      comment: 'protocols -> gateway/core -> guards: a guard is called by the pipeline, it does not call up.',
      from: { path: '^src/(guards|audit)/' },
      to: { path: '^src/gateway/' },
    },
    {
      name: 'core-is-the-bottom',
      severity: 'error',
      comment: 'The core (Call, Pipeline, errors) depends on nothing but config types.',
      from: { path: '^src/core/' },
      to: { path: '^src/(?!core/|config/)' },
    },
    {
      name: 'upstream-imports-no-guard',
      severity: 'error',
      comment: 'Forwarding never makes a policy, identity or limit decision; the lifecycle does, before forwarding.',
      from: { path: '^src/upstream/' },
      to: { path: '^src/(guards|gateway)/' },
    },
    {
      name: 'wire-is-neutral',
      severity: 'error',
      comment: 'Shared wire formats depend only on the core.',
      from: { path: '^src/wire/' },
      to: { path: '^src/(?!core/|wire/)' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js', '.mjs', '.cjs', '.json'] },
  },
};
