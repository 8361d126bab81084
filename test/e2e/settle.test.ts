/**
 * Asynchronous settle (what an accounting guard such as a Redis-reconciled budget needs), through a real gateway
 * and its real audit log: the audit record is written only after every earlier settle step has finished (it sees
 * what they wrote), a failed or hung settle step is itself recorded, and shutdown waits for settles still running
 * before it closes the audit log.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryLog } from '../../src/audit/query.ts';
import type { Call } from '../../src/core/call.ts';
import type { Guard, GuardServices } from '../../src/core/pipeline.ts';
import { echoBackend, echoProtocol } from '../helpers/echo-protocol.ts';
import { startEchoServer, type EchoServer } from '../helpers/echo-server.ts';
import { eventually, route, startTestGateway, type TestGateway } from '../helpers/gateway.ts';

/** An accounting guard whose settle finishes when the test releases it, and writes the call's usage then. */
class HeldAccounting implements Guard {
  readonly name = 'held-accounting';
  readonly waiting = new Map<string, () => void>();

  settle(call: Call): Promise<void> {
    return new Promise((resolve) => {
      this.waiting.set(call.request.path, () => {
        call.usage = { ...call.usage, inputTokens: 5, outputTokens: 7 };
        resolve();
      });
    });
  }
}

/** An accounting guard that fails to settle (e.g. its store is down). */
const brokenAccounting: Guard = {
  name: 'broken-accounting',
  settle: () => Promise.reject(new Error('store unavailable')),
};

let upstream: EchoServer;
let gw: TestGateway;
const held = new HeldAccounting();
const services: GuardServices = { guardsFor: () => [held, brokenAccounting] };

function callRecords(): Array<Record<string, unknown>> {
  return [...queryLog(join(gw.dir, '..', '.tollgate', 'audit'), { kinds: ['call'] })].map((l) => JSON.parse(l) as Record<string, unknown>);
}

beforeAll(async () => {
  upstream = await startEchoServer();
  gw = await startTestGateway({ 'echo.yaml': echoBackend('echoer', upstream.url) + route('echo', '/echo', ['echoer']) }, { protocols: [echoProtocol], guards: [services] });
});

afterAll(async () => {
  await gw?.stop();
  await upstream?.close();
});

describe('asynchronous settle', () => {
  it('writes the audit record after the earlier settle steps, with what they accounted and which failed', async () => {
    const res = await fetch(`${gw.url}/echo/first`, { method: 'POST', body: 'a', headers: gw.authHeaders() });
    expect(res.status).toBe(200);
    await res.text();
    await eventually(() => held.waiting.has('/echo/first'), 5_000, 'the settle step to start');
    expect(gw.gateway.calls.pending).toBe(1);
    held.waiting.get('/echo/first')!();
    await eventually(() => gw.gateway.calls.pending === 0, 5_000, 'the settle to finish');
    await eventually(() => callRecords().some((r) => r.operation === 'echo/post'), 10_000, 'the audit record');
    const record = callRecords().find((r) => r.operation === 'echo/post')!;
    expect(record.usage).toEqual({ inputTokens: 5, outputTokens: 7 });
    expect(record.settleFailed).toEqual(['broken-accounting']);
    expect(record.outcome).toBe('ok');
  });

  it('lets shutdown wait for settles still running, so their audit records are not lost', async () => {
    const res = await fetch(`${gw.url}/echo/last`, { method: 'PUT', body: 'b', headers: gw.authHeaders() });
    expect(res.status).toBe(200);
    await res.text();
    await eventually(() => held.waiting.has('/echo/last'), 5_000, 'the settle step to start');
    // Watch the shutdown steps: the gateway closing (adapters, then pending settles), then the services (audit).
    let gatewayClosing = false;
    let servicesClosing = false;
    const closeGateway = gw.gateway.close.bind(gw.gateway);
    gw.gateway.close = () => {
      gatewayClosing = true;
      return closeGateway();
    };
    const closeServices = gw.services.close;
    (gw.services as { close: () => Promise<void> }).close = () => {
      servicesClosing = true;
      return closeServices();
    };
    let stopped = false;
    const stopping = gw.shutdown().then(() => (stopped = true));
    await eventually(() => gatewayClosing, 10_000, 'the gateway to start closing');
    // Without the wait, the audit log would close right away; give it every chance to (this is the negative check).
    await expect(eventually(() => servicesClosing, 500, 'the services to close')).rejects.toThrow(/timed out/);
    expect(stopped).toBe(false);
    held.waiting.get('/echo/last')!();
    await stopping;
    const record = callRecords().find((r) => r.operation === 'echo/put');
    expect(record).toMatchObject({ usage: { inputTokens: 5, outputTokens: 7 }, settleFailed: ['broken-accounting'] });
  });
});
