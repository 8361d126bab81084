/** The `a2a` section of a Route (agents at <mount>/<agent>, served by src/protocols/a2a). */
import { z } from 'zod';
import { secretRef } from './secret.ts';

const durationMs = z.number().int().min(0);

export const a2aRouteSpec = z.strictObject({
  /**
   * The A2A version of a request without an `A2A-Version` header whose method name does not tell (REST paths
   * shared by both versions). The specification says 0.3; many 1.0 clients omit the header.
   */
  defaultVersion: z.enum(['1.0', '0.3']).default('0.3'),
  /** The skill a message that names none is for, per agent (policy and limits see it). */
  defaultSkills: z.record(z.string(), z.string().min(1)).default({}),
  /** How long an agent card is served from cache before it is revalidated with the agent (ETag). */
  cardCacheMs: durationMs.default(60_000),
  /** Put the call's W3C trace context in the message's metadata too (`traceparent`, `tracestate`). */
  traceMetadata: z.boolean().default(false),
  /** How long the gateway remembers which identity created a task (only that identity may use it). */
  taskTtlMs: durationMs.default(7 * 24 * 3_600_000),
  /**
   * Push-notification URLs callers may give agents: none unless listed. `https` only (http only when
   * `allowHttp`); hosts exact or `*.suffix`; a host resolving to a loopback, private, link-local or metadata
   * address is refused whatever the list says.
   */
  push: z
    .strictObject({
      allowHosts: z.array(z.string().min(1)).default([]),
      allowHttp: z.boolean().default(false),
      /**
       * Who delivers the notifications: `gateway` (the agent is given a relay URL of the gateway, which delivers to
       * the caller's URL with the guard held again at delivery: DNS re-checked and pinned, no redirects, bounded
       * retries, audited), or `agent` (the agent is given the caller's URL and delivers itself, unguarded after the
       * check at registration).
       */
      deliver: z.enum(['gateway', 'agent']).default('gateway'),
    })
    .prefault({}),
  /**
   * Re-sign the cards the gateway serves (1.0 cards: a JWS over the RFC 8785 canonical card, as the A2A SDKs verify
   * it) with this key: a PKCS#8 PEM private key (EC P-256 for ES256, Ed25519 for EdDSA). Absent: the agent's
   * signatures are removed (rewriting a card breaks them) and none is added.
   */
  cardSigning: z
    .strictObject({
      key: secretRef,
      keyId: z.string().min(1),
      /** Where verifiers find the public key (the JWS `jku` header), optional. */
      jku: z.url().optional(),
    })
    .optional(),
});
export type A2aRouteSpec = z.infer<typeof a2aRouteSpec>;
