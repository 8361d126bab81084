/**
 * Property-based fuzzing (fast-check) of the request parsers: JSON-RPC framing and the byte-preserving id splice, the
 * SSE reader (events split anywhere, multi-byte characters cut in half), and the YAML config loader. Bounded in
 * `npm test` (FUZZ_RUNS runs and a time cap per property); longer on demand:
 *
 *   TOLLGATE_FUZZ_MS=120000 npm test -- test/unit/fuzz.test.ts test/e2e/fuzz-gateway.test.ts
 *
 * runs each property for up to that many milliseconds (a failing case prints its seed and path to replay it).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfigDir, parseFile, type ConfigIssue } from '../../src/config/load.ts';
import { Errors, GatewayError } from '../../src/core/errors.ts';
import { classify, parseMessage, peekId, RpcParseError, spliceId, type RpcId } from '../../src/wire/jsonrpc.ts';
import { encodeEvent, readSse, type EventSourceMessage } from '../../src/wire/sse.ts';

const LONG_MS = Number(process.env.TOLLGATE_FUZZ_MS ?? 0);
/** Default: a few hundred cases per property, capped in time so a slow machine stays bounded. */
export const FUZZ: fc.Parameters<unknown> =
  LONG_MS > 0 ? { numRuns: Number.MAX_SAFE_INTEGER, interruptAfterTimeLimit: LONG_MS, markInterruptAsFailure: false } : { numRuns: 300, interruptAfterTimeLimit: 4_000 };

const KNOWN = new Set(Object.values(Errors));

const rpcId = fc.oneof(fc.string({ maxLength: 40 }), fc.integer(), fc.constant(Number.MAX_SAFE_INTEGER), fc.constant(-1));
const jsonValue = fc.jsonValue({ maxDepth: 4 });
const params = fc.dictionary(fc.string({ maxLength: 12 }), jsonValue, { maxKeys: 5 });

/** A well-formed request with members in any order and any JSON spacing (different SDKs write them differently). */
const requestText = fc
  .record({ id: rpcId, method: fc.string({ minLength: 1, maxLength: 30 }), params, order: fc.shuffledSubarray(['jsonrpc', 'id', 'method', 'params'], { minLength: 4, maxLength: 4 }), space: fc.constantFrom(0, 1, 2, '\t') })
  .map(({ id, method, params: p, order, space }) => {
    const all: Record<string, unknown> = { jsonrpc: '2.0', id, method, params: p };
    const obj: Record<string, unknown> = {};
    for (const k of order) obj[k] = all[k];
    return { id, method, params: p, text: JSON.stringify(obj, null, space) };
  });

describe('JSON-RPC framing', () => {
  it('any bytes: a classified message or a gateway error from the registry, never anything else', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)), jsonValue.map((v) => JSON.stringify(v))), (body) => {
        try {
          const { message } = parseMessage(body);
          expect(['request', 'notification', 'response']).toContain(message.kind);
        } catch (err) {
          expect(err).toBeInstanceOf(RpcParseError);
          expect(KNOWN.has((err as RpcParseError).error.def)).toBe(true);
        }
      }),
      FUZZ,
    );
  });

  it('any JSON value: classify accepts exactly the valid envelopes', () => {
    fc.assert(
      fc.property(fc.oneof(jsonValue, fc.record({ jsonrpc: fc.constantFrom('2.0', '1.0', 2), id: fc.oneof(rpcId, jsonValue), method: fc.oneof(fc.string(), jsonValue), params: fc.oneof(params, jsonValue) }, { requiredKeys: [] })), (value) => {
        try {
          const m = classify(value);
          const v = value as Record<string, unknown>;
          expect(v.jsonrpc).toBe('2.0');
          if (m.kind === 'request') expect(typeof v.method === 'string' && v.method !== '' && (typeof v.id === 'string' || Number.isInteger(v.id))).toBe(true);
        } catch (err) {
          expect(err).toBeInstanceOf(GatewayError);
          expect([Errors.INVALID_REQUEST, Errors.BATCH_NOT_SUPPORTED]).toContain((err as GatewayError).def);
        }
      }),
      FUZZ,
    );
  });

  it('a valid request parses back to what was sent', () => {
    fc.assert(
      fc.property(requestText, ({ id, method, params: p, text }) => {
        const { message } = parseMessage(text);
        expect(message.kind).toBe('request');
        expect(message.msg).toMatchObject({ id, method });
        expect((message.msg as { params: unknown }).params).toEqual(JSON.parse(JSON.stringify(p)));
      }),
      FUZZ,
    );
  });

  it('the id splice finds the top-level id in any member order and spacing, and changes nothing else', () => {
    fc.assert(
      fc.property(requestText, fc.oneof(rpcId, fc.constant(null)), ({ id, text }, replacement: RpcId | null) => {
        expect(peekId(text)).toEqual(id);
        const spliced = spliceId(text, replacement);
        const before = JSON.parse(text) as Record<string, unknown>;
        expect(JSON.parse(spliced)).toEqual({ ...before, id: replacement });
      }),
      FUZZ,
    );
  });

  it('a nested "id" (in params or a result) is never taken for the top-level one', () => {
    fc.assert(
      fc.property(rpcId, rpcId, fc.boolean(), (outer, inner, idFirst) => {
        const nested = { id: inner, deeper: { id: inner } };
        const obj = idFirst ? { id: outer, jsonrpc: '2.0', result: nested } : { jsonrpc: '2.0', result: nested, id: outer };
        const text = JSON.stringify(obj);
        expect(peekId(text)).toEqual(outer);
        expect(JSON.parse(spliceId(text, 'x'))).toEqual({ ...obj, id: 'x' });
      }),
      FUZZ,
    );
  });
});

const sseEvent = fc.record(
  {
    // Data may hold any text, line breaks included (the writer splits them into several data fields).
    data: fc.string({ unit: 'grapheme', maxLength: 60 }),
    id: fc.string({ maxLength: 10 }).filter((s) => !/[\r\n\0]/.test(s)),
    event: fc.stringMatching(/^[a-z][a-z_]{0,9}$/),
  },
  { requiredKeys: ['data'] },
);

/** Splits bytes at arbitrary points (multi-byte characters cut in half included). */
function chunked(bytes: Buffer, cuts: readonly number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let last = 0;
  for (const p of points) {
    out.push(bytes.subarray(last, p));
    last = p;
  }
  out.push(bytes.subarray(last));
  return out.filter((b) => b.length > 0);
}

async function readAll(chunks: readonly Buffer[], maxEventChars?: number): Promise<EventSourceMessage[]> {
  const events: EventSourceMessage[] = [];
  await readSse(Readable.from(chunks, { objectMode: false }), (e) => void events.push(e), { maxEventChars });
  return events;
}

describe('SSE reader', () => {
  it('reads back every event written, however the stream is cut into chunks', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(sseEvent, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 12 }), async (events, cuts) => {
        const wire = Buffer.from(events.map((e) => encodeEvent(e)).join(''), 'utf8');
        const read = await readAll(chunked(wire, cuts));
        expect(read.map((e) => ({ data: e.data, event: e.event, id: e.id }))).toEqual(
          events.map((e) => ({ data: e.data.replace(/\r\n|\r/g, '\n'), event: e.event, id: e.id })),
        );
      }),
      FUZZ,
    );
  });

  it('any bytes: ends or fails cleanly (an event over the bound is an error), never throws past the promise', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 400 }), fc.array(fc.nat(), { maxLength: 8 }), async (bytes, cuts) => {
        try {
          const events = await readAll(chunked(Buffer.from(bytes), cuts), 64);
          for (const e of events) expect(typeof e.data).toBe('string');
        } catch (err) {
          expect((err as Error).message).toMatch(/buffer|size|exceed/i);
        }
      }),
      FUZZ,
    );
  });
});

const VALID = `apiVersion: tollgate.dev/v1alpha1
kind: Gateway
metadata: { name: fuzz }
spec:
  listener: { host: 127.0.0.1, port: 0 }
  overload: { maxInFlight: 10, maxQueue: 5 }
  http: { headersTimeoutMs: 5000 }
---
apiVersion: tollgate.dev/v1alpha1
kind: Backend
metadata: { name: tools }
spec: { protocol: mcp, url: "http://127.0.0.1:9/mcp" }
---
apiVersion: tollgate.dev/v1alpha1
kind: Route
metadata: { name: mcp }
spec:
  rules:
    - matches: [{ path: { type: PathPrefix, value: /mcp } }]
      backendRefs: [{ name: tools }]
`;

/** The valid config with random edits: lines dropped, duplicated or swapped, characters replaced, text inserted. */
const mutatedConfig = fc
  .array(
    fc.oneof(
      fc.record({ op: fc.constant('drop' as const), at: fc.nat() }),
      fc.record({ op: fc.constant('dup' as const), at: fc.nat() }),
      fc.record({ op: fc.constant('swap' as const), at: fc.nat(), to: fc.nat() }),
      fc.record({ op: fc.constant('char' as const), at: fc.nat(), ch: fc.constantFrom(':', '-', ' ', '{', '}', '[', ']', '"', "'", '&', '*', '!', '#', '\t', '\n', '0', 'x', '|', '>') }),
      fc.record({ op: fc.constant('insert' as const), at: fc.nat(), text: fc.string({ maxLength: 20 }) }),
    ),
    { minLength: 1, maxLength: 4 },
  )
  .map((edits) => {
    let lines = VALID.split('\n');
    for (const e of edits) {
      const i = e.at % lines.length;
      if (e.op === 'drop') lines.splice(i, 1);
      else if (e.op === 'dup') lines.splice(i, 0, lines[i]!);
      else if (e.op === 'swap') [lines[i], lines[e.to % lines.length]] = [lines[e.to % lines.length]!, lines[i]!];
      else {
        const text = lines.join('\n');
        const j = e.at % (text.length + 1);
        lines = (e.op === 'char' ? text.slice(0, j) + e.ch + text.slice(j + 1) : text.slice(0, j) + e.text + text.slice(j)).split('\n');
      }
    }
    return lines.join('\n');
  });

function checkIssues(issues: readonly ConfigIssue[]): void {
  for (const i of issues) {
    expect(i.line).toBeGreaterThanOrEqual(0);
    expect(typeof i.message).toBe('string');
    expect(i.message.length).toBeGreaterThan(0);
  }
}

describe('YAML config', () => {
  it('any text: parsed documents or issues with a position, never an exception', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 300 }), mutatedConfig), (text) => {
        const issues: ConfigIssue[] = [];
        parseFile('fuzz.yaml', text, issues);
        checkIssues(issues);
      }),
      FUZZ,
    );
  });

  it('a mutated config directory: a snapshot or a ConfigError naming file and line, never another exception', () => {
    const root = mkdtempSync(join(tmpdir(), 'tollgate-fuzz-'));
    try {
      const dir = join(root, 'routes');
      mkdirSync(dir);
      let loaded = 0;
      fc.assert(
        fc.property(mutatedConfig, (text) => {
          writeFileSync(join(dir, 'all.yaml'), text);
          try {
            const snapshot = loadConfigDir(dir, {});
            loaded++;
            // What loads is a complete, validated snapshot.
            expect(snapshot.gateway.overload.maxInFlight).toBeGreaterThanOrEqual(0);
          } catch (err) {
            expect(err).toBeInstanceOf(ConfigError);
            checkIssues((err as ConfigError).issues);
          }
        }),
        FUZZ,
      );
      expect(loaded).toBeGreaterThanOrEqual(0);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
