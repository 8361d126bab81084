/**
 * GET of a small JSON document (a bundle, a JWKS, an OIDC discovery document) with bounded time and size, off the
 * request path. undici `request` (not fetch) with an optional private CA.
 */
import { readFileSync } from 'node:fs';
import { Agent, request, type Dispatcher } from 'undici';
import { GatewayError } from '../../core/errors.ts';
import { readAll } from '../../upstream/pools.ts';

const MAX_BYTES = 1024 * 1024;
const TIMEOUT_MS = 10_000;

/** An undici Agent trusting the CA(s) of a PEM file instead of the system store (owner closes it). */
export function agentFor(caFile: string): Agent {
  return new Agent({ connect: { ca: readFileSync(caFile, 'utf8') }, keepAliveTimeout: 30_000 });
}

/** Fetches and parses a JSON document; throws an Error saying what went wrong (never the body). */
export async function fetchJson(url: string, dispatcher?: Dispatcher): Promise<unknown> {
  const res = await request(url, {
    method: 'GET',
    headers: { accept: 'application/json' },
    headersTimeout: TIMEOUT_MS,
    bodyTimeout: TIMEOUT_MS,
    ...(dispatcher ? { dispatcher } : {}),
  });
  if (res.statusCode !== 200) {
    await res.body.dump();
    throw new Error(`GET ${url}: HTTP ${res.statusCode}`);
  }
  let body: Buffer;
  try {
    body = await readAll(res.body, MAX_BYTES);
  } catch (err) {
    // readAll refuses an oversized body with a GatewayError; anything else is a transport failure.
    if (err instanceof GatewayError) throw new Error(`GET ${url}: document larger than ${MAX_BYTES} bytes`);
    throw err;
  }
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new Error(`GET ${url}: not JSON`);
  }
}
