import { createHmac, timingSafeEqual } from 'node:crypto';
import { DiscourseConnectProtocolError } from './discourse-connect.errors';
import {
  DISCOURSE_CONNECT_FIELDS,
  DiscourseConnectPayload,
  isBooleanField,
  isGroupListField,
} from './discourse-connect.fields';

/** Discourse refuses base64 with characters outside this set. */
export const BASE64_TEXT = /^[A-Za-z0-9+/=\r\n]+$/;
/** A well-formed `sig`: 64 lowercase hexadecimal characters. */
export const SIGNATURE = /^[0-9a-f]{64}$/;
const CUSTOM_NAME = /^[A-Za-z0-9_-]+$/;
const GROUP_NAME = /^[^,\s]+$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The secret's HMAC-SHA256 of the base64 text, as lowercase hex: the `sig` parameter. */
export function signPayload(base64: string, secret: string): string {
  return createHmac('sha256', secret).update(base64, 'utf8').digest('hex');
}

/**
 * Checks `sig` against the base64 text exactly as received (it may contain `\n`), in constant time.
 *
 * @throws DiscourseConnectProtocolError when the signature is absent, not 64 lowercase hex
 *   characters, or does not match.
 */
export function verifySignature(base64: string, sig: string, secret: string): void {
  if (!sig)
    throw new DiscourseConnectProtocolError('missing_signature', 'The sig parameter is missing.');
  if (!SIGNATURE.test(sig)) {
    throw new DiscourseConnectProtocolError(
      'malformed_signature',
      'The sig parameter must be 64 lowercase hexadecimal characters.',
    );
  }
  if (!isValidSignature(base64, sig, secret)) {
    throw new DiscourseConnectProtocolError(
      'bad_signature',
      'The signature does not match the payload.',
    );
  }
}

/** Constant-time check of a well-formed signature; false for anything malformed. */
export function isValidSignature(base64: string, sig: string, secret: string): boolean {
  if (!SIGNATURE.test(sig)) return false;
  const expected = createHmac('sha256', secret).update(base64, 'utf8').digest();
  return timingSafeEqual(expected, Buffer.from(sig, 'hex'));
}

/**
 * Decodes the base64 payload of an incoming request into its fields.
 *
 * @throws DiscourseConnectProtocolError on text outside the base64 alphabet, bad padding,
 *   invalid UTF-8, or a field given twice (Discourse itself answers 500 to repeated keys).
 */
export function decodePayload(base64: string): Record<string, string> {
  if (!base64)
    throw new DiscourseConnectProtocolError('missing_payload', 'The sso parameter is missing.');
  if (!BASE64_TEXT.test(base64)) {
    throw new DiscourseConnectProtocolError(
      'malformed_payload',
      'The sso parameter is not base64 (a "+" turned into a space by a broken link is a common cause).',
    );
  }
  const compact = base64.replace(/[\r\n]/g, '');
  if (compact.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(compact)) {
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
  for (const [key, value] of new URLSearchParams(text)) {
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

/** Verifies then decodes: the one call a provider endpoint needs. */
export function verifyAndDecode(
  base64: string,
  sig: string,
  secret: string,
): Record<string, string> {
  if (!base64)
    throw new DiscourseConnectProtocolError('missing_payload', 'The sso parameter is missing.');
  verifySignature(base64, sig, secret);
  return decodePayload(base64);
}

/**
 * Serialises a payload the way Discourse expects: known fields in its order, then `custom.*`;
 * null/undefined dropped, booleans as `true`/`false`, group lists comma-joined, and the whole
 * form-encoded exactly as WHATWG `URLSearchParams#toString()` does.
 *
 * @throws DiscourseConnectProtocolError for a group name with a comma or whitespace, or a bad custom field name.
 */
export function serializePayload(payload: DiscourseConnectPayload): string {
  const params = new URLSearchParams();
  const record = payload as Record<string, unknown>;
  for (const field of DISCOURSE_CONNECT_FIELDS) {
    const value = record[field];
    if (value === null || value === undefined) continue;
    params.append(field, fieldText(field, value));
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
    params.append(`custom.${name}`, String(value));
  }
  return params.toString();
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
  return { sso, sig, query: new URLSearchParams({ sso, sig }).toString() };
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

/** Keeps untrusted text short and printable before it goes into a message. */
function printable(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '?').slice(0, 40);
}
