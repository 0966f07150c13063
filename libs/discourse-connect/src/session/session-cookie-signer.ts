import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { BoundedCache } from '../common/bounded-cache';

/** What `unsign` answers, in the shape `@fastify/cookie`'s signer has. */
export interface UnsignResult {
  valid: boolean;
  /** Signed with an older secret: the cookie should be signed again with the current one. */
  renew: boolean;
  value: string | null;
}

const INVALID: UnsignResult = Object.freeze({ valid: false, renew: false, value: null });

/**
 * Signs and verifies session cookie values as express-session and `@fastify/cookie` do
 * (`<value>.<base64 HMAC-SHA256 of value, no padding>`), so the cookies are the same on both
 * adapters and across upgrades. The HMAC keys are prepared once; a value verified or signed once
 * is remembered in a small LRU, so a returning browser's cookie costs one map lookup instead of
 * two HMACs per request. Only exact signed values that verified are remembered: a changed cookie
 * is verified (in constant time) like any other.
 */
export class SessionCookieSigner {
  private readonly keys: KeyObject[];
  private readonly verified: BoundedCache<string, UnsignResult>;
  private readonly signed: BoundedCache<string, string>;

  constructor(secrets: string | readonly string[], cacheSize = 10_000) {
    const list = typeof secrets === 'string' ? [secrets] : [...secrets];
    if (list.length === 0) throw new Error('a session cookie signer needs a secret');
    this.keys = list.map((s) => createSecretKey(Buffer.from(s, 'utf8')));
    this.verified = new BoundedCache(cacheSize);
    this.signed = new BoundedCache(cacheSize);
  }

  /** `value.signature` with the current (first) secret. */
  sign(value: string): string {
    if (typeof value !== 'string')
      throw new TypeError('Cookie value must be provided as a string.');
    const known = this.signed.get(value);
    if (known !== undefined) return known;
    const out = `${value}.${this.mac(this.keys[0], value)}`;
    this.signed.set(value, out);
    this.verified.set(out, Object.freeze({ valid: true, renew: false, value }));
    return out;
  }

  /** The value of a signed cookie when one of the secrets signed it. */
  unsign(signedValue: string): UnsignResult {
    if (typeof signedValue !== 'string') return INVALID;
    const known = this.verified.get(signedValue);
    if (known !== undefined) return known;
    const dot = signedValue.lastIndexOf('.');
    if (dot <= 0) return INVALID;
    const value = signedValue.slice(0, dot);
    const given = Buffer.from(signedValue.slice(dot + 1), 'utf8');
    for (let i = 0; i < this.keys.length; i++) {
      const expected = Buffer.from(this.mac(this.keys[i], value), 'utf8');
      if (expected.length === given.length && timingSafeEqual(expected, given)) {
        const result: UnsignResult = Object.freeze({ valid: true, renew: i > 0, value });
        this.verified.set(signedValue, result);
        return result;
      }
    }
    return INVALID;
  }

  private mac(key: KeyObject, value: string): string {
    return createHmac('sha256', key).update(value).digest('base64').replace(/=+$/, '');
  }
}
