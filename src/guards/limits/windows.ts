/**
 * Calendar windows (minute, hour, day, month) aligned in an IANA time zone: a daily budget in Europe/Paris resets at
 * local midnight, DST included. The current window of each kind is cached until it ends, so the hot path does one
 * comparison; Intl formatting runs once per window change.
 */
export type WindowKind = 'minute' | 'hour' | 'day' | 'month';

export interface Window {
  /**
   * Local calendar id, part of the budget's key: `2026-12-03` (day), `2026-12` (month), `2026-12-03T10h` (hour),
   * `2026-12-03T10h15` (minute). No `:`: it separates the parts of a key.
   */
  readonly id: string;
  readonly startMs: number;
  readonly endMs: number;
}

interface Local {
  readonly y: number;
  readonly mo: number;
  readonly d: number;
  readonly h: number;
  readonly mi: number;
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

export class Calendar {
  readonly timeZone: string;
  /** Undefined for UTC: its wall clock is Date's UTC fields, and no Intl formatter (ICU's zone data, ~20 ms at start) is built. */
  private readonly format: Intl.DateTimeFormat | undefined;
  private readonly cache = new Map<WindowKind, Window>();

  constructor(timeZone: string) {
    this.timeZone = timeZone;
    this.format = timeZone === 'UTC' ? undefined : new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
  }

  /** The window of `kind` containing the instant `nowMs`. */
  current(kind: WindowKind, nowMs: number): Window {
    const cached = this.cache.get(kind);
    if (cached !== undefined && nowMs >= cached.startMs && nowMs < cached.endMs) return cached;
    const w = this.compute(kind, nowMs);
    this.cache.set(kind, w);
    return w;
  }

  private compute(kind: WindowKind, nowMs: number): Window {
    const l = this.local(nowMs);
    let start: Local;
    let next: Local;
    let id: string;
    switch (kind) {
      case 'minute':
        start = l;
        next = { ...l, mi: l.mi + 1 };
        id = `${l.y}-${pad(l.mo)}-${pad(l.d)}T${pad(l.h)}h${pad(l.mi)}`;
        break;
      case 'hour':
        start = { ...l, mi: 0 };
        next = { ...l, h: l.h + 1, mi: 0 };
        id = `${l.y}-${pad(l.mo)}-${pad(l.d)}T${pad(l.h)}h`;
        break;
      case 'day':
        start = { ...l, h: 0, mi: 0 };
        next = { ...l, d: l.d + 1, h: 0, mi: 0 };
        id = `${l.y}-${pad(l.mo)}-${pad(l.d)}`;
        break;
      case 'month':
        start = { ...l, d: 1, h: 0, mi: 0 };
        next = { ...l, mo: l.mo + 1, d: 1, h: 0, mi: 0 };
        id = `${l.y}-${pad(l.mo)}`;
        break;
    }
    const startMs = this.toUtc(start);
    let endMs = this.toUtc(next);
    // A DST gap can put the computed start after now (e.g. a zone whose midnight does not exist): keep now inside.
    const s = Math.min(startMs, nowMs);
    if (endMs <= nowMs) endMs = nowMs + 1;
    return { id, startMs: s, endMs };
  }

  /** Local wall-clock fields of an instant in the zone. */
  private local(ms: number): Local & { s: number } {
    if (this.format === undefined) {
      const t = new Date(ms);
      return { y: t.getUTCFullYear(), mo: t.getUTCMonth() + 1, d: t.getUTCDate(), h: t.getUTCHours(), mi: t.getUTCMinutes(), s: t.getUTCSeconds() };
    }
    const parts = this.format.formatToParts(new Date(ms));
    const get = (type: Intl.DateTimeFormatPartTypes): number => Number(parts.find((p) => p.type === type)?.value ?? 0);
    return { y: get('year'), mo: get('month'), d: get('day'), h: get('hour'), mi: get('minute'), s: get('second') };
  }

  /** Offset of the zone at an instant: local wall time minus UTC, in ms. */
  private offset(ms: number): number {
    const whole = Math.floor(ms / 1000) * 1000;
    const l = this.local(whole);
    return Date.UTC(l.y, l.mo - 1, l.d, l.h, l.mi, l.s) - whole;
  }

  /** The UTC instant of a local wall time (fields may overflow: Date.UTC normalises them). */
  private toUtc(l: Local): number {
    const wall = Date.UTC(l.y, l.mo - 1, l.d, l.h, l.mi);
    const first = wall - this.offset(wall);
    return wall - this.offset(first);
  }
}
