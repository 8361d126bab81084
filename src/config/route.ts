/** Route objects of the config (routes/*.yaml): which requests go to which backends, and virtual MCP servers. */
import { z } from 'zod';
import { a2aRouteSpec } from './a2a.ts';
import { durationMs, objectName } from './common.ts';
import { bodyBytes } from './listener.ts';
import { reservedPathOf } from './reserved-paths.ts';
import { routeAuthSpec } from '../guards/identity/config.ts';
import { routePolicySpec } from '../guards/policy/config.ts';
import { modelRouteSpec } from '../upstream/models.ts';

const pathMatch = z.strictObject({
  type: z.enum(['Exact', 'PathPrefix']).default('PathPrefix'),
  value: z
    .string()
    .regex(/^\/[^?#\s]*$/, 'must be an absolute path without query')
    .superRefine((v, ctx) => {
      const r = reservedPathOf(v);
      if (r !== undefined) ctx.addIssue({ code: 'custom', message: `${v} would shadow the gateway's own ${r} endpoint: choose another path` });
    }),
});

const headerMatch = z.strictObject({
  type: z.enum(['Exact', 'RegularExpression']).default('Exact'),
  name: z.string().min(1),
  value: z.string(),
});

const routeRule = z.strictObject({
  name: z.string().optional(),
  matches: z
    .array(z.strictObject({ path: pathMatch.prefault({ value: '/' }), headers: z.array(headerMatch).default([]) }))
    .min(1),
  backendRefs: z.array(z.strictObject({ name: objectName })).min(1),
});

/** One tool of a virtual server: which backend's tool, and how it is shown. */
const virtualTool = z.strictObject({
  backend: objectName,
  tool: z.string().min(1),
  /** Public name (default: the tool's own name). */
  name: z.string().regex(/^[A-Za-z0-9_.-]{1,128}$/, 'must be 1-128 of [A-Za-z0-9_.-] (MCP tool name)').optional(),
  description: z.string().optional(),
});

/** A curated subset of tools from the rule's backends, served at <mount>/<name>. */
const virtualServer = z
  .strictObject({ name: objectName, description: z.string().optional(), tools: z.array(virtualTool).min(1) })
  .superRefine((v, ctx) => {
    const seen = new Set<string>();
    v.tools.forEach((t, i) => {
      const name = t.name ?? t.tool;
      if (seen.has(name)) ctx.addIssue({ code: 'custom', path: ['tools', i], message: `duplicate public tool name "${name}"` });
      seen.add(name);
    });
  });
export type VirtualServerSpec = z.infer<typeof virtualServer>;

export const routeSpec = z.strictObject({
  /**
   * HTTP settings of this route. `maxBodyBytes` overrides the Gateway's `http.maxBodyBytes` (a KServe route
   * carrying tensors needs far more than an MCP route); adapters that parse a body read it bounded by this, those
   * that stream it through count it and refuse it (413) as soon as it is exceeded.
   */
  http: z.strictObject({ maxBodyBytes: bodyBytes.optional() }).optional(),
  /** Which issuers this route accepts; absent: any configured SPIFFE trust domain. Anonymous only if said. */
  auth: routeAuthSpec.optional(),
  rules: z.array(routeRule).min(1),
  /** MCP routes: virtual servers built from the backends of the route's rules. */
  mcp: z.strictObject({ virtualServers: z.array(virtualServer).default([]) }).optional(),
  /**
   * Model routes (OpenAI-compatible, KServe): which backend of the rules serves each model name callers use (exact
   * with aliases, or a `*` pattern), and its name there. Absent: the models the backends advertise, as they are.
   */
  models: z.array(modelRouteSpec).optional(),
  /** OpenAI-compatible routes. */
  openai: z
    .strictObject({
      /**
       * The reservation estimate of prompt tokens: `bytes` (the JSON bytes of the prompt as sent, over
       * `bytesPerToken`: no extra round trip, an over-estimate for most text) or `tokenize` (the backend's /tokenize:
       * exact, one more round trip before the first token).
       */
      promptTokens: z
        .strictObject({ estimate: z.enum(['bytes', 'tokenize']).default('bytes'), bytesPerToken: z.number().min(1).max(16).default(3) })
        .prefault({}),
      /** Largest prompt (messages, prompt or input, as sent), in bytes: over it, 400 TG_PROMPT_TOO_LARGE. */
      maxPromptBytes: z.number().int().min(1).optional(),
      /** Give policies the prompt itself (messages / prompt / input); by default only its shape (counts, bytes, roles). */
      policyContent: z.boolean().default(false),
      /** How long a backend's model list (GET /v1/models) is reused for /v1/models and routing without `models`. */
      modelsCacheMs: durationMs.default(30_000),
    })
    .optional(),
  /** A2A routes (agents at <mount>/<agent>, src/protocols/a2a): src/config/a2a.ts. */
  a2a: a2aRouteSpec.optional(),
  /** KServe v2 (Triton) routes. */
  kserve: z
    .strictObject({
      /**
       * Largest JSON header of a binary-tensor infer request (`Inference-Header-Content-Length`), the only part of such
       * a body the gateway reads (for policy); the tensor bytes after it stream through unread.
       */
      maxHeaderBytes: z.number().int().min(64).max(64 * 1024 * 1024).default(1024 * 1024),
      /**
       * generate_stream: count one output token per event carrying output (Triton reports no usage), so budgets and
       * audit see what streamed; false: the call is marked unmetered (budgets charge its whole reservation).
       */
      countStreamEvents: z.boolean().default(false),
      /** generate / generate_stream: prompt tokens reserved per this many bytes of `text_input`. */
      bytesPerToken: z.number().min(1).max(16).default(3),
      /** Give policies `text_input` itself (generate); by default only its size. */
      policyContent: z.boolean().default(false),
    })
    .optional(),
  /** Route-level policy override (src/guards/policy/config.ts). */
  policy: routePolicySpec.optional(),
});
export type RouteSpec = z.infer<typeof routeSpec>;
