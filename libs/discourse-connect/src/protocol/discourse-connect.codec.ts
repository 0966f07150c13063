import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { DiscourseConnectProtocolError } from './discourse-connect.errors';
import {
  DISCOURSE_CONNECT_FIELDS,
  DiscourseConnectPayload,
  isBooleanField,
  isGroupListField,
} from './discourse-connect.fields';
import { formDecodePairs, formEncode, formEncodeBase64 } from './form-encoding';

/** Discourse refuses base64 with characters outside this set. */
export const BASE64_TEXT = /^[A-Za-z0-9+/=\r\n]+$/;
/** A well-formed `sig`: 64 lowercase hexadecimal characters. */
export const SIGNATURE = /^[0-9a-f]{64}$/;
/**
 * The longest `sso` a provider endpoint reads. Discourse sends a nonce and its `return_sso_url`,
 * a few hundred characters; anything much longer is refused before any work is done on it.
 */
export const MAX_REQUEST_PAYLOAD_LENGTH = 4096;
/** A nonce as a provider accepts it: a short token (Discourse sends 32 hex characters). */
const NONCE = /^[A-Za-z0-9_-]{1,128}$/;
const CUSTOM_NAME = /^[A-Za-z0-9_-]+$/;
const GROUP_NAME = /^[^,\s]+$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * HMAC keys prepared once per secret (a process has a few forum secrets; the bound only guards
 * against a caller passing ever new ones).
 */
const HMAC_KEYS = new Map<string, KeyObject>();
const MAX_HMAC_KEYS = 64;

function hmacKey(secret: string): KeyObject {
  let key = HMAC_KEYS.get(secret);
  if (key === undefined) {
    if (HMAC_KEYS.size >= MAX_HMAC_KEYS) HMAC_KEYS.clear();
    key = createSecretKey(Buffer.from(secret, 'utf8'));
    HMAC_KEYS.set(secret, key);
  }
  return key;
}

/** The secret's HMAC-SHA256 of the base64 text, as lowercase hex: the `sig` parameter. */
export function signPayload(base64: string, secret: string): string {
  return createHmac('sha256', hmacKey(secret)).update(base64, 'utf8').digest('hex');
}

/**
 * Checks `sig` against the base64 text exactly as received (it may contain `\n`), in constant time.
 *
 * @throws DiscourseConnectProtocolError when the signature is absent, not 64 lowercase hex
 *   characters, or does not match.
 */
export function verifySignature(base64: string, sig: string, secret: string): void {
  checkSignatureFormat(sig);
  if (!isValidSignature(base64, sig, secret)) throw badSignature();
}

/** Constant-time check of a well-formed signature; false for anything malformed. */
export function isValidSignature(base64: string, sig: string, secret: string): boolean {
  if (!SIGNATURE.test(sig)) return false;
  return macMatches(base64, Buffer.from(sig, 'hex'), secret);
}

/** Constant-time check of the 32 bytes of a well-formed signature. */
function macMatches(base64: string, given: Buffer, secret: string): boolean {
  const expected = createHmac('sha256', hmacKey(secret)).update(base64, 'utf8').digest();
  return timingSafeEqual(expected, given);
}

/**
 * Decodes the base64 payload of an incoming request into its fields.
 *
 * @throws DiscourseConnectProtocolError on text outside the base64 alphabet, bad padding,
 *   invalid UTF-8, or a field given twice (Discourse itself answers 500 to repeated keys).
 */
export function decodePayload(base64: string): Record<string, string> {
  checkPayloadPresent(base64);
  checkBase64Alphabet(base64);
  return decodeCheckedPayload(base64);
}

/** {@link decodePayload} of a payload known to be present and in the base64 alphabet. */
function decodeCheckedPayload(base64: string): Record<string, string> {
  const compact =
    base64.indexOf('\n') === -1 && base64.indexOf('\r') === -1
      ? base64
      : base64.replace(/[\r\n]/g, '');
  if (compact.length % 4 !== 0 || !isPadded(compact)) {
    throw new DiscourseConnectProtocolError(
      'malformed_payload',
      'The sso parameter is not valid base64.',
    );
  }
  let text: string;
  try {
    text = utf8.decode(Buffer.from(compact, 'base64'));
  } catch {
    throw new DiscourseConnectProtocolError(
      'malformed_payload',
      'The sso payload is not valid UTF-8.',
    );
  }
  const fields: Record<string, string> = Object.create(null);
  for (const [key, value] of formDecodePairs(text)) {
    if (Object.prototype.hasOwnProperty.call(fields, key)) {
      throw new DiscourseConnectProtocolError(
        'duplicate_field',
        `The sso payload names "${printable(key)}" twice.`,
      );
    }
    fields[key] = value;
  }
  return fields;
}

/**
 * Whether base64 text already in its alphabet, without line breaks, has `=` only as its last one or
 * two characters (what `/^[A-Za-z0-9+/]*={0,2}$/` says of such text, without a second pass).
 */
function isPadded(compact: string): boolean {
  const eq = compact.indexOf('=');
  if (eq === -1) return true;
  if (eq < compact.length - 2) return false;
  return compact.charCodeAt(compact.length - 1) === 0x3d;
}

/**
 * Verifies then decodes a request signed with `secret`.
 *
 * @throws DiscourseConnectProtocolError as {@link verifyRequestWithAnySecret} does.
 */
export function verifyAndDecode(
  base64: string,
  sig: string,
  secret: string,
): Record<string, string> {
  return verifyRequestWithAnySecret(base64, sig, [secret], Infinity).fields;
}

/** What a verified request carries, and which of the secrets signed it. */
export interface VerifiedRequest {
  /** Index in the `secrets` given of the secret that made the signature. */
  secretIndex: number;
  fields: Record<string, string>;
}

/**
 * The checks on an incoming `sso`/`sig` pair, in this order: both present, `sso` no longer than
 * `maxLength`, `sig` 64 lowercase hex characters, `sso` in the base64 alphabet, the signature made
 * by one of `secrets` (constant-time, over the text exactly as received), then the decoding.
 *
 * @throws DiscourseConnectProtocolError with the code of the first check that fails.
 */
export function verifyRequestWithAnySecret(
  base64: string,
  sig: string,
  secrets: readonly string[],
  maxLength = MAX_REQUEST_PAYLOAD_LENGTH,
): VerifiedRequest {
  checkPayloadPresent(base64);
  if (!sig) throw new DiscourseConnectProtocolError('missing_signature', missingText('sig'));
  if (base64.length > maxLength) {
    throw new DiscourseConnectProtocolError('payload_too_long', 'The sso parameter is too long.');
  }
  checkSignatureFormat(sig);
  checkBase64Alphabet(base64);
  const given = Buffer.from(sig, 'hex');
  let secretIndex = -1;
  for (let i = 0; i < secrets.length; i++) {
    if (macMatches(base64, given, secrets[i])) {
      secretIndex = i;
      break;
    }
  }
  if (secretIndex === -1) throw badSignature();
  return { secretIndex, fields: decodeCheckedPayload(base64) };
}

/** A provider's reading of a forum's request: the nonce to echo and where to send the browser. */
export interface ProviderRequest extends VerifiedRequest {
  nonce: string;
  /** Not yet checked against the forum's URL: that is the caller's job. */
  returnSsoUrl: string;
}

/**
 * Everything a provider endpoint checks that does not depend on its configuration:
 * {@link verifyRequestWithAnySecret}, then a nonce that is a short token and a `return_sso_url`.
 *
 * @throws DiscourseConnectProtocolError with the code of the first check that fails.
 */
export function verifyProviderRequest(
  base64: string,
  sig: string,
  secrets: readonly string[],
): ProviderRequest {
  const verified = verifyRequestWithAnySecret(base64, sig, secrets);
  const nonce = verified.fields.nonce;
  if (!nonce || !NONCE.test(nonce)) {
    throw new DiscourseConnectProtocolError(
      'missing_nonce',
      'The sign-in request has no valid nonce.',
    );
  }
  const returnSsoUrl = verified.fields.return_sso_url;
  if (!returnSsoUrl) {
    throw new DiscourseConnectProtocolError(
      'missing_return_sso_url',
      'The sign-in request does not say where to return.',
    );
  }
  return { secretIndex: verified.secretIndex, fields: verified.fields, nonce, returnSsoUrl };
}

/** `name=` of each known field, form-encoded once. */
const FIELD_PREFIXES = DISCOURSE_CONNECT_FIELDS.map((field) => `${formEncode(field)}=`);

/**
 * Serialises a payload the way Discourse expects: known fields in its order, then `custom.*`;
 * null/undefined dropped, booleans as `true`/`false`, group lists comma-joined, and the whole
 * form-encoded exactly as WHATWG `URLSearchParams#toString()` does.
 *
 * @throws DiscourseConnectProtocolError for a group name with a comma or whitespace, or a bad custom field name.
 */
export function serializePayload(payload: DiscourseConnectPayload): string {
  let params = '';
  const record = payload as Record<string, unknown>;
  for (let i = 0; i < DISCOURSE_CONNECT_FIELDS.length; i++) {
    const field = DISCOURSE_CONNECT_FIELDS[i];
    const value = record[field];
    if (value === null || value === undefined) continue;
    params += `${params ? '&' : ''}${FIELD_PREFIXES[i]}${formEncode(fieldText(field, value))}`;
  }
  const custom = payload.custom ?? {};
  for (const name of Object.keys(custom).sort()) {
    const value = custom[name];
    if (value === null || value === undefined) continue;
    if (!CUSTOM_NAME.test(name)) {
      throw new DiscourseConnectProtocolError(
        'invalid_field',
        `"${printable(name)}" is not a valid custom field name.`,
      );
    }
    params += `${params ? '&' : ''}${formEncode(`custom.${name}`)}=${formEncode(String(value))}`;
  }
  return params;
}

/** Base64 (strict: no newlines) of the serialised payload. */
export function encodePayload(payload: DiscourseConnectPayload): string {
  return Buffer.from(serializePayload(payload), 'utf8').toString('base64');
}

/** A signed payload, ready to append to a URL or post to `/admin/users/sync_sso`. */
export interface SignedPayload {
  /** The base64 payload. */
  sso: string;
  /** Lowercase hex HMAC-SHA256 of `sso`. */
  sig: string;
  /** `sso=<form-encoded base64>&sig=<hex>`. */
  query: string;
}

export function buildSignedPayload(
  payload: DiscourseConnectPayload,
  secret: string,
): SignedPayload {
  const sso = encodePayload(payload);
  const sig = signPayload(sso, secret);
  // As URLSearchParams writes them: the base64's `+/=` escaped, the lowercase hex as it is.
  return { sso, sig, query: `sso=${formEncodeBase64(sso)}&sig=${sig}` };
}

/** Appends a signed payload to a URL that may already carry a query. */
export function appendSignedPayload(url: string, signed: SignedPayload): string {
  return `${url}${url.includes('?') ? '&' : '?'}${signed.query}`;
}

/** Reads a boolean field as Discourse does: only `true` and `false` count. */
export function readBoolean(fields: Record<string, string>, name: string): boolean | undefined {
  const value = fields[name];
  return value === 'true' ? true : value === 'false' ? false : undefined;
}

/** Splits a comma-joined group list. */
export function readGroups(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((g) => g.trim())
    .filter(Boolean);
}

function fieldText(field: string, value: unknown): string {
  if (isBooleanField(field)) {
    if (typeof value !== 'boolean') {
      throw new DiscourseConnectProtocolError(
        'invalid_field',
        `The field "${field}" must be true or false.`,
      );
    }
    return value ? 'true' : 'false';
  }
  if (isGroupListField(field)) {
    const list =
      typeof value === 'string' ? readGroups(value) : (value as readonly unknown[]).map(String);
    for (const name of list) {
      if (!GROUP_NAME.test(name)) {
        throw new DiscourseConnectProtocolError(
          'invalid_field',
          `The group name "${printable(name)}" in "${field}" contains a comma or whitespace.`,
        );
      }
    }
    return list.join(',');
  }
  return String(value);
}

function missingText(name: 'sso' | 'sig'): string {
  return `The ${name} parameter is missing. Start signing in from the forum's "Log In" button.`;
}

function checkPayloadPresent(base64: string): void {
  if (!base64) throw new DiscourseConnectProtocolError('missing_payload', missingText('sso'));
}

function checkSignatureFormat(sig: string): void {
  if (!sig) throw new DiscourseConnectProtocolError('missing_signature', missingText('sig'));
  if (!SIGNATURE.test(sig)) {
    throw new DiscourseConnectProtocolError(
      'malformed_signature',
      'The sig parameter must be 64 lowercase hexadecimal characters.',
    );
  }
}

function checkBase64Alphabet(base64: string): void {
  if (!BASE64_TEXT.test(base64)) {
    throw new DiscourseConnectProtocolError(
      'malformed_payload',
      'The sso parameter is not base64. If a "+" became a space, the link was damaged on the way.',
    );
  }
}

function badSignature(): DiscourseConnectProtocolError {
  return new DiscourseConnectProtocolError(
    'bad_signature',
    'The signature of this sign-in request does not match. The forum and this site must share the same DiscourseConnect secret.',
  );
}

/** Keeps untrusted text short and printable before it goes into a message. */
function printable(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '?').slice(0, 40);
}
