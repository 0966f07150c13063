/**
 * `application/x-www-form-urlencoded` as WHATWG's URLSearchParams writes and reads it, for the
 * codec's hot path: the same bytes, without building a URLSearchParams per payload.
 */

/** ASCII characters the form serializer keeps as they are: alphanumerics and `*-._`. */
const KEPT = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  if (/[A-Za-z0-9*\-._]/.test(ch)) KEPT[c] = 1;
}
/** Any surrogate code unit: the text is left to the standard's decoder (a lone one becomes U+FFFD). */
const SURROGATE = /[\uD800-\uDFFF]/;
/** `%XX` (uppercase hex) of every byte. */
const PERCENT = Array.from(
  { length: 256 },
  (_, b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`,
);

/**
 * One name or value form-encoded exactly as `URLSearchParams#toString()` does: alphanumerics and
 * `*-._` kept, space as `+`, everything else `%XX` of its UTF-8 bytes (a lone surrogate as U+FFFD).
 */
export function formEncode(text: string): string {
  let out = '';
  let kept = 0;
  const length = text.length;
  for (let i = 0; i < length; i++) {
    const c = text.charCodeAt(i);
    if (c < 128 && KEPT[c] === 1) continue;
    if (kept < i) out += text.slice(kept, i);
    if (c === 0x20) out += '+';
    else if (c < 0x80) out += PERCENT[c];
    else if (c < 0x800) out += PERCENT[0xc0 | (c >> 6)] + PERCENT[0x80 | (c & 0x3f)];
    else if (c < 0xd800 || c > 0xdfff) {
      out +=
        PERCENT[0xe0 | (c >> 12)] + PERCENT[0x80 | ((c >> 6) & 0x3f)] + PERCENT[0x80 | (c & 0x3f)];
    } else {
      const next = i + 1 < length ? text.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        const cp = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00);
        out +=
          PERCENT[0xf0 | (cp >> 18)] +
          PERCENT[0x80 | ((cp >> 12) & 0x3f)] +
          PERCENT[0x80 | ((cp >> 6) & 0x3f)] +
          PERCENT[0x80 | (cp & 0x3f)];
        i++;
      } else {
        out += '%EF%BF%BD';
      }
    }
    kept = i + 1;
  }
  if (kept === 0) return text;
  return kept < length ? out + text.slice(kept) : out;
}

/**
 * {@link formEncode} of base64 text (`A-Za-z0-9+/=`, as `Buffer#toString('base64')` writes it):
 * only `+`, `/` and `=` change, so three native passes do what the general encoder does.
 */
export function formEncodeBase64(base64: string): string {
  return base64.replaceAll('+', '%2B').replaceAll('/', '%2F').replaceAll('=', '%3D');
}

/**
 * The pairs of a form-encoded text as `new URLSearchParams(text)` reads them (empty pairs skipped,
 * a pair without `=` has the value `''`, `+` is a space, `%XX` decoded as UTF-8), with one
 * difference: a leading `?`, which `URLSearchParams` drops, stays part of the first name (so a
 * request to `…/sso??sso=…` is not read as one with `sso`, and goes to the route).
 */
export function formDecodePairs(text: string): Array<[string, string]> {
  if (SURROGATE.test(text)) return [...new URLSearchParams(text)];
  const pairs: Array<[string, string]> = [];
  const length = text.length;
  let start = 0;
  while (start <= length) {
    let end = text.indexOf('&', start);
    if (end === -1) end = length;
    if (end > start) {
      const eq = text.indexOf('=', start);
      const split = eq !== -1 && eq < end;
      const name = formDecode(text.slice(start, split ? eq : end));
      const value = split ? formDecode(text.slice(eq + 1, end)) : '';
      if (name === undefined || value === undefined) return [...new URLSearchParams(text)];
      pairs.push([name, value]);
    }
    start = end + 1;
  }
  return pairs;
}

/**
 * One form-encoded name or value decoded, or undefined when only the full WHATWG decoder reads it
 * exactly (a `%` not starting valid UTF-8: the standard keeps or replaces those bytes, where
 * `decodeURIComponent` throws).
 */
function formDecode(text: string): string | undefined {
  const spaced = text.indexOf('+') === -1 ? text : text.replace(/\+/g, ' ');
  if (spaced.indexOf('%') === -1) return spaced;
  try {
    return decodeURIComponent(spaced);
  } catch {
    return undefined;
  }
}
