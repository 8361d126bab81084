/**
 * An in-process gateway in front of a real @a2a-js/sdk agent (test/helpers/a2a-agent.ts) at /a2a/echo, with the
 * default policies (built by the real opa) plus test grants, and SDK clients built from the card the gateway serves.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClientFactory, DefaultAgentCardResolver, JsonRpcTransportFactory, RestTransportFactory, type Client } from '@a2a-js/sdk/client';
import { startTestAgent, type TestAgent } from './a2a-agent.ts';
import type { ProtocolDefinition } from '../../src/gateway/adapter.ts';
import { GATEWAY_YAML, startTestGateway, type TestGateway } from './gateway.ts';

/** May use every skill of the echo agent. */
export const ADMIN = 'spiffe://example.org/agents/a2a-admin';
/** May use the echo skill only (not secret-ops). */
export const ALICE = 'spiffe://example.org/agents/alice';
/** Same grants as Alice: another identity, for cross-identity access. */
export const BOB = 'spiffe://example.org/agents/bob';
/** Alice's path in another trust domain: granted like her, yet another identity. */
export const OTHER_ALICE = 'spiffe://other.test/agents/alice';
/** Granted the echo skill, and rate-limited in the limits tests. */
export const RATED = 'spiffe://example.org/agents/rated';
/** No A2A grant at all. */
export const NOBODY = 'spiffe://example.org/agents/nobody';

export function a2aPolicyGateway(extra = '', identityExtra = ''): string {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-a2a-policy-'));
  mkdirSync(join(dir, 'tollgate'));
  for (const f of readdirSync('policies/tollgate')) {
    if (f.endsWith('_test.rego')) continue;
    let text = readFileSync(join('policies/tollgate', f), 'utf8');
    if (f === 'grants.rego') {
      text = text.replace(
        'grants := [',
        `grants := [
\t{"spiffe_id": "${ADMIN}", "skills": ["echo/*"], "rate_class": "standard"},
\t{"spiffe_id": "${ALICE}", "skills": ["echo/echo"], "rate_class": "standard"},
\t{"spiffe_id": "${BOB}", "skills": ["echo/echo"], "rate_class": "standard"},
\t{"spiffe_id": "${NOBODY}", "tools": ["none/none"]},
\t{"spiffe_id": "${OTHER_ALICE}", "skills": ["echo/echo"], "rate_class": "standard"},
\t{"spiffe_id": "${RATED}", "skills": ["echo/echo"], "rate_class": "standard"},`,
      );
    }
    writeFileSync(join(dir, 'tollgate', f), text);
  }
  return `${GATEWAY_YAML}  identity:
    dev: { enabled: true, trustDomain: example.org }
${identityExtra}  policy: { dir: ${JSON.stringify(dir)}, watch: false }
${extra}`;
}

/** `twins`: more agents of the route (at /a2a/<name>), each another name for the same agent. */
export function a2aConfig(agentUrl: string, a2a: Record<string, unknown> = {}, twins: readonly string[] = []): Record<string, string> {
  const backend = (name: string): string => `apiVersion: tollgate.dev/v1alpha1
kind: Backend
metadata: { name: ${name} }
spec: ${JSON.stringify({ protocol: 'a2a', url: agentUrl })}
---
`;
  return {
    'echo.yaml': `${['echo', ...twins].map(backend).join('')}apiVersion: tollgate.dev/v1alpha1
kind: Route
metadata: { name: agents }
spec: ${JSON.stringify({
      a2a: { defaultVersion: '1.0', defaultSkills: { echo: 'echo' }, push: { allowHosts: ['hooks.example.com', 'localhost'] }, ...a2a },
      rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/a2a' } }], backendRefs: ['echo', ...twins].map((name) => ({ name })) }],
    })}
`,
  };
}

export interface A2aSetup {
  readonly agent: TestAgent;
  readonly gw: TestGateway;
  /** The agent's URL at the gateway. */
  readonly url: string;
  fetchAs(spiffeId: string): typeof fetch;
  /** An SDK client built only from the card the gateway serves (JSON-RPC or REST), authenticated as `spiffeId`. */
  client(spiffeId: string, transport: 'JSONRPC' | 'HTTP+JSON'): Promise<Client>;
  close(): Promise<void>;
}

export async function startA2a(
  opts: {
    a2a?: Record<string, unknown>;
    gatewayExtra?: string;
    identityExtra?: string;
    files?: Record<string, string>;
    agent?: TestAgent;
    protocols?: readonly ProtocolDefinition[];
    /** listener.publicUrl: the one name replicas are reached by (a Service), in the URLs the gateway hands out. */
    publicUrl?: string;
    /** More names of the agent in the route (a2aConfig). */
    twins?: readonly string[];
  } = {},
): Promise<A2aSetup> {
  const agent = opts.agent ?? (await startTestAgent());
  let gw: TestGateway;
  try {
    let gatewayYaml = a2aPolicyGateway(opts.gatewayExtra, opts.identityExtra);
    if (opts.publicUrl !== undefined) gatewayYaml = gatewayYaml.replace('listener: { host: 127.0.0.1, port: 0 }', `listener: { host: 127.0.0.1, port: 0, publicUrl: ${JSON.stringify(opts.publicUrl)} }`);
    gw = await startTestGateway({ ...a2aConfig(agent.url, opts.a2a, opts.twins), ...opts.files }, { gatewayYaml, protocols: opts.protocols });
  } catch (err) {
    if (opts.agent === undefined) await agent.close();
    throw err;
  }
  const fetchAs = (spiffeId: string): typeof fetch => {
    const token = gw.devToken(spiffeId);
    return (input, init) => {
      const headers = new Headers(init?.headers);
      headers.set('authorization', `Bearer ${token}`);
      return fetch(input, { ...init, headers });
    };
  };
  return {
    agent,
    gw,
    url: `${gw.url}/a2a/echo`,
    fetchAs,
    client: async (spiffeId, transport) => {
      const fetchImpl = fetchAs(spiffeId);
      const factory = new ClientFactory({
        transports: [new JsonRpcTransportFactory({ fetchImpl }), new RestTransportFactory({ fetchImpl })],
        preferredTransports: [transport],
        cardResolver: new DefaultAgentCardResolver({ fetchImpl }),
      });
      return factory.createFromUrl(`${gw.url}/a2a/echo/`);
    },
    close: async () => {
      await gw.stop();
      if (opts.agent === undefined) await agent.close();
    },
  };
}

/** The options of one setup of `useA2aSetups`: the agent's (startTestAgent) and the gateway's (startA2a). */
export type SetupSpec = Parameters<typeof startTestAgent>[0] & Omit<NonNullable<Parameters<typeof startA2a>[0]>, 'agent'>;

/**
 * One gateway in front of its own agent per entry, started before the file's tests and stopped after them (the
 * setup block the A2A test files shared); the record is filled by the time the tests run.
 */
export function useA2aSetups<K extends string>(specs: Record<K, SetupSpec>): Record<K, A2aSetup> {
  const out = {} as Record<K, A2aSetup>;
  beforeAll(async () => {
    for (const [key, spec] of Object.entries(specs) as [K, SetupSpec][]) {
      const { name, versions, bindings, extendedCard, streaming, extension, ...gateway } = spec;
      out[key] = await startA2a({ ...gateway, agent: await startTestAgent({ name, versions, bindings, extendedCard, streaming, extension }) });
    }
  }, 90_000);
  afterAll(async () => {
    for (const s of Object.values(out) as A2aSetup[]) {
      await s.gw.stop();
      await s.agent.close();
    }
  });
  return out;
}

/** The test Redis as the shared store of A2A replicas, under a key prefix of this run (its keys dropped at close). */
export interface SharedStore {
  readonly prefix: string;
  /** The gateway YAML that points a replica at it. */
  readonly gatewayExtra: string;
  readonly redis: Redis;
  /** Waits for each replica's store connection. */
  ready(...replicas: A2aSetup[]): Promise<void>;
  close(): Promise<void>;
}

/** `via`: the URL the replicas reach the test Redis at (a proxy in front of it, to cut them off); the test's own client connects directly. */
export function sharedStore(tag: string, via?: string): SharedStore {
  const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6390';
  const prefix = `${tag}${process.pid % 10000}${Date.now().toString(36)}:`;
  const redis = new Redis(url);
  return {
    prefix,
    gatewayExtra: `  redis: { url: ${JSON.stringify(via ?? url)}, keyPrefix: ${JSON.stringify(prefix)}, commandTimeoutMs: 5000 }\n`,
    redis,
    ready: async (...replicas) => {
      for (const r of replicas) await r.gw.services.store!.waitReady(5_000);
    },
    close: async () => {
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length > 0) await redis.del(...keys);
      await redis.quit();
    },
  };
}
