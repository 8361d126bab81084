/**
 * What the limits guard tells adapters about a caller's limits, protocol-neutral: each adapter renders it in its own
 * shape. A refusal (TG_RATE_LIMITED / TG_BUDGET_EXCEEDED) carries the notices in `GatewayError.data.limits` and the
 * plain-HTTP headers (Retry-After, the IETF RateLimit-Policy / RateLimit fields) in `GatewayError.headers`; an
 * admitted call's are given by `limitNoticesOf(call)`. OpenAI-compatible adapters add the
 * `x-ratelimit-*` headers OpenAI's clients read with `openAiRateLimitHeaders`.
 */
import type { Call } from './call.ts';

/** One limit as the caller may see it (its own counters only, never another caller's). */
export interface LimitNotice {
  /** The limit's configured name. */
  readonly name: string;
  /** What it counts: requests (a rate limit), tokens or cost (a budget). */
  readonly unit: 'requests' | 'tokens' | 'cost';
  /** The quota per window: `requests` per `windowSeconds` for a rate, the budget's amount for a budget. */
  readonly quota: number;
  readonly windowSeconds: number;
  /** What is left now (after this call when it was admitted). */
  readonly remaining: number;
  /** Seconds until the quota is available again: the retry hint of a refusal, else until fully reset. */
  readonly resetSeconds: number;
}

/** Scratch key of a call's notices: an array, or a function computing it (built only when an adapter asks). */
export const NOTICES_KEY = 'limits:notices';

/** The notices an admitted or refused call carries (empty when no limit applied). */
export function limitNoticesOf(call: Call): readonly LimitNotice[] {
  const noted = call.scratch.get(NOTICES_KEY) as readonly LimitNotice[] | (() => readonly LimitNotice[]) | undefined;
  if (noted === undefined) return [];
  return typeof noted === 'function' ? noted() : noted;
}

/** An sf-string (RFC 9651) for a limit name: names are Kubernetes names, but quote defensively. */
function sfString(s: string): string {
  return `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/**
 * Retry-After plus the IETF RateLimit-Policy and RateLimit fields (draft-ietf-httpapi-ratelimit-headers) for request
 * rates. Budgets have no registered quota unit in the draft, so they only set Retry-After (end of their window).
 */
export function httpRateLimitHeaders(notices: readonly LimitNotice[], retryAfterSeconds: number | undefined): Record<string, string> {
  const headers: Record<string, string> = {};
  if (retryAfterSeconds !== undefined) headers['retry-after'] = String(Math.max(0, Math.ceil(retryAfterSeconds)));
  const rates = notices.filter((n) => n.unit === 'requests');
  if (rates.length > 0) {
    headers['ratelimit-policy'] = rates.map((n) => `${sfString(n.name)};q=${n.quota};w=${Math.max(1, Math.ceil(n.windowSeconds))}`).join(', ');
    headers.ratelimit = rates.map((n) => `${sfString(n.name)};r=${Math.max(0, Math.floor(n.remaining))};t=${Math.max(0, Math.ceil(n.resetSeconds))}`).join(', ');
  }
  return headers;
}

/** A duration as OpenAI writes it in x-ratelimit-reset-*: `20ms`, `1.5s`, `6m0s`, `1h2m3s`. */
export function openAiDuration(seconds: number): string {
  if (seconds < 1) return `${Math.max(0, Math.ceil(seconds * 1000))}ms`;
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = Math.round((seconds % 60) * 1000) / 1000;
  if (h > 0) return `${h}h${m}m${s}s`;
  if (m > 0) return `${m}m${s}s`;
  return `${s}s`;
}

/**
 * OpenAI's rate-limit headers (`x-ratelimit-{limit,remaining,reset}-{requests,tokens}`), from the tightest request
 * rate and the tightest token budget that applied.
 */
export function openAiRateLimitHeaders(notices: readonly LimitNotice[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const unit of ['requests', 'tokens'] as const) {
    let tightest: LimitNotice | undefined;
    for (const n of notices) if (n.unit === unit && (tightest === undefined || n.remaining < tightest.remaining)) tightest = n;
    if (tightest === undefined) continue;
    headers[`x-ratelimit-limit-${unit}`] = String(tightest.quota);
    headers[`x-ratelimit-remaining-${unit}`] = String(Math.max(0, Math.floor(tightest.remaining)));
    headers[`x-ratelimit-reset-${unit}`] = openAiDuration(tightest.resetSeconds);
  }
  return headers;
}
