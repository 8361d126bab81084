import { pino } from 'pino';
const d = pino.destination({ dest: 1, sync: false, minLength: 4096 });
let writes = 0; d.on('write', () => writes++);
const log = pino({}, d);
let i = 0;
const t = setInterval(() => { for (let k = 0; k < 10; k++) log.info({ n: i++ }, 'call'); if (i >= 1000) { clearInterval(t); process.stderr.write(`minLength=${(d as any).minLength} writes=${writes}\n`); } }, 1);
