import type { ConfigSnapshot } from '../config/load.ts';
import type { Pipeline } from '../core/pipeline.ts';

/**
 * What a request reads: the config snapshot and the pipeline built for it. Swapped as one immutable object on
 * reload, so a request that started under one config finishes under it.
 */
export interface GatewayState {
  readonly snapshot: ConfigSnapshot;
  readonly pipeline: Pipeline;
}
