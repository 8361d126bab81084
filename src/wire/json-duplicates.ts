/**
 * Duplicate member names in JSON text. RFC 8259 4 leaves their meaning to the parser: JSON.parse keeps the last,
 * rapidjson (Triton's TritonJson `Find`) the first. A gateway that reads a body with one parser for policy and
 * forwards it to a backend that reads it with the other would authorize one request and send another, so bodies with
 * duplicates are refused where that can happen.
 *
 * Expects text JSON.parse accepted (callers parse first). Scans with native regex searches: inside arrays only
 * brackets, braces and quotes stop it (a tensor's numbers and commas are skipped in one search), inside objects commas
 * too (a member name follows each).
 */

const IN_ARRAY = /["{}[\]]/g;
const IN_OBJECT = /[",{}[\]]/g;

/** End (exclusive) of the string whose opening quote is at `i`. */
function stringEnd(s: string, i: number): number {
  let from = i + 1;
  for (;;) {
    const q = s.indexOf('"', from);
    if (q === -1) return s.length;
    let slashes = 0;
    for (let b = q - 1; s.charCodeAt(b) === 0x5c; b--) slashes++;
    if (slashes % 2 === 0) return q + 1;
    from = q + 1;
  }
}

interface Frame {
  /** Member names seen, for an object; undefined for an array. */
  readonly keys: Set<string> | undefined;
  /** An object's next string is a member name (after `{` or `,`). */
  expectKey: boolean;
}

/** The first member name that appears twice in one object, or undefined. */
export function duplicateMember(text: string): string | undefined {
  const stack: Frame[] = [];
  let i = 0;
  for (;;) {
    const top = stack[stack.length - 1];
    const re = top === undefined || top.keys === undefined ? IN_ARRAY : IN_OBJECT;
    re.lastIndex = i;
    const m = re.exec(text);
    if (m === null) return undefined;
    const at = m.index;
    const c = text.charCodeAt(at);
    if (c === 0x22 /* " */) {
      const end = stringEnd(text, at);
      if (top?.keys !== undefined && top.expectKey) {
        const key = JSON.parse(text.slice(at, end)) as string;
        if (top.keys.has(key)) return key;
        top.keys.add(key);
        top.expectKey = false;
      }
      i = end;
    } else if (c === 0x7b /* { */) {
      stack.push({ keys: new Set(), expectKey: true });
      i = at + 1;
    } else if (c === 0x5b /* [ */) {
      stack.push({ keys: undefined, expectKey: false });
      i = at + 1;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
      if (stack.length === 0) return undefined;
      i = at + 1;
    } else {
      // A comma in an object: a member name comes next.
      top!.expectKey = true;
      i = at + 1;
    }
  }
}
