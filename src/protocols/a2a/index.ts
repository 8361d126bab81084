/**
 * The Agent2Agent protocol (A2A v1.0 and v0.3, JSON-RPC and HTTP+JSON bindings): Backends with `protocol: a2a`.
 */
import type { ProtocolDefinition } from '../../gateway/adapter.ts';
import { A2aAdapter } from './adapter.ts';

export const a2aProtocol: ProtocolDefinition = {
  name: 'a2a',
  protocols: ['a2a'],
  create: (ctx) => new A2aAdapter(ctx),
};
