/**
 * Edits of a JSON object's top-level members made in its original bytes, so that everything the gateway does not
 * change reaches the upstream exactly as the client sent it (number spellings, escapes, key order, members the
 * gateway does not know: vLLM's extra sampling parameters, guided_* fields). Re-serialising a parsed body would
 * round large integers and rewrite escapes.
 *
 * `topLevelMembers` expects text that JSON.parse accepted as an object (callers parse first): it only finds where
 * each member's value starts and ends.
 */

/** Where a top-level member's value is in the text (UTF-16 offsets): [start, end). */
export interface MemberRange {
  readonly start: number;
  readonly end: number;
}

function skipWs(s: string, i: number): number {
  for (;;) {
    const c = s.charCodeAt(i);
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
    else return i;
  }
}

/**
 * End (exclusive) of the string starting at `i` (a quote): the next quote not escaped. indexOf rather than a loop
 * over characters: prompts are long strings, and this is most of the scan (5x faster on a 100 KB prompt).
 */
function skipString(s: string, i: number): number {
  let from = i + 1;
  for (;;) {
    const q = s.indexOf('"', from);
    if (q === -1) throw new Error('unterminated string');
    let slashes = 0;
    for (let b = q - 1; s.charCodeAt(b) === 0x5c /* \\ */; b--) slashes++;
    if (slashes % 2 === 0) return q + 1;
    from = q + 1;
  }
}

/** End (exclusive) of the value starting at `i`. */
function skipValue(s: string, i: number): number {
  const c = s.charCodeAt(i);
  if (c === 0x22) return skipString(s, i);
  if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
    let depth = 0;
    for (;;) {
      const d = s.charCodeAt(i);
      if (d === 0x22) {
        i = skipString(s, i);
        continue;
      }
      if (d === 0x7b || d === 0x5b) depth++;
      else if (d === 0x7d || d === 0x5d) {
        depth--;
        if (depth === 0) return i + 1;
      } else if (Number.isNaN(d)) throw new Error('unterminated value');
      i++;
    }
  }
  // number, true, false, null: up to the next delimiter
  while (i < s.length) {
    const d = s.charCodeAt(i);
    if (d === 0x2c || d === 0x7d || d === 0x5d || d === 0x20 || d === 0x0a || d === 0x0d || d === 0x09) break;
    i++;
  }
  return i;
}

/** The value range of every top-level member, by key (the last one wins for a duplicate key, as in JSON.parse). */
export function topLevelMembers(text: string): Map<string, MemberRange> {
  const out = new Map<string, MemberRange>();
  let i = skipWs(text, 0);
  if (text.charCodeAt(i) !== 0x7b) throw new Error('not a JSON object');
  i = skipWs(text, i + 1);
  if (text.charCodeAt(i) === 0x7d) return out;
  for (;;) {
    const keyEnd = skipString(text, i);
    const key = JSON.parse(text.slice(i, keyEnd)) as string;
    i = skipWs(text, keyEnd);
    i = skipWs(text, i + 1); // ':'
    const end = skipValue(text, i);
    out.set(key, { start: i, end });
    i = skipWs(text, end);
    if (text.charCodeAt(i) === 0x7d) return out;
    i = skipWs(text, i + 1); // ','
  }
}

/** One change: a member's new value (JSON text), set in place when present, else appended. */
export interface MemberEdit {
  readonly key: string;
  /** JSON text of the new value. */
  readonly value: string;
}

/**
 * Applies edits to the object's text: members present are replaced in place, new ones appended before the closing
 * brace. Returns the new text.
 */
export function editMembers(text: string, members: ReadonlyMap<string, MemberRange>, edits: readonly MemberEdit[]): string {
  const replace: { start: number; end: number; text: string }[] = [];
  let appended = '';
  for (const e of edits) {
    const r = members.get(e.key);
    if (r !== undefined) replace.push({ start: r.start, end: r.end, text: e.value });
    else appended += `,${JSON.stringify(e.key)}:${e.value}`;
  }
  replace.sort((a, b) => b.start - a.start);
  let out = text;
  for (const r of replace) out = out.slice(0, r.start) + r.text + out.slice(r.end);
  if (appended !== '') {
    const close = out.lastIndexOf('}');
    const before = out.slice(0, close);
    const last = before.trimEnd();
    // An empty object gets no leading comma; the whitespace before the closing brace stays where it was.
    const body = last.endsWith('{') ? appended.slice(1) : appended;
    out = last + body + before.slice(last.length) + out.slice(close);
  }
  return out;
}

/**
 * Where the top-level member `key` of a JSON object has its value, from the object's first bytes only (for answers
 * relayed as they arrive): the range, 'absent' when the object ends (or is not an object) without it, or undefined
 * when `text` ends before that is known. Give it bytes decoded as latin1 so offsets are byte offsets: JSON's
 * structural characters are ASCII and never part of a multi-byte UTF-8 sequence, and `key` is expected to be ASCII.
 */
export function prefixMember(text: string, key: string): MemberRange | 'absent' | undefined {
  const n = text.length;
  let i = skipWs(text, 0);
  if (i >= n) return undefined;
  if (text.charCodeAt(i) !== 0x7b) return 'absent';
  try {
    i = skipWs(text, i + 1);
    for (;;) {
      if (i >= n) return undefined;
      const c = text.charCodeAt(i);
      if (c === 0x7d) return 'absent';
      if (c !== 0x22) return 'absent'; // not JSON: nothing to find
      const keyEnd = skipString(text, i);
      const name = JSON.parse(text.slice(i, keyEnd)) as string;
      i = skipWs(text, keyEnd);
      if (i >= n) return undefined;
      i = skipWs(text, i + 1); // ':'
      if (i >= n) return undefined;
      const first = text.charCodeAt(i);
      const end = skipValue(text, i);
      // A number or literal that reaches the end of the prefix may go on in the next bytes.
      if (end >= n && first !== 0x22 && first !== 0x7b && first !== 0x5b) return undefined;
      if (name === key) return { start: i, end };
      i = skipWs(text, end);
      if (i >= n) return undefined;
      if (text.charCodeAt(i) === 0x7d) return 'absent';
      i = skipWs(text, i + 1); // ','
    }
  } catch {
    // An unterminated string or value: the rest has not arrived yet.
    return undefined;
  }
}
