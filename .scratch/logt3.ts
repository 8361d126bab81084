import { createLogger } from '../src/telemetry/logger.ts';
const log = createLogger('info');
let i = 0;
const t = setInterval(() => { for (let k = 0; k < 10; k++) log.info({ call: 'x'.repeat(36), n: i++, op: 'tools/call' }, 'call'); if (i >= 1000) { clearInterval(t); } }, 1);
