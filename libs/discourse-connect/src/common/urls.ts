import { BoundedCache } from './bounded-cache';
/**
 * URL checks shared by every route that redirects. A redirect target that is not provably ours or a
 * configured forum's is refused, never "fixed up".
 */

// U+FFFD is what invalid UTF-8 in the query decodes to: the request was damaged or forged.
const UNSAFE_CHARS = /[\u0000-\u001f\u007f\\\ufffd]/;

/**
 * A path on this app: starts with one `/`, no scheme, no `//` (scheme-relative), no backslash,
 * no control characters, no encoded slash or backslash that a later decode could turn into one.
 */
export function isSafeRelativePath(value: unknown, maxLength = 2048): value is string {
  if (typeof value !== 'string' || value.length === 0 || value.length > maxLength) return false;
  if (!value.startsWith('/') || value.startsWith('//')) return false;
  if (UNSAFE_CHARS.test(value)) return false;
  // `/%2F…` or `/%5C…` could become `//…` once decoded by a proxy or a browser.
  if (/^\/%(?:2f|5c)/i.test(value)) return false;
  try {
    const parsed = new URL(value, 'http://relative.invalid');
    return parsed.origin === 'http://relative.invalid';
  } catch {
    return false;
  }
}

// Characters a Location header may carry as they are; runs of others (and `%` not starting an escape)
// go through encodeURI. The same rule as the `encodeurl` package Express uses for its redirects.
const NOT_URL_SAFE =
  /(?:[^\x21\x23-\x3B\x3D\x3F-\x5F\x61-\x7A\x7C\x7E]+|%+(?![0-9A-Fa-f]{2})){1,1024}/g;
const SURROGATES = /([\uD800-\uDBFF][\uDC00-\uDFFF])|[\uD800-\uDFFF]/g;
/**
 * A URL {@link encodeLocation} keeps as it is: only characters NOT_URL_SAFE keeps, every `%`
 * starting an escape (the usual redirect: one linear pass, each step one character or one escape).
 */
const LOCATION_TEXT =
  /^(?:[\x21\x23\x24\x26-\x3B\x3D\x3F-\x5F\x61-\x7A\x7C\x7E]|%[0-9A-Fa-f]{2})*$/;

/**
 * A URL made fit for a `Location` header: characters outside printable ASCII (a `return_path` of
 * `/€` arrives decoded from the query) are percent-encoded, existing `%XX` escapes are kept, so the
 * result is the same as Express's `res.redirect` on every adapter (Node refuses a raw `€` in a header).
 */
export function encodeLocation(url: string): string {
  if (LOCATION_TEXT.test(url)) return url;
  return url
    .replace(SURROGATES, (_, pair: string | undefined) => pair ?? '\uFFFD')
    .replace(NOT_URL_SAFE, encodeURI);
}

/** A parsed forum base URL: origin plus a path prefix without a trailing slash (`''` at the root). */
export interface ForumBase {
  origin: string;
  path: string;
}

export function parseForumBase(url: string): ForumBase {
  const parsed = new URL(url);
  return { origin: parsed.origin, path: parsed.pathname.replace(/\/+$/, '') };
}

/**
 * Whether `candidate` is an absolute http(s) URL under the forum base: same origin, no userinfo,
 * and a path inside the forum's path prefix with no encoded slash or backslash.
 */
export function isUnderForum(candidate: unknown, base: ForumBase): candidate is string {
  if (typeof candidate !== 'string') return false;
  // A pure function of the text and the base: a forum sends the same few return URLs again and
  // again, so the verdict on each is remembered (a bounded number per forum base).
  let verdicts = VERDICTS.get(base);
  if (!verdicts) VERDICTS.set(base, (verdicts = new BoundedCache(256)));
  const known = verdicts.get(candidate);
  if (known !== undefined) return known;
  const verdict = checkUnderForum(candidate, base);
  verdicts.set(candidate, verdict);
  return verdict;
}

/** Verdicts of {@link isUnderForum}, per forum base object. */
const VERDICTS = new WeakMap<ForumBase, BoundedCache<string, boolean>>();

function checkUnderForum(candidate: string, base: ForumBase): boolean {
  if (candidate.length > 2048 || UNSAFE_CHARS.test(candidate)) return false;
  let parsed: URL;
  try {
    parsed = new URL(candidate);
  } catch {
    return false;
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') return false;
  if (parsed.username || parsed.password) return false;
  // A fragment would swallow the sso/sig appended after it, and the forum would never see them.
  if (parsed.hash || candidate.includes('#')) return false;
  if (parsed.origin !== base.origin) return false;
  // The raw text must start with the origin too, so no parser quirk decides the host for us.
  if (!candidate.toLowerCase().startsWith(`${base.origin.toLowerCase()}/`)) return false;
  // An encoded slash or backslash (`/forum/..%2Fadmin`) passes the prefix check here but leaves the
  // forum's folder on a server or proxy that decodes before normalising the path.
  if (/%(?:2f|5c)/i.test(parsed.pathname)) return false;
  return parsed.pathname === base.path || parsed.pathname.startsWith(`${base.path}/`);
}
