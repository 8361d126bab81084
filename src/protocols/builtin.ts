/**
 * The protocols a Tollgate binary serves. Adding a protocol is adding its folder under src/protocols/ and its
 * definition here; the gateway itself never changes (src/gateway/registry.ts).
 */
import type { ProtocolDefinition } from '../gateway/adapter.ts';
import { a2aProtocol } from './a2a/index.ts';
import { kserveProtocol } from './kserve/index.ts';
import { mcpProtocol } from './mcp/index.ts';
import { openaiProtocol } from './openai/index.ts';

export const BUILTIN_PROTOCOLS: readonly ProtocolDefinition[] = [mcpProtocol, openaiProtocol, kserveProtocol, a2aProtocol];
