/**
 * Builds the ordered guard pipeline for a config snapshot:
 * authenticate -> authorize -> limit -> (forward) -> account -> audit.
 * Each guard is a long-lived service reconfigured from the snapshot; a guard that the config does not enable is
 * simply absent (an empty pipeline forwards everything).
 */
import type { ConfigSnapshot } from '../config/load.ts';
import { Pipeline, type Guard, type GuardServices, type PipelineObserver } from '../core/pipeline.ts';

export type { GuardServices } from '../core/pipeline.ts';

export function buildPipeline(snapshot: ConfigSnapshot, services: readonly GuardServices[], observer?: PipelineObserver): Pipeline {
  const guards: Guard[] = [];
  for (const s of services) guards.push(...s.guardsFor(snapshot));
  return new Pipeline(guards, observer);
}
