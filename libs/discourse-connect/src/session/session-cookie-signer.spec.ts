import { createHmac } from 'node:crypto';
import { Signer } from '@fastify/cookie';
import { SessionCookieSigner } from './session-cookie-signer';

const SECRET = 'session-secret-0123456789abcdef0123456789';
const OLD_SECRET = 'older-session-secret-0123456789abcdef0123';

/** express-session's signature (cookie-signature): base64 HMAC-SHA256 without padding. */
function expressSignature(value: string, secret: string): string {
  return `${value}.${createHmac('sha256', secret).update(value).digest('base64').replace(/=+$/, '')}`;
}

describe('SessionCookieSigner', () => {
  it('signs exactly as express-session and @fastify/cookie do (cookies survive an upgrade)', () => {
    const signer = new SessionCookieSigner(SECRET);
    const fastify = new Signer(SECRET, 'sha256');
    for (const id of ['abc', 'Zx_9-Yq0w1e2r3t4y5u6i7o8p9', 'a'.repeat(64)]) {
      expect(signer.sign(id)).toBe(expressSignature(id, SECRET));
      expect(signer.sign(id)).toBe(fastify.sign(id));
      expect(signer.unsign(fastify.sign(id))).toEqual({ valid: true, renew: false, value: id });
    }
  });

  it('verifies a cookie the same way whether or not it was seen before', () => {
    const signer = new SessionCookieSigner(SECRET, 4);
    const cookie = expressSignature('session-id', SECRET);
    const first = signer.unsign(cookie);
    const again = signer.unsign(cookie);
    expect(first).toEqual({ valid: true, renew: false, value: 'session-id' });
    expect(again).toEqual(first);
  });

  it('refuses a changed signature, a changed value and a value without signature, also after a valid one was cached', () => {
    const signer = new SessionCookieSigner(SECRET, 4);
    const cookie = expressSignature('session-id', SECRET);
    expect(signer.unsign(cookie).valid).toBe(true);
    const invalid = { valid: false, renew: false, value: null };
    expect(signer.unsign(`${cookie.slice(0, -1)}${cookie.endsWith('A') ? 'B' : 'A'}`)).toEqual(
      invalid,
    );
    expect(signer.unsign(cookie.replace('session-id', 'session-iX'))).toEqual(invalid);
    expect(signer.unsign('session-id')).toEqual(invalid);
    expect(signer.unsign('')).toEqual(invalid);
    expect(
      signer.unsign(expressSignature('session-id', 'another-secret-0123456789abcdef')),
    ).toEqual(invalid);
  });

  it('accepts a cookie of an older secret and asks for it to be signed again', () => {
    const signer = new SessionCookieSigner([SECRET, OLD_SECRET]);
    expect(signer.unsign(expressSignature('old-id', OLD_SECRET))).toEqual({
      valid: true,
      renew: true,
      value: 'old-id',
    });
    expect(signer.sign('old-id')).toBe(expressSignature('old-id', SECRET));
  });

  it('stays correct when its caches overflow', () => {
    const signer = new SessionCookieSigner(SECRET, 2);
    const cookies = ['a', 'b', 'c', 'd'].map((id) => signer.sign(id));
    for (const [i, id] of ['a', 'b', 'c', 'd'].entries())
      expect(signer.unsign(cookies[i])).toEqual({ valid: true, renew: false, value: id });
  });
});
