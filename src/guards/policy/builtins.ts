/**
 * Built-in functions the OPA WASM runtime lacks (time.*, crypto.*, io.jwt.decode...), implemented in JS and
 * handed to opa-wasm as custom builtins. `CUSTOM_BUILTIN_NAMES` is merged into the capabilities used at build time,
 * so a policy may call exactly these beside the WASM-native ones, and anything else fails at build time.
 *
 * OPA semantics kept: time.now_ns() is one value for a whole evaluation; a builtin error makes the expression
 * undefined (returning undefined hands address 0 back to the WASM, which it treats as undefined), never a crash.
 * Nanosecond results are returned as raw JSON text (an ArrayBuffer) because they exceed 2^53.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/** Per-engine clock: `reset()` before each evaluation makes time.now_ns() stable within it. */
export class EvalClock {
  private now: ArrayBuffer | undefined;

  reset(): void {
    this.now = undefined;
  }

  nowNs(): ArrayBuffer {
    this.now ??= rawNumber(nowNsString());
    return this.now;
  }
}

const encoder = new TextEncoder();

/** JSON text of a number, handed to opa-wasm as-is (exact int64 nanoseconds). */
function rawNumber(digits: string): ArrayBuffer {
  return encoder.encode(digits).buffer as ArrayBuffer;
}

/** Wall-clock time in nanoseconds, microsecond resolution, as decimal digits. */
function nowNsString(): string {
  const us = Math.floor((performance.timeOrigin + performance.now()) * 1000);
  return `${us}000`;
}

const NS_PER_MS = 1_000_000;
const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

/** A time.* argument: `ns` or `[ns, tz]`. */
function timeArg(x: unknown): { ms: number; tz: string } | undefined {
  if (typeof x === 'number') return { ms: Math.floor(x / NS_PER_MS), tz: 'UTC' };
  if (Array.isArray(x) && typeof x[0] === 'number' && (x[1] === undefined || typeof x[1] === 'string')) {
    const tz = x[1] === undefined || x[1] === '' ? 'UTC' : x[1];
    return { ms: Math.floor(x[0] / NS_PER_MS), tz };
  }
  return undefined;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** Calendar fields of an instant in a time zone (Go's "Local" is the process's zone). */
function fields(ms: number, tz: string): { y: number; mo: number; d: number; h: number; mi: number; s: number; wd: number } | undefined {
  if (tz === 'UTC') {
    const t = new Date(ms);
    return { y: t.getUTCFullYear(), mo: t.getUTCMonth() + 1, d: t.getUTCDate(), h: t.getUTCHours(), mi: t.getUTCMinutes(), s: t.getUTCSeconds(), wd: t.getUTCDay() };
  }
  let f = formatters.get(tz);
  if (!f) {
    try {
      f = new Intl.DateTimeFormat('en-US', {
        timeZone: tz === 'Local' ? undefined : tz,
        hourCycle: 'h23',
        year: 'numeric',
        month: 'numeric',
        day: 'numeric',
        hour: 'numeric',
        minute: 'numeric',
        second: 'numeric',
        weekday: 'short',
      });
    } catch {
      return undefined; // unknown time zone: undefined, as OPA's error would make it
    }
    formatters.set(tz, f);
  }
  const parts: Record<string, string> = {};
  for (const p of f.formatToParts(new Date(ms))) parts[p.type] = p.value;
  const wd = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'].indexOf(parts.weekday ?? '');
  return { y: Number(parts.year), mo: Number(parts.month), d: Number(parts.day), h: Number(parts.hour), mi: Number(parts.minute), s: Number(parts.second), wd };
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;

function parseRfc3339Ns(s: unknown): ArrayBuffer | undefined {
  if (typeof s !== 'string') return undefined;
  const m = RFC3339.exec(s);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, sec, frac, zone] = m;
  let ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(sec));
  if (Number.isNaN(ms)) return undefined;
  if (zone !== 'Z' && zone !== 'z') {
    const sign = zone![0] === '-' ? -1 : 1;
    ms -= sign * (Number(zone!.slice(1, 3)) * 60 + Number(zone!.slice(4, 6))) * 60_000;
  }
  const fracNs = frac ? BigInt(frac.slice(1).padEnd(9, '0')) : 0n;
  return rawNumber(String(BigInt(ms) * 1_000_000n + fracNs));
}

const DURATION_UNITS: Record<string, number> = { ns: 1, us: 1e3, 'µs': 1e3, 'μs': 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
const DURATION = /^([+-]?)((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$/;
const DURATION_PART = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g;

/** Go's time.ParseDuration. */
function parseDurationNs(s: unknown): number | undefined {
  if (typeof s !== 'string') return undefined;
  if (s === '0' || s === '+0' || s === '-0') return 0;
  const m = DURATION.exec(s);
  if (!m) return undefined;
  let total = 0;
  for (const part of s.matchAll(DURATION_PART)) total += Number(part[1]) * DURATION_UNITS[part[2]!]!;
  return Math.round(m[1] === '-' ? -total : total);
}

function addDate(ns: unknown, years: unknown, months: unknown, days: unknown): ArrayBuffer | undefined {
  if (typeof ns !== 'number' || typeof years !== 'number' || typeof months !== 'number' || typeof days !== 'number') return undefined;
  const ms = Math.floor(ns / NS_PER_MS);
  const rest = ns - ms * NS_PER_MS;
  const t = new Date(ms);
  // Date normalises overflow (Oct 31 + 1 month = Dec 1) exactly as Go's AddDate does.
  t.setUTCFullYear(t.getUTCFullYear() + years, t.getUTCMonth() + months, t.getUTCDate() + days);
  return rawNumber(String(BigInt(t.getTime()) * 1_000_000n + BigInt(Math.round(rest))));
}

function hexDigest(alg: string, x: unknown): string | undefined {
  return typeof x === 'string' ? createHash(alg).update(x).digest('hex') : undefined;
}

function hmac(alg: string, x: unknown, key: unknown): string | undefined {
  return typeof x === 'string' && typeof key === 'string' ? createHmac(alg, key).update(x).digest('hex') : undefined;
}

function stringsOf(x: unknown): string[] | undefined {
  if (typeof x === 'string') return [x];
  if (Array.isArray(x) && x.every((e) => typeof e === 'string')) return x as string[];
  return undefined;
}

function anyMatch(search: unknown, base: unknown, test: (s: string, b: string) => boolean): boolean | undefined {
  const ss = stringsOf(search);
  const bs = stringsOf(base);
  if (!ss || !bs) return undefined;
  return ss.some((s) => bs.some((b) => test(s, b)));
}

function b64urlJson(part: string): unknown {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

/** io.jwt.decode: [header, payload, signature hex]; never verifies (that is io.jwt.decode_verify's job). */
function jwtDecode(token: unknown): unknown[] | undefined {
  if (typeof token !== 'string') return undefined;
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const header = b64urlJson(parts[0]!);
    const payload = b64urlJson(parts[1]!);
    if (typeof header !== 'object' || header === null || typeof payload !== 'object' || payload === null) return undefined;
    return [header, payload, Buffer.from(parts[2]!, 'base64url').toString('hex')];
  } catch {
    return undefined;
  }
}

type Builtin = (...args: unknown[]) => unknown;

/** The custom builtins for one engine (the clock is that engine's). Keys are the OPA builtin names. */
export function customBuiltins(clock: EvalClock): Record<string, Builtin> {
  return {
    'time.now_ns': () => clock.nowNs(),
    'time.parse_rfc3339_ns': (s) => parseRfc3339Ns(s),
    'time.parse_duration_ns': (s) => parseDurationNs(s),
    'time.add_date': (ns, y, m, d) => addDate(ns, y, m, d),
    'time.date': (x) => {
      const a = timeArg(x);
      const f = a && fields(a.ms, a.tz);
      return f && [f.y, f.mo, f.d];
    },
    'time.clock': (x) => {
      const a = timeArg(x);
      const f = a && fields(a.ms, a.tz);
      return f && [f.h, f.mi, f.s];
    },
    'time.weekday': (x) => {
      const a = timeArg(x);
      const f = a && fields(a.ms, a.tz);
      return f && DAYS[f.wd];
    },
    'crypto.sha256': (x) => hexDigest('sha256', x),
    'crypto.hmac.sha256': (x, k) => hmac('sha256', x, k),
    'crypto.hmac.equal': (a, b) => {
      if (typeof a !== 'string' || typeof b !== 'string') return undefined;
      const x = Buffer.from(a);
      const y = Buffer.from(b);
      return x.length === y.length && timingSafeEqual(x, y);
    },
    'strings.any_prefix_match': (s, b) => anyMatch(s, b, (x, p) => x.startsWith(p)),
    'strings.any_suffix_match': (s, b) => anyMatch(s, b, (x, p) => x.endsWith(p)),
    'io.jwt.decode': (t) => jwtDecode(t),
  };
}

/** Names of the builtins above, for the build-time capabilities. */
export const CUSTOM_BUILTIN_NAMES: readonly string[] = Object.freeze(Object.keys(customBuiltins(new EvalClock())));
