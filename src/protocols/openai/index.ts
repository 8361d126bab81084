/**
 * The OpenAI-compatible protocol (vLLM's server as the reference backend): Backends with `protocol: openai`.
 */
import type { ProtocolDefinition } from '../../gateway/adapter.ts';
import { OpenAiAdapter } from './adapter.ts';

export const openaiProtocol: ProtocolDefinition = {
  name: 'openai',
  protocols: ['openai'],
  create: (ctx) => new OpenAiAdapter(ctx),
};
