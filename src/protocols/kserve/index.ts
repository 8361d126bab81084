/**
 * The KServe v2 protocol (Triton Inference Server as the reference backend): Backends with `protocol: kserve`.
 */
import type { ProtocolDefinition } from '../../gateway/adapter.ts';
import { KServeAdapter } from './adapter.ts';

export const kserveProtocol: ProtocolDefinition = {
  name: 'kserve',
  protocols: ['kserve'],
  create: (ctx) => new KServeAdapter(ctx),
};
