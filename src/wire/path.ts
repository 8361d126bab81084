/** A URL path segment percent-decoded, or as it is when it is not valid percent-encoding (`%E0%A4%A`). */
export function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
