/** Small shapes shared by the config schemas (schema.ts, route.ts). */
import { z } from 'zod';

/** Kubernetes-style object name: lowercase alphanumerics and '-', so it can prefix MCP tool names safely. */
export const objectName = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/, 'must be lowercase letters, digits and "-" (Kubernetes name), at most 63 chars');

/** A duration in whole milliseconds. */
export const durationMs = z.number().int().min(0);
