import { randomBytes } from 'node:crypto';
import { DISCORD_FIXTURES } from 'nestjs-discourse-connect-simulators';
import { TestBrowser } from '../support/browser';
import { HTTP_ADAPTERS, type Harness } from '../support/harness';
import {
  expectCleanErrorBody,
  expectNothingWritten,
  snapshot,
  startAdversarialHarness,
} from './adversarial-support';
import { b64, hmac } from '../support/signing';

/**
 * Open redirects: every place a redirect target comes from a request (`return_sso_url` inside a
 * signed payload, `returnTo` on /auth/discord, `return_path` on /discourse/forum) refuses other
 * hosts and every way of spelling one. The basic return_sso_url table (other host, `//`,
 * `javascript:`, `data:`, userinfo, port, scheme, host prefix, backslash, tab, newline, subfolder
 * escapes) is in test/sso-bad-input.e2e-spec.ts; this file adds the encoded and parser-confusion
 * variants and runs the same hostile list against all three parameters.
 */

/** Targets that must never be followed, whatever the parameter. `FORUM` is the forum's origin, `HOST` its host. */
const HOSTILE = [
  'https://evil.example/',
  'HTTPS://EVIL.EXAMPLE/',
  '//evil.example/',
  '///evil.example/',
  '/\\evil.example/',
  '\\\\evil.example/',
  '/\\/evil.example/',
  '\\/evil.example/',
  'https:evil.example',
  'https:/evil.example',
  'https:\\\\evil.example',
  'javascript:alert(document.domain)',
  'JaVaScRiPt:alert(1)',
  ' javascript:alert(1)',
  'java\tscript:alert(1)',
  'data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==',
  'vbscript:msgbox(1)',
  '%2F%2Fevil.example/',
  '/%2F%2Fevil.example/',
  '/%2fevil.example',
  '/%5Cevil.example',
  '/%5cevil.example',
  '%5C%5Cevil.example',
  '%68ttps://evil.example/',
  'https%3A%2F%2Fevil.example%2F',
  'https://forum@evil.example/',
  'http://HOST@evil.example/',
  'FORUM@evil.example/',
  'FORUM:@evil.example/',
  'FORUM\\@evil.example/',
  'FORUM%40evil.example/',
  'FORUM.evil.example/',
  'https://evil.example\\@HOST/',
  'https://evil.example#@HOST/',
  'https://evil.example?@HOST/',
  '/\tevil.example',
  '/\u0000/evil.example',
  '/\r\n/evil.example',
  '\u3002evil.example',
  '//evil\u3002example/',
];

describe.each(HTTP_ADAPTERS)('adversarial: open redirects (%s)', (adapter) => {
  let h: Harness;
  const anonymous = new TestBrowser();
  const signedIn = new TestBrowser();

  beforeAll(async () => {
    h = await startAdversarialHarness(adapter);
    h.discord.knobs.autoApproveAs = DISCORD_FIXTURES.migrated.id;
    const page = await signedIn.visit(`${h.forum.baseUrl}/session/sso?return_path=%2F`);
    expect(page.status).toBe(200);
  });
  afterAll(async () => h?.close());

  const fill = (t: string) =>
    t.replace(/FORUM/g, h.forumUrl).replace(/HOST/g, new URL(h.forumUrl).host);
  const browsers = [
    ['anonymous', () => anonymous],
    ['signed-in', () => signedIn],
  ] as const;

  /** A refused redirect: a 4xx page, no Location, nothing written locally or sent to the forum. */
  async function expectRefused(browser: TestBrowser, url: string, status: number): Promise<void> {
    const before = await snapshot(h);
    const authorizeBefore = h.discord.stats.authorizeRequests;
    const res = await browser.request(url);
    const body = await res.text();
    expect(res.status).toBe(status);
    expect(res.headers.get('location')).toBeNull();
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(body).toMatch(/<p id="message">[^<]+<\/p>/);
    expect(body).not.toContain('evil');
    expectCleanErrorBody(body);
    expect(h.discord.stats.authorizeRequests).toBe(authorizeBefore);
    await expectNothingWritten(h, before);
  }

  describe.each(browsers)('%s browser', (_who, browser) => {
    it.each(HOSTILE.map((t) => [JSON.stringify(t), t]))(
      'return_sso_url %s is refused (403)',
      async (_n, target) => {
        const sso = b64(
          new URLSearchParams({
            nonce: randomBytes(16).toString('hex'),
            return_sso_url: fill(target),
          }).toString(),
        );
        await expectRefused(
          browser(),
          `${h.appUrl}/discourse/sso?sso=${encodeURIComponent(sso)}&sig=${hmac(sso)}`,
          403,
        );
      },
    );

    it.each(HOSTILE.map((t) => [JSON.stringify(t), t]))(
      'returnTo %s is refused (400)',
      async (_n, target) => {
        await expectRefused(
          browser(),
          `${h.appUrl}/auth/discord?returnTo=${encodeURIComponent(fill(target))}`,
          400,
        );
      },
    );

    it.each(HOSTILE.map((t) => [JSON.stringify(t), t]))(
      'return_path %s is refused (400)',
      async (_n, target) => {
        await expectRefused(
          browser(),
          `${h.appUrl}/discourse/forum?return_path=${encodeURIComponent(fill(target))}`,
          400,
        );
      },
    );

    it('returnTo given twice (an array) is refused, not joined or picked', async () => {
      await expectRefused(
        browser(),
        `${h.appUrl}/auth/discord?returnTo=%2Fok&returnTo=%2F%2Fevil.example`,
        400,
      );
    });

    it('return_path given twice (an array) is refused', async () => {
      await expectRefused(
        browser(),
        `${h.appUrl}/discourse/forum?return_path=%2Fok&return_path=%2F%2Fevil.example`,
        400,
      );
    });
  });

  it('a returnTo smuggled through the resumed SSO request (continue=1) is still checked', async () => {
    await expectRefused(
      new TestBrowser(),
      `${h.appUrl}/auth/discord?continue=1&returnTo=%2F%2Fevil.example`,
      400,
    );
  });

  it('controls: a safe returnTo and return_path are followed, to this site and to the forum only', async () => {
    const browser = new TestBrowser();
    h.discord.knobs.autoApproveAs = DISCORD_FIXTURES.migrated.id;
    const page = await browser.visit(
      `${h.appUrl}/auth/discord?returnTo=${encodeURIComponent('/account?tab=1')}`,
    );
    expect(page.url).toBe(`${h.appUrl}/account?tab=1`);
    const link = await browser.request(
      `${h.appUrl}/discourse/forum?return_path=${encodeURIComponent('/t/x/1?page=2')}`,
    );
    expect(link.status).toBe(302);
    expect(link.headers.get('location')).toBe(
      `${h.forumUrl}/session/sso?return_path=${encodeURIComponent('/t/x/1?page=2')}`,
    );
  });

  it('a path with characters outside ASCII is percent-encoded in the Location, never a 500', async () => {
    // The query parser decodes `%E2%82%AC` to `€`, which Node refuses in a header as it is.
    const link = await anonymous.request(
      `${h.appUrl}/discourse/forum?return_path=%2Ft%2F%E2%82%AC%20caf%C3%A9%2F1`,
    );
    expect(link.status).toBe(302);
    expect(link.headers.get('location')).toBe(`${h.forumUrl}/t/%E2%82%AC%20caf%C3%A9/1`);
    const signedInLink = await signedIn.request(
      `${h.appUrl}/discourse/forum?return_path=%2F%E2%82%AC`,
    );
    expect(signedInLink.status).toBe(302);
    expect(signedInLink.headers.get('location')).toBe(
      `${h.forumUrl}/session/sso?return_path=%2F%E2%82%AC`,
    );

    const browser = new TestBrowser();
    h.discord.knobs.autoApproveAs = DISCORD_FIXTURES.migrated.id;
    const before = h.discord.stats.authorizeRequests;
    const page = await browser.visit(`${h.appUrl}/auth/discord?returnTo=%2F%E2%82%AC%3Fq%3D%C3%A9`);
    expect(h.discord.stats.authorizeRequests).toBe(before + 1);
    expect(page.url).toBe(`${h.appUrl}/%E2%82%AC?q=%C3%A9`);
    expect(browser.cookie(new URL(h.appUrl).hostname, 'dc.sid')).toBeTruthy();
  });
});
