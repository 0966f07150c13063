import { createHmac } from 'node:crypto';
import { HttpStatus, Logger } from '@nestjs/common';
import {
  BadSsoRequestException,
  DiscourseConnectHttpException,
  SsoForbiddenException,
} from '../common/discourse-connect.exceptions';
import { DiscourseConnectSettings } from '../config/discourse-connect.settings';
import { decodePayload, verifySignature } from '../protocol';
import { DiscoursePayloadBuilder } from '../payload/discourse-payload.builder';
import type { LocalUser } from '../users/local-user.interface';
import { SsoService } from './sso.service';
import { filtersFixture, memberFixture } from '../../test-support/fixtures';

const MAIN = { url: 'https://forum.example.com', secret: 'main-secret-0123456789' };
const SUB = { url: 'https://example.org/forum', secret: 'sub-secret-0123456789' };
const NONCE = 'cb68251eefb5211e58c00ff1395f0c0b';

const b64 = (text: string | Buffer) => Buffer.from(text).toString('base64');
const hmac = (text: string, secret = MAIN.secret) =>
  createHmac('sha256', secret).update(text).digest('hex');
const payloadText = (fields: Record<string, string>) => new URLSearchParams(fields).toString();
/** A query as a forum sends it, built here with node:crypto, never with the codec. */
function signed(fields: Record<string, string>, secret = MAIN.secret) {
  const sso = b64(payloadText(fields));
  return { sso, sig: hmac(sso, secret) };
}
const valid = (forumUrl = MAIN.url, secret = MAIN.secret) =>
  signed({ nonce: NONCE, return_sso_url: `${forumUrl}/session/sso_login` }, secret);

function setup(ssoOptions?: { resumeWithinSeconds?: number }) {
  const settings = new DiscourseConnectSettings({
    sso: ssoOptions,
    forums: [
      { ...MAIN, name: 'main' },
      { ...SUB, name: 'sub' },
    ],
    discord: { clientId: 'client-id', clientSecret: 'client-secret' },
    publicUrl: 'https://app.example.com/',
    session: { secret: 's'.repeat(32) },
  });
  const filters = filtersFixture();
  const sso = new SsoService(settings, new DiscoursePayloadBuilder(settings, filters));
  return { sso, filters, settings };
}

function refusal(fn: () => unknown): {
  status: number;
  reason: string;
  message: string;
  title: string;
} {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(DiscourseConnectHttpException);
    const e = error as DiscourseConnectHttpException;
    return {
      status: e.getStatus(),
      reason: e.reason,
      message: (e.getResponse() as { message: string }).message,
      title: e.title,
    };
  }
  throw new Error('expected a refusal');
}

const member = (change: Partial<LocalUser> = {}): LocalUser => memberFixture(change);

describe('SsoService', () => {
  beforeEach(() => {
    jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
  });
  afterEach(() => jest.restoreAllMocks());

  describe('verifyRequest (the codec, then the forum URL)', () => {
    it('accepts a request of either forum and says which one signed it', () => {
      const { sso } = setup();
      expect(sso.verifyRequest(valid())).toMatchObject({
        forum: { name: 'main' },
        nonce: NONCE,
        returnSsoUrl: `${MAIN.url}/session/sso_login`,
      });
      expect(sso.verifyRequest(valid(SUB.url, SUB.secret)).forum.name).toBe('sub');
    });

    it('accepts Ruby-style newlines in the base64 (the signature covers the text as received)', () => {
      const { sso } = setup();
      const text = `${payloadText({ nonce: NONCE, return_sso_url: `${MAIN.url}/session/sso_login` })}&pad=${'p'.repeat(80)}`;
      const base64 = `${(b64(text).match(/.{1,60}/g) ?? []).join('\n')}\n`;
      expect(sso.verifyRequest({ sso: base64, sig: hmac(base64) }).nonce).toBe(NONCE);
    });

    const good = valid();
    const plus = (() => {
      for (let i = 0; i < 100; i++) {
        const s = b64(`nonce=${NONCE}&name=${'n'.repeat(i)}~~~`);
        if (s.includes('+')) return s.replace(/\+/g, ' ');
      }
      throw new Error('no base64 with a "+"');
    })();
    it.each([
      ['sso missing', { sig: good.sig }, 400, 'missing_sso', /sso parameter is missing\. Start/],
      ['sso empty', { sso: '', sig: good.sig }, 400, 'missing_sso', /sso parameter is missing/],
      ['sig missing', { sso: good.sso }, 400, 'missing_sig', /sig parameter is missing/],
      ['both missing', {}, 400, 'missing_sso', /sso parameter is missing/],
      ['sso repeated', { sso: [good.sso, good.sso], sig: good.sig }, 400, 'repeated_sso', /once/],
      ['sig as an object', { sso: good.sso, sig: { a: good.sig } }, 400, 'repeated_sig', /once/],
      [
        'sso over 4096 characters',
        (() => {
          const s = b64(`nonce=${NONCE}&bio=${'x'.repeat(5000)}`);
          return { sso: s, sig: hmac(s) };
        })(),
        400,
        'sso_too_long',
        /too long/,
      ],
      [
        'uppercase sig',
        { sso: good.sso, sig: good.sig.toUpperCase() },
        400,
        'malformed_sig',
        /64 lowercase hexadecimal/,
      ],
      ['short sig', { sso: good.sso, sig: good.sig.slice(1) }, 400, 'malformed_sig', /64 lower/],
      // Checked before the signature: a "+" turned into a space makes the signature fail too.
      [
        '"+" arrived as a space',
        { sso: plus, sig: hmac(plus) },
        400,
        'malformed_payload',
        /base64/,
      ],
      [
        '"*" in the sso, badly signed',
        { sso: '*', sig: good.sig },
        400,
        'malformed_payload',
        /base64/,
      ],
      [
        'signed by no configured forum',
        valid(MAIN.url, 'another-secret-0123456789'),
        403,
        'bad_signature',
        /signature of this sign-in request does not match/,
      ],
      [
        'tampered payload',
        { sso: b64(`nonce=${NONCE}&admin=true`), sig: good.sig },
        403,
        'bad_signature',
        /does not match/,
      ],
      [
        'bad padding, validly signed',
        (() => {
          const s = `${good.sso}A`;
          return { sso: s, sig: hmac(s) };
        })(),
        400,
        'malformed_payload',
        /not valid base64/,
      ],
      [
        'nonce repeated',
        (() => {
          const s = b64(`nonce=a&nonce=b&return_sso_url=${encodeURIComponent(MAIN.url)}`);
          return { sso: s, sig: hmac(s) };
        })(),
        400,
        'malformed_payload',
        /twice/,
      ],
      [
        'no nonce',
        signed({ return_sso_url: `${MAIN.url}/session/sso_login` }),
        400,
        'missing_nonce',
        /no valid nonce/,
      ],
      [
        'a nonce that is not a token',
        signed({ nonce: 'a b<script>', return_sso_url: `${MAIN.url}/session/sso_login` }),
        400,
        'missing_nonce',
        /no valid nonce/,
      ],
      [
        'no return_sso_url',
        signed({ nonce: NONCE }),
        400,
        'missing_return_sso_url',
        /where to return/,
      ],
      [
        'return_sso_url on another host',
        signed({ nonce: NONCE, return_sso_url: 'https://evil.example/session/sso_login' }),
        403,
        'foreign_return_sso_url',
        /somewhere other than the forum at https:\/\/forum\.example\.com\./,
      ],
      [
        'return_sso_url of the other forum',
        signed({ nonce: NONCE, return_sso_url: `${SUB.url}/session/sso_login` }),
        403,
        'foreign_return_sso_url',
        /other than the forum/,
      ],
      [
        'return_sso_url leaving a subfolder forum',
        signed({ nonce: NONCE, return_sso_url: 'https://example.org/admin/sso_login' }, SUB.secret),
        403,
        'foreign_return_sso_url',
        /other than the forum at https:\/\/example\.org\/forum\./,
      ],
    ] as const)(
      '%s: the right status, reason and message',
      (_n, query, status, reason, message) => {
        const { sso } = setup();
        const r = refusal(() => sso.verifyRequest(query as Record<string, unknown>));
        expect(r).toMatchObject({ status, reason });
        expect(r.message).toMatch(message);
        expect(r.title).toBe(status === 400 ? 'This sign-in link is not valid' : 'Sign-in refused');
      },
    );

    it('a 400 is a BadSsoRequestException, a 403 an SsoForbiddenException', () => {
      const { sso } = setup();
      expect(() => sso.verifyRequest({})).toThrow(BadSsoRequestException);
      expect(() => sso.verifyRequest(valid(MAIN.url, 'x'.repeat(20)))).toThrow(
        SsoForbiddenException,
      );
    });
  });

  describe('buildResponseUrl', () => {
    it('redirects to the return_sso_url with a payload signed by that forum, echoing the nonce', async () => {
      const { sso } = setup();
      const request = sso.verifyRequest(valid(SUB.url, SUB.secret));
      const url = new URL(await sso.buildResponseUrl(request, member({ emailVerified: false })));
      expect(`${url.origin}${url.pathname}`).toBe(`${SUB.url}/session/sso_login`);
      const back = url.searchParams;
      expect(() => verifySignature(back.get('sso')!, back.get('sig')!, SUB.secret)).not.toThrow();
      expect(decodePayload(back.get('sso')!)).toMatchObject({
        nonce: NONCE,
        external_id: '80351110224678912',
        email: 'nelly@example.com',
        require_activation: 'true',
      });
    });

    it('a member without an email gets the 403 page that explains what to do', async () => {
      const { sso } = setup();
      const error = await sso
        .buildResponseUrl(sso.verifyRequest(valid()), member({ email: null }))
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(SsoForbiddenException);
      const e = error as SsoForbiddenException;
      expect(e.getStatus()).toBe(HttpStatus.FORBIDDEN);
      expect(e.reason).toBe('discord_account_without_email');
      expect(e.title).toBe('An email address is needed');
      expect((e.getResponse() as { message: string }).message).toMatch(
        /needs an email address.*Add and verify an email in Discord/,
      );
    });

    it('a payload Discourse would not accept is never sent: 403 invalid_payload', async () => {
      const { sso, filters } = setup();
      filters.add('sso.payload', (p) => ({ ...p, add_groups: ['two words'] }));
      const error = await sso
        .buildResponseUrl(sso.verifyRequest(valid()), member())
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(SsoForbiddenException);
      expect(error).toMatchObject({ reason: 'invalid_payload' });
      expect(((error as SsoForbiddenException).getResponse() as { message: string }).message).toBe(
        'This site produced a sign-in the forum would not accept. Nothing was sent; please contact the site owner.',
      );
    });
  });

  describe('a request remembered before Discord sign-in', () => {
    const T0 = Date.UTC(2026, 0, 1, 12);
    const MINUTE = 60_000;

    it('carries the time it was first remembered', () => {
      const { sso } = setup();
      const query = valid();
      const target = sso.resumeTarget('/discourse/sso', query, T0);
      const params = new URL(target, 'https://app.example.com').searchParams;
      expect(Object.fromEntries(params)).toEqual({ ...query, remembered_at: String(T0) });
      // Remembered again (a second try at Discord): the first time stays.
      const again = sso.resumeTarget('/discourse/sso', Object.fromEntries(params), T0 + MINUTE);
      expect(new URL(again, 'https://app.example.com').searchParams.get('remembered_at')).toBe(
        String(T0),
      );
      // A time in the future or not a time is replaced by now.
      for (const bad of [String(T0 + 5 * MINUTE), 'soon', '-1']) {
        const t = sso.resumeTarget('/discourse/sso', { ...query, remembered_at: bad }, T0);
        expect(new URL(t, 'https://app.example.com').searchParams.get('remembered_at')).toBe(
          String(T0),
        );
      }
    });

    it('is answered up to sso.resumeWithinSeconds (25 minutes), then the forum starts over', () => {
      const { sso } = setup();
      const query = { ...valid(), remembered_at: String(T0) };
      const request = sso.verifyRequest(query);
      expect(sso.restartUrl(request, valid(), T0 + 60 * MINUTE)).toBeUndefined();
      expect(sso.restartUrl(request, query, T0 + 24 * MINUTE)).toBeUndefined();
      expect(sso.restartUrl(request, query, T0 + 25 * MINUTE)).toBeUndefined();
      expect(sso.restartUrl(request, query, T0 + 25 * MINUTE + 1)).toBe(
        'https://forum.example.com/session/sso?return_path=%2F',
      );
    });

    it('follows a configured limit (10 minutes, for a forum on an older release)', () => {
      const { sso } = setup({ resumeWithinSeconds: 600 });
      const query = { ...valid(), remembered_at: String(T0) };
      const request = sso.verifyRequest(query);
      expect(sso.restartUrl(request, query, T0 + 9 * MINUTE)).toBeUndefined();
      expect(sso.restartUrl(request, query, T0 + 11 * MINUTE)).toMatch(/\/session\/sso\?/);
    });

    it('starts over on a forum in a subfolder, and for a made-up time', () => {
      const { sso } = setup();
      const sub = { ...valid(SUB.url, SUB.secret), remembered_at: String(T0) };
      expect(sso.restartUrl(sso.verifyRequest(sub), sub, T0 + 26 * MINUTE)).toBe(
        'https://example.org/forum/session/sso?return_path=%2Fforum%2F',
      );
      const request = sso.verifyRequest(valid());
      for (const bad of ['', 'yesterday', String(T0 + 2 * MINUTE)]) {
        expect(sso.restartUrl(request, { ...valid(), remembered_at: bad }, T0)).toBe(
          'https://forum.example.com/session/sso?return_path=%2F',
        );
      }
    });
  });
});
