/** Longest value from a request that goes into a log line. */
export const MAX_LOGGED_VALUE_LENGTH = 64;

/**
 * A value that came from outside (a query parameter Discord's redirect carried, an error code in
 * Discord's answer) made safe for a log line: control characters (newlines, escapes, the Unicode
 * line and bidi controls) removed, and at most `max` characters, marked with `…` when cut.
 */
export function boundForLog(value: unknown, max = MAX_LOGGED_VALUE_LENGTH): string {
  const text = (Array.isArray(value) ? value.join(',') : String(value)).replace(
    /[\p{Cc}\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu,
    '',
  );
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
