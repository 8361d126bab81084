/**
 * The one shape of a secret reference in config: `valueFrom: {env}` or `valueFrom: {file}`, never an inline value.
 * Kept in a module of its own (no imports from the rest of config) so every config section can use it without
 * an import cycle through schema.ts.
 */
import { z } from 'zod';

export const secretValueFrom = z.union([
  z.strictObject({ env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name') }),
  z.strictObject({ file: z.string().min(1) }),
]);

export const secretRef = z.strictObject({ valueFrom: secretValueFrom });
export type SecretRef = z.infer<typeof secretRef>;
