/**
 * MCP session-id sealing (many replicas without a shared store) and the per-request work of the stateless era.
 * Seal runs once per session (initialize); open runs when a replica first sees a session id minted elsewhere; the
 * replica that holds the session pays only a Map lookup of the id. Target from the issue: seal/open < 50 us.
 * Standalone: `node bench/micro/session.ts` prints us/op for each (median of five slices, with the spread).
 */
import type { IncomingMessage } from 'node:http';
import { fileURLToPath } from 'node:url';
import { withResultType } from '../../src/protocols/mcp/jsonrpc.ts';
import { validateModernRequest } from '../../src/protocols/mcp/stateless.ts';
import { Sealer } from '../../src/protocols/mcp/sealer.ts';
import type { SessionClaims } from '../../src/protocols/mcp/session-token.ts';

/** The bench runner's contract (bench/micro.ts). */
interface MicroBench {
  name: string;
  setup?(): Promise<void> | void;
  fn(): unknown;
  iterations?: number;
}

const sealer = new Sealer('mcp-session', [
  { id: 'k2', secret: 'a-fresh-key-of-enough-length-0123456789' },
  { id: 'k1', secret: 'the-previous-key-still-opens-0123456789' },
]);

/** A realistic session: a SPIFFE principal, the SDK client's hello, two HTTP upstream sessions to continue. */
const claims: SessionClaims = {
  v: 1,
  r: 'mcp',
  m: '/mcp',
  p: 'spiffe://prod.example.org/ns/agents/sa/research-agent',
  pv: '2025-11-25',
  c: { sampling: {}, elicitation: { form: {} }, roots: { listChanged: true } },
  i: { name: 'claude-code', version: '2.3.1' },
  u: {
    github: { id: '5f0c6a1e-9f0a-4c3e-b8f5-1a2b3c4d5e6f', v: '2025-11-25', c: { tools: { listChanged: true }, resources: { subscribe: true } } },
    search: { id: '0d9c8b7a-6f5e-4d3c-2b1a-0f9e8d7c6b5a', v: '2025-06-18', c: { tools: {}, prompts: {} } },
  },
  e: Date.now() + 86_400_000,
};

let sealed = '';
const sessions = new Map<string, object>();
let lookupKey = '';

const result1k = JSON.stringify({ result: { content: [{ type: 'text', text: 'x'.repeat(1000) }] }, jsonrpc: '2.0', id: 7 });

const modernReq = {
  headers: { 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call', 'mcp-name': 'github__search_issues' },
} as unknown as IncomingMessage;
const modernMsg = {
  jsonrpc: '2.0' as const,
  id: 1,
  method: 'tools/call',
  params: {
    name: 'github__search_issues',
    arguments: { q: 'is:open label:bug' },
    _meta: {
      'io.modelcontextprotocol/protocolVersion': '2026-07-28',
      'io.modelcontextprotocol/clientCapabilities': { elicitation: {} },
      'io.modelcontextprotocol/clientInfo': { name: 'agent', version: '1' },
    },
  },
};

export const benches: MicroBench[] = [
  {
    name: 'session id seal (AES-256-GCM, ~560 B claims)',
    fn: () => sealer.seal(claims),
    iterations: 20_000,
  },
  {
    name: 'session id open (another replica first sees the id)',
    setup: () => {
      sealed = sealer.seal(claims);
    },
    fn: () => sealer.open(sealed),
    iterations: 20_000,
  },
  {
    name: 'session id open, forged (refused)',
    setup: () => {
      sealed = sealer.seal(claims);
      sealed = `${sealed.slice(0, -4)}AAAA`;
    },
    fn: () => sealer.open(sealed),
    iterations: 20_000,
  },
  {
    name: 'session lookup on the owning replica (Map get by id)',
    setup: () => {
      for (let i = 0; i < 1000; i++) sessions.set(sealer.seal({ ...claims, e: i }), {});
      lookupKey = [...sessions.keys()][500]!;
      // A fresh string each time, as a header value is: no cached hash.
      lookupKey = `${lookupKey.slice(0, 10)}${lookupKey.slice(10)}`;
    },
    fn: () => sessions.get(`${lookupKey}`),
  },
  {
    name: '2026 request validation (envelope + mirrored headers)',
    fn: () => validateModernRequest(modernReq, modernMsg),
  },
  {
    name: 'resultType splice into a 1 KB session-era result',
    fn: () => withResultType(result1k),
  },
];

/** Standalone run: warm-up, then five equal slices; the median slice's us/op with min..max. */
async function standalone(): Promise<void> {
  for (const b of benches) {
    await b.setup?.();
    const n = b.iterations ?? 100_000;
    for (let i = 0; i < Math.max(1_000, n / 10); i++) b.fn();
    const slices: number[] = [];
    for (let r = 0; r < 5; r++) {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < n / 5; i++) b.fn();
      slices.push(Number(process.hrtime.bigint() - t0) / 1e3 / (n / 5));
    }
    slices.sort((x, y) => x - y);
    process.stdout.write(`${b.name.padEnd(56)} ${slices[2]!.toFixed(3).padStart(8)} us/op  (${slices[0]!.toFixed(2)}..${slices[4]!.toFixed(2)}, ${n} ops)\n`);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await standalone();
