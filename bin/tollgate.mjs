#!/usr/bin/env node
// Launcher for the `tollgate` command. Tollgate runs TypeScript directly on Node 24 (type stripping), so it checks
// the runtime first and says what to do instead of failing on a syntax error.
const [major] = process.versions.node.split('.').map(Number);
if (major < 24) {
  process.stderr.write(
    `tollgate needs Node.js 24 or newer (this is ${process.version}).\n` +
      `Run it through npm (npm start / npx tollgate), which uses the project's Node 24, or install Node 24.\n`,
  );
  process.exit(2);
}
process.removeAllListeners('warning');
process.on('warning', (w) => {
  if (w.name === 'ExperimentalWarning' && /Type Stripping/i.test(w.message)) return;
  process.stderr.write(`${w.name}: ${w.message}\n`);
});
// Compiled code and type-stripped sources are cached on disk (node:module compile cache): a start with a warm cache
// skips stripping and compiling ~1,500 modules (bench/NOTES.md: CPU to ready and RSS both drop). The cache lives
// next to the code (node_modules/.cache, owned by whoever installed it, never a shared /tmp directory); NODE_COMPILE_CACHE
// names another, TOLLGATE_COMPILE_CACHE=off turns it off. Where the directory is read-only (the image, warmed at build
// time) entries are only read; where it cannot be created at all, modules load as without it.
if (process.env.TOLLGATE_COMPILE_CACHE !== 'off' && process.env.NODE_COMPILE_CACHE === undefined) {
  const { enableCompileCache } = process.getBuiltinModule('node:module');
  enableCompileCache?.(process.env.TOLLGATE_COMPILE_CACHE || new URL('../node_modules/.cache/tollgate-compile', import.meta.url).pathname);
}
// The gateway's old generation: V8 lets it grow to up to 4x what was live after the last full GC before it collects
// again, and V8 keeps the freed pages, so under load the RSS held ~100 MB of promoted garbage for ~45 MB live
// (bench/NOTES.md, memory). 1.5x bounds that garbage, with no cap on the heap itself (no OOM where V8's default would
// have grown). Not a NODE_OPTIONS flag (Node refuses it there), and read by V8 at each full GC, so it can be set here
// for every way of starting the gateway (npm start, the image, npx). TOLLGATE_HEAP_GROWING_PERCENT=N sets another
// factor, 0 leaves V8's own.
if (process.argv[2] === 'serve') {
  const percent = process.env.TOLLGATE_HEAP_GROWING_PERCENT ?? '50';
  if (/^[1-9][0-9]{0,3}$/.test(percent)) process.getBuiltinModule('node:v8').setFlagsFromString(`--heap-growing-percent=${percent}`);
}
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
