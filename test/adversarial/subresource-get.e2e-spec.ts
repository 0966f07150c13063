import { DataSource } from 'typeorm';
import { DISCORD_FIXTURES } from 'nestjs-discourse-connect-simulators';
import { TestBrowser } from '../support/browser';
import { HTTP_ADAPTERS, type Harness } from '../support/harness';
import {
  expectCleanErrorBody,
  expectNothingWritten,
  snapshot,
  startAdversarialHarness,
  isSignedIn as isSignedInOn,
} from './adversarial-support';

/**
 * Subresource requests to state-changing GETs: an image, script, frame or fetch on the forum (a post
 * can embed `<img src="…/discourse/logout">`), a HEAD request, or a link on a foreign page must not
 * do what only a top-level navigation from the forum may do. The GET routes that change state:
 * `GET /discourse/logout` (signs out) and `GET /auth/discord` (starts sign-in; it must never run the
 * callback's token exchange). Also: Cache-Control on the sign-in start and every sign-out answer,
 * and the short lifetime of pre-sign-in sessions.
 */

const { migrated } = DISCORD_FIXTURES;
const HOST = '127.0.0.1';
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** Request shapes a browser sends for things that are not a top-level navigation. */
const SUBRESOURCES: [string, string, Record<string, string>][] = [
  [
    '<img>',
    'GET',
    { 'sec-fetch-dest': 'image', 'sec-fetch-mode': 'no-cors', 'sec-fetch-site': 'same-site' },
  ],
  [
    '<script>',
    'GET',
    { 'sec-fetch-dest': 'script', 'sec-fetch-mode': 'no-cors', 'sec-fetch-site': 'same-site' },
  ],
  [
    '<iframe>',
    'GET',
    { 'sec-fetch-dest': 'iframe', 'sec-fetch-mode': 'navigate', 'sec-fetch-site': 'same-site' },
  ],
  [
    'fetch() no-cors',
    'GET',
    { 'sec-fetch-dest': 'empty', 'sec-fetch-mode': 'no-cors', 'sec-fetch-site': 'same-site' },
  ],
  [
    'fetch() cors',
    'GET',
    { 'sec-fetch-dest': 'empty', 'sec-fetch-mode': 'cors', 'sec-fetch-site': 'same-site' },
  ],
  [
    'a document that is not a navigation (mode no-cors)',
    'GET',
    { 'sec-fetch-dest': 'document', 'sec-fetch-mode': 'no-cors' },
  ],
  [
    'a navigation into an <object>',
    'GET',
    { 'sec-fetch-dest': 'object', 'sec-fetch-mode': 'navigate' },
  ],
  [
    'HEAD (a link checker, a preview)',
    'HEAD',
    { 'sec-fetch-dest': 'document', 'sec-fetch-mode': 'navigate' },
  ],
  ['an old browser without Sec-Fetch-* (cannot tell an <img> from a navigation)', 'GET', {}],
];

const NAVIGATION = {
  'sec-fetch-dest': 'document',
  'sec-fetch-mode': 'navigate',
  'sec-fetch-site': 'same-site',
};

describe.each(HTTP_ADAPTERS)(
  'adversarial: subresource requests to state-changing GETs (%s)',
  (adapter) => {
    let h: Harness;

    beforeAll(async () => {
      h = await startAdversarialHarness(adapter);
    });
    afterAll(async () => h?.close());
    beforeEach(() => {
      h.discord.reset();
      h.discord.knobs.autoApproveAs = migrated.id;
    });

    const isSignedIn = (browser: TestBrowser) => isSignedInOn(h, browser);

    async function signedInBrowser(): Promise<TestBrowser> {
      const browser = new TestBrowser();
      const page = await browser.visit(`${h.appUrl}/auth/discord`);
      expect(page.url).toBe(`${h.appUrl}/`);
      expect(await isSignedIn(browser)).toBe(true);
      return browser;
    }

    /** Starts sign-in in `browser`, lets the simulated Discord approve: the callback URL (code + state), not visited. */
    async function approvedCallback(browser: TestBrowser): Promise<URL> {
      const start = await browser.request(`${h.appUrl}/auth/discord`);
      expect(start.status).toBe(302);
      const res = await fetch(start.headers.get('location')!, { redirect: 'manual' });
      expect(res.status).toBe(302);
      return new URL(res.headers.get('location')!);
    }

    const sidOf = (browser: TestBrowser) =>
      /^s:([^.]+)\./.exec(decodeURIComponent(browser.cookie(HOST, 'dc.sid') ?? ''))?.[1];
    const rowExpiry = async (sid: string | undefined): Promise<number | undefined> => {
      const rows = await h.app
        .get(DataSource)
        .query('SELECT expires_at FROM discourse_connect_sessions WHERE sid = ?', [sid ?? '']);
      return rows[0] ? Number(rows[0].expires_at) : undefined;
    };
    const cookieExpiry = (res: Response): number | undefined => {
      const line = res.headers.getSetCookie().find((l) => l.startsWith('dc.sid='));
      const m = line && /Expires=([^;]+)/i.exec(line);
      return m ? Date.parse(m[1]) : undefined;
    };

    describe('GET /discourse/logout (the forum’s logout_redirect)', () => {
      it.each(SUBRESOURCES)(
        '%s with the forum as Referer does not sign out',
        async (_n, method, headers) => {
          const browser = await signedInBrowser();
          const res = await browser.request(`${h.appUrl}/discourse/logout`, {
            method,
            headers: { ...headers, referer: `${h.forum.baseUrl}/t/a-post/1` },
            exactHeaders: true,
          });
          const body = await res.text();
          expect(res.status).toBe(200);
          expect(res.headers.get('location')).toBeNull();
          expect(res.headers.get('cache-control')).toBe('no-store');
          expect(res.headers.getSetCookie().filter((l) => l.startsWith('dc.sid='))).toEqual([]);
          if (method === 'GET') expect(body).toContain('Sign out?');
          expect(await isSignedIn(browser)).toBe(true);
        },
      );

      it.each([
        [
          'a foreign Referer',
          { ...NAVIGATION, 'sec-fetch-site': 'cross-site', referer: 'https://evil.example/' },
        ],
        [
          'a foreign Referer that starts with the forum’s URL',
          { ...NAVIGATION, referer: 'http://127.0.0.1.evil.example/' },
        ],
        ['no Referer', NAVIGATION],
      ])('a top-level navigation with %s gets the confirmation page', async (_n, headers) => {
        const browser = await signedInBrowser();
        const res = await browser.request(`${h.appUrl}/discourse/logout`, { headers });
        expect(res.status).toBe(200);
        expect(res.headers.get('cache-control')).toBe('no-store');
        expect(await res.text()).toContain('Sign out?');
        expect(await isSignedIn(browser)).toBe(true);
      });

      it('the confirmation button (a same-origin POST) signs out, with Cache-Control: no-store', async () => {
        const browser = await signedInBrowser();
        const res = await browser.request(`${h.appUrl}/discourse/logout`, {
          method: 'POST',
          headers: { origin: h.appUrl, 'sec-fetch-site': 'same-origin' },
        });
        expect(res.status).toBe(303);
        expect(res.headers.get('cache-control')).toBe('no-store');
        expect(await isSignedIn(browser)).toBe(false);
      });

      it('a top-level navigation from the forum signs out at once (control), with Cache-Control: no-store', async () => {
        const browser = await signedInBrowser();
        const res = await browser.request(`${h.appUrl}/discourse/logout`, {
          headers: { ...NAVIGATION, referer: `${h.forum.baseUrl}/` },
        });
        expect(res.status).toBe(303);
        expect(res.headers.get('cache-control')).toBe('no-store');
        expect(await isSignedIn(browser)).toBe(false);
        // Signed out already: the next visit goes home, also not cacheable.
        const again = await browser.request(`${h.appUrl}/discourse/logout`, {
          headers: { ...NAVIGATION, referer: `${h.forum.baseUrl}/` },
        });
        expect(again.status).toBe(303);
        expect(again.headers.get('cache-control')).toBe('no-store');
      });

      it('POST /auth/logout answers with Cache-Control: no-store', async () => {
        const browser = await signedInBrowser();
        const res = await browser.request(`${h.appUrl}/auth/logout`, {
          method: 'POST',
          headers: { origin: h.appUrl, 'sec-fetch-site': 'same-origin' },
        });
        expect(res.status).toBe(303);
        expect(res.headers.get('cache-control')).toBe('no-store');
      });
    });

    describe('GET /auth/discord (sign-in start) never finishes a sign-in', () => {
      it.each([
        ...SUBRESOURCES,
        ['a top-level navigation', 'GET', NAVIGATION] as [string, string, Record<string, string>],
      ])(
        '%s carrying a valid code and state is refused (400) without exchanging the code',
        async (_n, method, headers) => {
          const browser = new TestBrowser();
          const callback = await approvedCallback(browser);
          const before = await snapshot(h);
          const res = await browser.request(`${h.appUrl}/auth/discord${callback.search}`, {
            method,
            headers,
            exactHeaders: true,
          });
          const body = await res.text();
          expect(res.status).toBe(400);
          expect(res.headers.get('location')).toBeNull();
          expect(res.headers.get('cache-control')).toBe('no-store');
          if (method === 'GET') {
            expect(body).toContain('does not accept a code from Discord');
            expectCleanErrorBody(body);
          }
          expect(h.discord.stats.tokenExchanges).toBe(0);
          await expectNothingWritten(h, before);
          expect(await isSignedIn(browser)).toBe(false);
          // The code was not used up: the real callback still finishes the sign-in.
          const page = await browser.visit(callback.toString());
          expect(page.url).toBe(`${h.appUrl}/`);
          expect(h.discord.stats.tokenExchanges).toBe(1);
          expect(await isSignedIn(browser)).toBe(true);
        },
      );

      it.each([
        ['?code=abc'],
        ['?state=abc'],
        ['?code='],
        ['?error=access_denied'],
        ['?error=invalid_scope&error_description=x'],
        ['?returnTo=%2F&code=1&state=2'],
      ])('%s is refused (400), nothing written', async (query) => {
        const browser = new TestBrowser();
        const before = await snapshot(h);
        const res = await browser.request(`${h.appUrl}/auth/discord${query}`);
        expect(res.status).toBe(400);
        expect(res.headers.get('location')).toBeNull();
        expectCleanErrorBody(await res.text());
        expect(h.discord.stats.tokenExchanges).toBe(0);
        await expectNothingWritten(h, before, { sessions: true });
      });

      it('the start answers with Cache-Control: no-store (it sets the session cookie)', async () => {
        const res = await new TestBrowser().request(`${h.appUrl}/auth/discord`);
        expect(res.status).toBe(302);
        expect(res.headers.getSetCookie().some((l) => l.startsWith('dc.sid='))).toBe(true);
        expect(res.headers.get('cache-control')).toBe('no-store');
      });
    });

    describe('pre-sign-in sessions are short-lived', () => {
      const near = (value: number | undefined, expected: number) => {
        expect(value).toBeDefined();
        expect(Math.abs(value! - expected)).toBeLessThan(2 * 60_000);
      };

      it('an anonymous sign-in start keeps its session one hour (cookie and row), not the session lifetime', async () => {
        const browser = new TestBrowser();
        const res = await browser.request(`${h.appUrl}/auth/discord`);
        near(cookieExpiry(res), Date.now() + HOUR);
        near(await rowExpiry(sidOf(browser)), Date.now() + HOUR);
      });

      it('an anonymous SSO request (from the forum) keeps its session one hour too', async () => {
        const browser = new TestBrowser();
        const fromForum = await browser.request(`${h.forum.baseUrl}/session/sso?return_path=%2F`);
        const res = await browser.request(fromForum.headers.get('location')!);
        expect(res.status).toBe(302);
        near(cookieExpiry(res), Date.now() + HOUR);
        near(await rowExpiry(sidOf(browser)), Date.now() + HOUR);
      });

      it('signing in gives the new session the normal lifetime (14 days)', async () => {
        const browser = new TestBrowser();
        const callback = await approvedCallback(browser);
        const res = await browser.request(callback.toString());
        expect(res.status).toBe(302);
        near(cookieExpiry(res), Date.now() + 14 * DAY);
        near(await rowExpiry(sidOf(browser)), Date.now() + 14 * DAY);
      });

      it('a signed-in person who starts sign-in again keeps the normal lifetime', async () => {
        const browser = await signedInBrowser();
        const sid = sidOf(browser);
        await browser.request(`${h.appUrl}/auth/discord`);
        near(await rowExpiry(sidOf(browser) ?? sid), Date.now() + 14 * DAY);
      });
    });
  },
);
