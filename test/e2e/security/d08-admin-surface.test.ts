/**
 * Issue 12, defect 8: the admin surface was exposed on the public listener.
 *
 * `/readyz` and `/metrics` answered anyone on the public port and told them the config directory and upstream error
 * text; a route at `/` could shadow the gateway's own endpoints. Now the operational endpoints (`/readyz`,
 * `/readyz/store`, `/metrics`, `/limits`, the console) exist only on the admin listener (its own port, loopback by
 * default); the public listener keeps a minimal `/healthz` and the RFC 9728 metadata, which a catch-all route does
 * not shadow; a route configured at or under a reserved path is refused at config load (and at reload, keeping the
 * config in force). The victim keeps working throughout.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpMcpServer, type FixtureServer } from '../../helpers/mcp-http-server.ts';
import { connectClient, eventually, mcpBackend, route } from '../../helpers/gateway.ts';
import { bearer, cleanRoots, startSecureGateway, type SecureGateway } from './harness.ts';

let fixture: FixtureServer;
let gw: SecureGateway;

beforeAll(async () => {
  fixture = await startHttpMcpServer({ name: 'fixture' });
  // A catch-all route at "/" next to /mcp: it must not shadow /healthz or the metadata.
  gw = await startSecureGateway({
    files: { 'mcp.yaml': mcpBackend('fixture', { url: fixture.url }) + route('mcp', '/mcp', ['fixture']) + route('catchall', '/', ['fixture']) },
  });
});

afterAll(async () => {
  await gw?.stop();
  await fixture?.close();
  cleanRoots();
});

describe('defect 8: admin surface', () => {
  it('serves /readyz, /metrics and /limits only on the admin listener, on loopback and its own port', async () => {
    expect(gw.adminUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(gw.adminUrl).not.toBe(gw.url);
    for (const path of ['/readyz', '/readyz?strict', '/metrics', '/limits', '/console']) {
      const pub = await fetch(`${gw.url}${path}`);
      const text = await pub.text();
      expect(pub.status, `public ${path}`).not.toBe(200);
      // Nothing operational leaks: not the config directory, not an upstream, not a metric.
      expect(text).not.toContain(gw.config);
      expect(text).not.toContain('fixture');
      expect(text).not.toContain('tollgate_');
    }
    const ready = await fetch(`${gw.adminUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.text()).toContain('fixture');
    const metrics = await fetch(`${gw.adminUrl}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain('tollgate_');
  });

  it('keeps a minimal public /healthz and the RFC 9728 metadata, which a route at "/" does not shadow', async () => {
    const health = await fetch(`${gw.url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    const meta = await fetch(`${gw.url}/.well-known/oauth-protected-resource/mcp`);
    expect(meta.status).toBe(200);
    expect(((await meta.json()) as { resource: string }).resource).toBe(`${gw.url}/mcp`);
    // The victim is served; the catch-all still catches what is not the gateway's own.
    const victim = await connectClient(`${gw.url}/mcp`, { headers: bearer(gw.dev('victim')) });
    expect(JSON.stringify((await victim.callTool({ name: 'fixture__echo', arguments: { message: 'fine' } })).content)).toContain('fine');
    await victim.close();
    expect((await fetch(`${gw.url}/anything`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: '{}' })).status).toBe(401);
  });

  it.each(['/readyz', '/metrics', '/healthz', '/.well-known/oauth-protected-resource', '/console/api', '/limits'])('refuses at config load a route at %s', async (path) => {
    const root = mkdtempSync(join(tmpdir(), 'tollgate-sec-d08-'));
    mkdirSync(join(root, 'routes'));
    const started = startSecureGateway({ root, files: { 'mcp.yaml': mcpBackend('fixture', { url: fixture.url }) + route('shadow', path, ['fixture']) } });
    await expect(started).rejects.toThrow(new RegExp(`would shadow the gateway's own ${path.replace(/\/api$/, '').replace(/[.]/g, '\\.')} endpoint`));
    rmSync(root, { recursive: true, force: true });
  });

  it('refuses such a route at reload too, keeping the config in force', async () => {
    writeFileSync(join(gw.config, 'shadow.yaml'), route('shadow', '/metrics', ['fixture']));
    await eventually(async () => JSON.stringify(await (await fetch(`${gw.adminUrl}/readyz`)).json()).includes('would shadow'), 15_000, '/readyz to show the refused reload');
    expect((await fetch(`${gw.adminUrl}/metrics`)).status).toBe(200);
    rmSync(join(gw.config, 'shadow.yaml'));
    const victim = await connectClient(`${gw.url}/mcp`, { headers: bearer(gw.dev('victim')) });
    expect((await victim.listTools()).tools.length).toBeGreaterThan(0);
    await victim.close();
  });
});
