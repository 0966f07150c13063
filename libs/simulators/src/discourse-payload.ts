import { createHmac } from 'node:crypto';
import { safeEqual } from './http-helpers';

/**
 * The forum side of the DiscourseConnect wire format, written from PROTOCOL.md on purpose
 * independently of the library under test.
 */

/** Fields Discourse reads from a payload (plus any `custom.<name>`). */
export const DISCOURSE_CONNECT_FIELDS: readonly string[] = [
  'add_groups',
  'admin',
  'avatar_force_update',
  'avatar_url',
  'bio',
  'card_background_url',
  'confirmed_2fa',
  'email',
  'external_id',
  'failed',
  'groups',
  'locale',
  'locale_force_update',
  'location',
  'logout',
  'moderator',
  'name',
  'no_2fa_methods',
  'nonce',
  'prompt',
  'profile_background_url',
  'remove_groups',
  'require_2fa',
  'require_activation',
  'return_sso_url',
  'suppress_welcome_message',
  'title',
  'username',
  'website',
];

const KNOWN = new Set(DISCOURSE_CONNECT_FIELDS);

/** Base64 of UTF-8 text: strict, or Ruby `Base64.encode64` style (`\n` every 60 chars and at the end). */
export function encodeBase64(text: string, rubyNewlines = false): string {
  const b64 = Buffer.from(text, 'utf8').toString('base64');
  if (!rubyNewlines) return b64;
  return (b64.match(/.{1,60}/g) ?? []).map((line) => line + '\n').join('');
}

/** Like Ruby's lenient `Base64.decode64`: characters outside the alphabet are ignored. */
export function decodeBase64(b64: string): string {
  return Buffer.from(b64.replace(/[^A-Za-z0-9+/]/g, ''), 'base64').toString('utf8');
}

/** Lowercase hex HMAC-SHA256 of the base64 text exactly as given. */
export function signPayload(secret: string, base64Text: string): string {
  return createHmac('sha256', secret).update(base64Text, 'utf8').digest('hex');
}

/** Constant-time signature check; a valid signature is 64 lowercase hex characters. */
export function verifySignature(
  secret: string,
  base64Text: string,
  sig: string | null | undefined,
): boolean {
  if (typeof sig !== 'string' || !/^[0-9a-f]{64}$/.test(sig)) return false;
  return safeEqual(signPayload(secret, base64Text), sig);
}

/** Discourse rejects base64 containing anything outside `A-Za-z0-9+/=\r\n`. */
export function isAcceptableBase64(text: string): boolean {
  return !/[^a-zA-Z0-9=\r\n/+]/.test(text);
}

/** `application/x-www-form-urlencoded` component decoding (`+` is a space); throws on bad escapes. */
export function decodeFormComponent(s: string): string {
  return decodeURIComponent(s.replace(/\+/g, ' '));
}

/**
 * Parses a query string the way Rack's `parse_query` does: a repeated key becomes an array, a key
 * without `=` has a null value, empty pieces are skipped.
 */
export function parseRackQuery(text: string): Map<string, string | null | Array<string | null>> {
  const out = new Map<string, string | null | Array<string | null>>();
  for (const piece of text.split('&')) {
    if (piece === '') continue;
    const eq = piece.indexOf('=');
    const key = decodeFormComponent(eq === -1 ? piece : piece.slice(0, eq));
    const value = eq === -1 ? null : decodeFormComponent(piece.slice(eq + 1));
    const prev = out.get(key);
    if (prev === undefined && !out.has(key)) out.set(key, value);
    else if (Array.isArray(prev)) prev.push(value);
    else out.set(key, [prev ?? null, value]);
  }
  return out;
}

export type ParsedPayload =
  | { ok: true; fields: Record<string, string> }
  | { ok: false; reason: 'repeated' | 'malformed'; key?: string };

/** Decoded payload → fields Discourse would read; repeated known keys are an error (Discourse: 500). */
export function readPayloadFields(decoded: string): ParsedPayload {
  let parsed: ReturnType<typeof parseRackQuery>;
  try {
    parsed = parseRackQuery(decoded);
  } catch {
    return { ok: false, reason: 'malformed' };
  }
  const fields: Record<string, string> = {};
  for (const [key, value] of parsed) {
    const known = KNOWN.has(key) || key.startsWith('custom.');
    if (Array.isArray(value)) {
      if (known) return { ok: false, reason: 'repeated', key };
      continue;
    }
    if (value !== null) fields[key] = value;
  }
  return { ok: true, fields };
}

/** A DiscourseConnect boolean: true/false for the exact strings, undefined ("not given") otherwise. */
export function readBool(fields: Record<string, string>, key: string): boolean | undefined {
  const v = fields[key];
  return v === 'true' ? true : v === 'false' ? false : undefined;
}
