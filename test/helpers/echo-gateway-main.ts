/**
 * A gateway process serving the "echo" test protocol besides the built-in ones, for what only a separate process
 * shows (its own RSS while 200 MiB stream through it). Usage: node test/helpers/echo-gateway-main.ts CONFIG_DIR.
 * Prints one JSON line `{"url": ...}` once listening; exits on SIGTERM after draining.
 */
import { startGateway } from '../../src/main.ts';
import { echoProtocol } from './echo-protocol.ts';

const running = await startGateway({ configDir: process.argv[2]!, host: '127.0.0.1', port: 0, logLevel: 'warn', protocols: [echoProtocol] });
process.stdout.write(`${JSON.stringify({ url: running.url, pid: process.pid })}\n`);
process.once('SIGTERM', () => {
  void running.shutdown().then(() => process.exit(0));
});
