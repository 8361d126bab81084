/**
 * A test backend speaking the OpenAI chat completions streaming format as vLLM does: `data: {chunk}` events, one
 * token per chunk, a final chunk with `finish_reason`, then (with `stream_options.include_usage`) a chunk with empty
 * `choices` and `usage`, then `data: [DONE]`. What it generates is driven by the last user message:
 *   "words N"          N tokens (capped by max_tokens)
 *   "words N break K"  K tokens, then the connection is destroyed (a backend dying mid-stream)
 * prompt_tokens is the number of whitespace-separated words in all messages, plus 3 per message (a chat template).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface OpenAiStreamServer {
  readonly url: string;
  /** Requests received (the body as parsed). */
  readonly requests: Array<Record<string, unknown>>;
  close(): Promise<void>;
}

interface ChatRequest {
  model?: string;
  messages?: Array<{ role: string; content: string }>;
  max_tokens?: number;
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
}

export function promptTokens(messages: ReadonlyArray<{ content: string }>): number {
  return messages.reduce((n, m) => n + m.content.split(/\s+/).filter(Boolean).length + 3, 0);
}

export async function startOpenAiStreamServer(opts: { tokenDelayMs?: number } = {}): Promise<OpenAiStreamServer> {
  const requests: OpenAiStreamServer['requests'] = [];
  const delay = opts.tokenDelayMs ?? 1;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as ChatRequest;
        requests.push(body as Record<string, unknown>);
        if (req.url !== '/v1/chat/completions' || !body.stream) {
          res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: 'streaming chat completions only', type: 'invalid_request_error' } }));
          return;
        }
        const messages = body.messages ?? [];
        const last = messages.at(-1)?.content ?? '';
        const m = /words (\d+)(?: break (\d+))?/.exec(last);
        const wanted = Number(m?.[1] ?? 16);
        const breakAt = m?.[2] === undefined ? undefined : Number(m[2]);
        const n = Math.min(wanted, body.max_tokens ?? Number.MAX_SAFE_INTEGER);
        const id = `chatcmpl-${requests.length}`;
        const created = Math.floor(Date.now() / 1000);
        const chunk = (choices: unknown[], extra: Record<string, unknown> = {}): string =>
          `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: body.model, choices, ...extra })}\n\n`;
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        res.write(chunk([{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]));
        for (let i = 0; i < n; i++) {
          if (breakAt !== undefined && i === breakAt) {
            res.socket?.destroy();
            return;
          }
          res.write(chunk([{ index: 0, delta: { content: `t${i} ` }, logprobs: null, finish_reason: null }]));
          await new Promise((r) => setTimeout(r, delay));
        }
        res.write(chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: n < wanted ? 'length' : 'stop' }]));
        if (body.stream_options?.include_usage) {
          const p = promptTokens(messages);
          res.write(chunk([], { usage: { prompt_tokens: p, completion_tokens: n, total_tokens: p + n } }));
        }
        res.end('data: [DONE]\n\n');
      })();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
