/**
 * The OpenAI-compatible hot path outside the network: reading a chat request (parse, member ranges, policy
 * arguments, estimate, in-place edits) and relaying a stream chunk by chunk (event framing, usage reading).
 */
import type { MicroBench } from '../micro.ts';
import { Call } from '../../src/core/call.ts';
import { POST_OPERATIONS } from '../../src/protocols/openai/operations.ts';
import { estimatePromptTokens, parseBody, policyArguments, upstreamBody } from '../../src/protocols/openai/request.ts';
import { CompletionStream } from '../../src/protocols/openai/stream.ts';

const chat = POST_OPERATIONS.get('/chat/completions')!;
const request = Buffer.from(
  JSON.stringify({
    model: 'llama-3.1-8b-instruct',
    messages: [
      { role: 'system', content: 'You are a helpful assistant that answers briefly.' },
      { role: 'user', content: 'What is the capital of France? Answer in one word, then explain why in two sentences.' },
    ],
    max_tokens: 256,
    temperature: 0.2,
    stream: true,
    top_k: 40,
  }),
);
const big = Buffer.from(JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'x'.repeat(100 * 1024) }], stream: true }));
const parsed = parseBody(request);
const chunk = Buffer.from(
  'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1767225600,"model":"meta-llama/Llama-3.1-8B-Instruct","choices":[{"index":0,"delta":{"content":" Paris"},"logprobs":null,"finish_reason":null}]}\n\n',
);
const usage = Buffer.from('data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1767225600,"model":"m","choices":[],"usage":{"prompt_tokens":30,"total_tokens":286,"completion_tokens":256}}\n\n');

function call(): Call {
  return new Call({ id: 'x', protocol: 'openai', operation: 'chat.completions', route: { name: 'r', spec: { rules: [] } as never }, request: { method: 'POST', path: '/v1/chat/completions', headers: {}, remoteAddress: '' } });
}

let stream = new CompletionStream(call(), true);

export const benches: MicroBench[] = [
  { name: 'JSON.parse chat request (baseline)', fn: () => JSON.parse(request.toString('utf8')) },
  { name: 'parseBody chat request (parse + member ranges)', fn: () => parseBody(request) },
  { name: 'parseBody 100 KB prompt', fn: () => parseBody(big), iterations: 5_000 },
  { name: 'policyArguments chat request', fn: () => policyArguments(parsed, false) },
  { name: 'estimatePromptTokens chat request', fn: () => estimatePromptTokens(parsed, 3) },
  { name: 'upstreamBody: rewrite model + include_usage', fn: () => upstreamBody(parsed, { model: 'meta-llama/Llama-3.1-8B-Instruct', includeUsage: true }) },
  {
    name: 'CompletionStream: one token chunk (frame, read, relay)',
    setup: () => {
      stream = new CompletionStream(call(), true);
    },
    fn: () => stream.chunk(chunk),
  },
  { name: 'CompletionStream: usage chunk dropped', fn: () => stream.chunk(usage) },
];
