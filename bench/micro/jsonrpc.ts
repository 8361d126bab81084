/** JSON-RPC framing on the MCP hot path: envelope validation, id splicing, outcome peeking, error bodies. */
import type { MicroBench } from '../micro.ts';
import { Errors, GatewayError } from '../../src/core/errors.ts';
import { classify, errorResponse, findTopLevelId, peekKind, peekOutcome, resultResponse, spliceId } from '../../src/protocols/mcp/jsonrpc.ts';

// What the TypeScript SDK client sends for a tools/call, and what its server answers.
const request = '{"method":"tools/call","params":{"name":"b1__echo","arguments":{"message":"hello from the bench"}},"jsonrpc":"2.0","id":17}';
const small = '{"result":{"content":[{"type":"text","text":"hello from the bench"}]},"jsonrpc":"2.0","id":17}';
const big = `{"result":{"content":[{"type":"text","text":"${'x'.repeat(100 * 1024)}"}]},"jsonrpc":"2.0","id":17}`;
// The Python SDK's order: id first.
const headFirst = '{"jsonrpc":"2.0","id":17,"result":{"content":[{"type":"text","text":"hello"}]}}';
const parsed = JSON.parse(request) as unknown;
const err = new GatewayError(Errors.MCP_UNKNOWN_TOOL, 'Unknown tool: nope');

export const benches: MicroBench[] = [
  { name: 'JSON.parse tools/call request (baseline)', fn: () => JSON.parse(request) },
  { name: 'classify tools/call', fn: () => classify(parsed) },
  { name: 'findTopLevelId small (tail)', fn: () => findTopLevelId(small) },
  { name: 'findTopLevelId 100 KB (tail)', fn: () => findTopLevelId(big) },
  { name: 'findTopLevelId id first (head scan)', fn: () => findTopLevelId(headFirst) },
  { name: 'spliceId small', fn: () => spliceId(small, 'abc') },
  { name: 'spliceId 100 KB', fn: () => spliceId(big, 'abc'), iterations: 20_000 },
  { name: 'peekOutcome small', fn: () => peekOutcome(small) },
  { name: 'peekOutcome 100 KB head (256 B)', fn: () => peekOutcome(big.slice(0, 256)) },
  { name: 'peekKind small', fn: () => peekKind(small) },
  { name: 'resultResponse small', fn: () => resultResponse(17, { content: [{ type: 'text', text: 'hi' }] }) },
  { name: 'errorResponse', fn: () => errorResponse(17, err) },
];
