/**
 * The Gateway's `audit` section: where the tamper-evident log goes, how it is signed, how full its buffer may get and
 * what happens then, and how much of a call's arguments it keeps.
 */
import { z } from 'zod';

const durationMs = z.number().int().min(0);

/** Same shape as a Backend secret: the key never sits inline in the config. */
const keyRef = z.strictObject({
  valueFrom: z.union([
    z.strictObject({ env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name') }),
    z.strictObject({ file: z.string().min(1) }),
  ]),
});

/** Argument names redacted by default wherever they appear in a call's arguments. */
export const DEFAULT_REDACT_KEYS = ['password', 'passwd', 'secret', 'token', 'api[-_]?key', 'authorization', 'cookie', 'private[-_]?key', 'credential'];

export const auditSpec = z.strictObject({
  enabled: z.boolean().default(true),
  /** Segment directory; relative paths are resolved against the data dir. */
  dir: z.string().min(1).default('audit'),
  /**
   * Ed25519 private key (PKCS#8 PEM) that signs segment heads and checkpoints. Absent: one is generated once in the
   * data dir (`audit-signing-key.pem`, mode 0600) with its public half beside it.
   */
  signingKey: keyRef.optional(),
  buffer: z
    .strictObject({
      /** Records accepted but not yet written. When reached, new calls wait (`block`) or are refused (`fail`). */
      maxRecords: z.number().int().min(16).default(65_536),
      onFull: z.enum(['block', 'fail']).default('block'),
      /** In `block` mode, how long a call waits for room before it is refused with TG_AUDIT_UNAVAILABLE. */
      blockTimeoutMs: durationMs.default(10_000),
    })
    .prefault({}),
  segment: z
    .strictObject({
      maxRecords: z.number().int().min(10).default(50_000),
      maxBytes: z.number().int().min(4096).max(2 ** 31).default(64 * 1024 * 1024),
      maxAgeMs: durationMs.default(3_600_000),
    })
    .prefault({}),
  /** A signed checkpoint is appended after this many records or this long after the first unsigned one. */
  checkpoint: z
    .strictObject({ everyRecords: z.number().int().min(1).default(1_000), everyMs: durationMs.min(10).default(1_000) })
    .prefault({}),
  /** `batch`: fdatasync after every batch written (default); `interval`: at most once a second; `none`: leave it to the OS. */
  sync: z.enum(['batch', 'interval', 'none']).default('batch'),
  arguments: z
    .strictObject({
      /** `include` (redacting sensitive keys and what policy obligations name), `redact` (keys kept, values hidden), `omit`. */
      mode: z.enum(['include', 'redact', 'omit']).default('include'),
      /** Case-insensitive regular expressions over argument names whose values are always redacted. */
      redactKeys: z.array(z.string().min(1)).default(DEFAULT_REDACT_KEYS),
      /** Larger serialised arguments are replaced by their size and SHA-256. */
      maxBytes: z.number().int().min(64).default(8_192),
    })
    .prefault({}),
  /**
   * One `decision` record per policy evaluation (list filtering included) with its masked input, result and bundle
   * revision, from the policy's decision log. Off: decisions appear only inside call records (the last one per call).
   */
  decisions: z.boolean().default(true),
  sinks: z
    .strictObject({
      /** Each record (as written, with seq and prev hash) also as a JSON line on stdout. */
      stdout: z.boolean().default(false),
      /** Each record also as an OTLP log record (needs an OTLP logs exporter configured through OTEL_* variables). */
      otlp: z.boolean().default(false),
    })
    .prefault({}),
});
export type AuditSpec = z.infer<typeof auditSpec>;
