/** The access log line every call writes (gateway.finish), serialized by pino into a discarding destination. */
import { pino } from 'pino';
import type { MicroBench } from '../micro.ts';

const sink = { write: (_line: string): void => {} };
const fields = () => ({
  call: 'f6492b3b-dcd4-461b-a608-21752347f78c',
  protocol: 'mcp',
  op: 'tools/call',
  route: 'bench',
  upstream: 'b1',
  target: 'b1__echo',
  principal: 'spiffe://bench.tollgate.test/agent/bench',
  outcome: 'ok',
  status: 200,
  code: undefined,
  ms: 3.625,
});
const base = { level: 'info', base: { svc: 'tollgate' }, formatters: { level: (label: string) => ({ level: label }) } };
const iso = pino({ ...base, timestamp: pino.stdTimeFunctions.isoTime }, sink);
const epoch = pino({ ...base, timestamp: pino.stdTimeFunctions.epochTime }, sink);
import { isoTime } from '../../src/telemetry/logger.ts';

const cached = pino({ ...base, timestamp: isoTime }, sink);

export const benches: MicroBench[] = [
  { name: 'access log line, pino isoTime', fn: () => iso.info(fields(), 'call') },
  { name: 'access log line, pino epochTime (reference)', fn: () => epoch.info(fields(), 'call') },
  { name: "access log line, the gateway's isoTime (formatted once per ms)", fn: () => cached.info(fields(), 'call') },
  { name: 'new Date().toISOString()', fn: () => new Date().toISOString() },
];
