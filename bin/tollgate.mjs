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
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
