import type { Type } from '@nestjs/common';
import { createHash, randomBytes } from 'node:crypto';
import { RequestMethod, type INestApplication } from '@nestjs/common';
import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants.js';
import { DiscoveryService } from '@nestjs/core';
import { DataSource } from 'typeorm';
import { SyncQueue } from 'nestjs-discourse-connect/internal';
import { DISCORD_FIXTURES } from 'nestjs-discourse-connect-simulators';
import { TestBrowser } from '../support/browser';
import { HTTP_ADAPTERS, type Harness } from '../support/harness';
import {
  expectCleanErrorBody,
  expectNothingWritten,
  snapshot,
  startAdversarialHarness,
  waitFor,
  isSignedIn as isSignedInOn,
} from './adversarial-support';

/**
 * Cross-site requests, the OAuth round trip (state, replayed codes, PKCE) and session fixation.
 * Already covered elsewhere: a cross-site POST /auth/logout and /discourse/logout with both
 * Origin and Sec-Fetch-Site, and the confirmation page of a third-party GET /discourse/logout
 * (test/sign-in.e2e-spec.ts, "refuses sign-out from another site…"); a new session id at sign-in
 * and a signed-out cookie that is anonymous afterwards (same file, "regenerates the session id…").
 */

const { migrated } = DISCORD_FIXTURES;
const HOST = '127.0.0.1';

/**
 * The app's routes that are not GET/HEAD, read from the controllers Nest discovered (so a new one is
 * covered too, on either adapter).
 */
function stateChangingRoutes(app: INestApplication): { method: string; path: string }[] {
  const routes: { method: string; path: string }[] = [];
  const clean = (p: unknown) => (typeof p === 'string' ? p.replace(/^\/+|\/+$/g, '') : '');
  for (const wrapper of app.get(DiscoveryService).getControllers()) {
    const controller = wrapper.metatype as Type | undefined;
    if (!controller) continue;
    const base = clean(Reflect.getMetadata(PATH_METADATA, controller));
    for (const name of Object.getOwnPropertyNames(controller.prototype)) {
      const handler = controller.prototype[name];
      if (
        name === 'constructor' ||
        typeof handler !== 'function' ||
        Reflect.getMetadata(PATH_METADATA, handler) === undefined
      )
        continue;
      const method = RequestMethod[Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod];
      if (['GET', 'HEAD', 'ALL', 'OPTIONS'].includes(method)) continue;
      const path = `/${[base, clean(Reflect.getMetadata(PATH_METADATA, handler))].filter(Boolean).join('/')}`;
      routes.push({ method, path });
    }
  }
  return routes;
}

describe.each(HTTP_ADAPTERS)(
  'adversarial: CSRF, OAuth state, replayed codes, PKCE, session fixation (%s)',
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

    async function signedInBrowser(): Promise<{ browser: TestBrowser; callbackUrl: string }> {
      const browser = new TestBrowser();
      const page = await browser.visit(`${h.appUrl}/auth/discord`);
      expect(page.url).toBe(`${h.appUrl}/`);
      const callback = page.hops.find(
        (hop) => new URL(hop.url).pathname === '/auth/discord/callback',
      )!;
      expect(await isSignedIn(browser)).toBe(true);
      return { browser, callbackUrl: callback.url };
    }

    /** Starts sign-in in `browser` and returns the authorize URL the app redirected to. */
    async function authorizeUrl(browser: TestBrowser): Promise<URL> {
      const start = await browser.request(`${h.appUrl}/auth/discord`);
      expect(start.status).toBe(302);
      return new URL(start.headers.get('location')!);
    }

    /** Lets the simulated Discord approve, and returns the callback URL (code + state) without visiting it. */
    async function approve(authorize: URL): Promise<URL> {
      const res = await fetch(authorize, { redirect: 'manual' });
      expect(res.status).toBe(302);
      return new URL(res.headers.get('location')!);
    }

    const sidOf = (browser: TestBrowser) => {
      const cookie = decodeURIComponent(browser.cookie(HOST, 'dc.sid') ?? '');
      return /^s:([^.]+)\./.exec(cookie)?.[1];
    };
    const sessionRow = async (sid: string | undefined) =>
      sid
        ? (
            await h.app
              .get(DataSource)
              .query('SELECT sid FROM discourse_connect_sessions WHERE sid = ?', [sid])
          )[0]
        : undefined;

    describe('cross-site requests', () => {
      const CROSS_SITE: [string, Record<string, string>][] = [
        ['Sec-Fetch-Site: cross-site', { 'sec-fetch-site': 'cross-site' }],
        ['Sec-Fetch-Site: same-site (a sibling subdomain)', { 'sec-fetch-site': 'same-site' }],
        ['an Origin of another site only (older browsers)', { origin: 'https://evil.example' }],
        ['Origin: null (sandboxed iframe, data: URL)', { origin: 'null' }],
        ['an Origin on this host but another port', { origin: `http://${HOST}:1` }],
        ['an Origin with https instead of http', { origin: 'https://127.0.0.1' }],
      ];

      it('every state-changing route is found (the list below is not empty and has the known ones)', () => {
        const routes = stateChangingRoutes(h.app).map((r) => `${r.method} ${r.path}`);
        expect(routes).toEqual(
          expect.arrayContaining([
            'POST /auth/logout',
            'POST /discourse/logout',
            'POST /discourse/webhooks',
          ]),
        );
      });

      it.each(CROSS_SITE)(
        'every state-changing route refuses a signed-in browser’s request with %s',
        async (_n, headers) => {
          const { browser } = await signedInBrowser();
          for (const { method, path } of stateChangingRoutes(h.app)) {
            const before = await snapshot(h);
            const res = await browser.request(`${h.appUrl}${path}`, {
              method,
              headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' },
              body: 'a=1',
            });
            const body = await res.text();
            // The webhook route is not for browsers: it refuses anything without the forum's signature.
            expect([path, res.status]).toEqual([
              path,
              path === '/discourse/webhooks' ? expect.any(Number) : 403,
            ]);
            expect(res.status).toBeGreaterThanOrEqual(400);
            expect(res.status).toBeLessThan(500);
            expect(res.headers.get('location')).toBeNull();
            expectCleanErrorBody(body);
            await expectNothingWritten(h, before, { sessions: true });
            expect(await isSignedIn(browser)).toBe(true);
          }
        },
      );

      it('a same-origin sign-out still works (control) and queues the forum log-out once', async () => {
        const { browser } = await signedInBrowser();
        const res = await browser.request(`${h.appUrl}/auth/logout`, {
          method: 'POST',
          headers: { origin: h.appUrl, 'sec-fetch-site': 'same-origin' },
        });
        expect(res.status).toBe(303);
        expect(await isSignedIn(browser)).toBe(false);
      });
    });

    describe('OAuth state', () => {
      it('the authorize redirect carries a random state and a S256 PKCE challenge, never the verifier', async () => {
        const seen = new Set<string>();
        for (let i = 0; i < 3; i++) {
          const url = await authorizeUrl(new TestBrowser());
          const q = url.searchParams;
          expect(url.pathname).toBe('/oauth2/authorize');
          expect(q.get('response_type')).toBe('code');
          expect(q.get('code_challenge_method')).toBe('S256');
          expect(q.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
          expect(q.get('state')!.length).toBeGreaterThanOrEqual(16);
          expect(q.has('code_verifier')).toBe(false);
          expect(q.get('redirect_uri')).toBe(`${h.appUrl}/auth/discord/callback`);
          seen.add(q.get('state')!);
          seen.add(q.get('code_challenge')!);
        }
        expect(seen.size).toBe(6);
      });

      it.each([
        [
          'an altered state',
          (cb: URL) => cb.searchParams.set('state', `${cb.searchParams.get('state')}x`),
        ],
        [
          'another random state',
          (cb: URL) => cb.searchParams.set('state', randomBytes(18).toString('base64url')),
        ],
        ['no state', (cb: URL) => cb.searchParams.delete('state')],
        ['an empty state', (cb: URL) => cb.searchParams.set('state', '')],
        [
          'a repeated state',
          (cb: URL) => cb.searchParams.append('state', cb.searchParams.get('state')!),
        ],
      ])('a callback with %s is refused before the code is exchanged (403)', async (_n, tamper) => {
        const browser = new TestBrowser();
        const callback = await approve(await authorizeUrl(browser));
        tamper(callback);
        const before = await snapshot(h);
        const exchanges = h.discord.stats.tokenExchanges;
        const res = await browser.request(callback.toString());
        const body = await res.text();
        expect(res.status).toBe(403);
        expect(res.headers.get('location')).toBeNull();
        expect(body).toContain('started in another browser');
        expectCleanErrorBody(body);
        expect(h.discord.stats.tokenExchanges).toBe(exchanges);
        await expectNothingWritten(h, before);
        expect(await isSignedIn(browser)).toBe(false);
      });

      it('a callback (code + state) carried to another browser is refused (login CSRF)', async () => {
        const callback = await approve(await authorizeUrl(new TestBrowser()));
        const victim = new TestBrowser();
        const before = await snapshot(h);
        const res = await victim.request(callback.toString());
        expect(res.status).toBe(403);
        expect(await res.text()).toContain('Sign-in expired');
        expect(h.discord.stats.tokenExchanges).toBe(0);
        await expectNothingWritten(h, before);
        expect(await isSignedIn(victim)).toBe(false);
      });
    });

    describe('replayed callback', () => {
      it('the callback URL of a completed sign-in is refused in the same browser and in a fresh one', async () => {
        const { browser, callbackUrl } = await signedInBrowser();
        expect(h.discord.stats.tokenExchanges).toBe(1);
        for (const replayer of [browser, new TestBrowser()]) {
          const before = await snapshot(h);
          const res = await replayer.request(callbackUrl);
          const body = await res.text();
          expect(res.status).toBe(403);
          expect(res.headers.get('location')).toBeNull();
          expect(body).toContain('Sign-in expired');
          await expectNothingWritten(h, before);
        }
        expect(h.discord.stats.tokenExchanges).toBe(1);
        expect(await isSignedIn(browser)).toBe(true);
      });

      it('the used code with a fresh valid state is refused by Discord (single use, bound to its PKCE challenge): 400', async () => {
        const { callbackUrl } = await signedInBrowser();
        const usedCode = new URL(callbackUrl).searchParams.get('code')!;
        const attacker = new TestBrowser();
        const fresh = await approve(await authorizeUrl(attacker));
        fresh.searchParams.set('code', usedCode);
        const before = await snapshot(h);
        const res = await attacker.request(fresh.toString());
        const body = await res.text();
        expect(res.status).toBe(400);
        expect(body).toContain('expired or was already used');
        expectCleanErrorBody(body);
        await expectNothingWritten(h, before);
        expect(await isSignedIn(attacker)).toBe(false);
      });
    });

    describe('PKCE at the simulated Discord', () => {
      const verifier = randomBytes(32).toString('base64url');
      const challenge = createHash('sha256').update(verifier).digest('base64url');

      async function codeFor(params: Record<string, string>): Promise<Response> {
        const url = new URL(`${(await authorizeUrl(new TestBrowser())).origin}/oauth2/authorize`);
        const q = {
          client_id: 'sandbox-client-id',
          redirect_uri: `${h.appUrl}/auth/discord/callback`,
          response_type: 'code',
          scope: 'identify email',
          state: 'st',
          code_challenge: challenge,
          code_challenge_method: 'S256',
          ...params,
        };
        for (const [k, v] of Object.entries(q)) if (v !== '') url.searchParams.set(k, v);
        return fetch(url, { redirect: 'manual' });
      }

      let discordOrigin = '';
      beforeAll(async () => {
        discordOrigin = (await authorizeUrl(new TestBrowser())).origin;
      });

      const exchange = (code: string, extra: Record<string, string>) =>
        fetch(`${discordOrigin}/api/oauth2/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({
            client_id: 'sandbox-client-id',
            client_secret: 'sandbox-client-secret',
            grant_type: 'authorization_code',
            code,
            redirect_uri: `${h.appUrl}/auth/discord/callback`,
            ...extra,
          }),
        });

      it('a token exchange without the verifier or with a wrong one is refused; the right one works', async () => {
        const code = async () =>
          new URL((await codeFor({})).headers.get('location')!).searchParams.get('code')!;
        for (const extra of [
          {} as Record<string, string>,
          { code_verifier: randomBytes(32).toString('base64url') },
          { code_verifier: challenge },
        ]) {
          const res = await exchange(await code(), extra);
          expect(res.status).toBe(400);
          expect(await res.json()).toMatchObject({ error: 'invalid_grant' });
        }
        const ok = await exchange(await code(), { code_verifier: verifier });
        expect(ok.status).toBe(200);
      });

      it('an authorize request without a challenge, or with the plain method, is refused', async () => {
        for (const params of [
          { code_challenge: '', code_challenge_method: '' },
          { code_challenge_method: 'plain', code_challenge: verifier },
        ]) {
          const res = await codeFor(params);
          expect(res.status).toBe(400);
          expect(await res.text()).toMatch(/PKCE is required|only S256/);
        }
      });
    });

    describe('session fixation', () => {
      it('a session id planted before sign-in is not the one signed in, and its row is gone', async () => {
        const attacker = new TestBrowser();
        await attacker.request(`${h.appUrl}/auth/discord`);
        const planted = attacker.cookie(HOST, 'dc.sid')!;
        expect(await sessionRow(sidOf(attacker))).toBeDefined();

        const victim = new TestBrowser();
        victim.cookies.set(HOST, new Map([['dc.sid', planted]]));
        const page = await victim.visit(`${h.appUrl}/auth/discord`);
        expect(page.url).toBe(`${h.appUrl}/`);
        expect(victim.cookie(HOST, 'dc.sid')).not.toBe(planted);
        expect(await isSignedIn(victim)).toBe(true);
        expect(await isSignedIn(attacker)).toBe(false);
        expect(await sessionRow(sidOf(attacker))).toBeUndefined();
      });

      it('a signed-out session cannot be reused: its row is deleted, and a replayed cookie neither signs in nor signs out again', async () => {
        const { browser } = await signedInBrowser();
        const cookie = browser.cookie(HOST, 'dc.sid')!;
        const sid = sidOf(browser);
        expect(await sessionRow(sid)).toBeDefined();
        const out = await browser.request(`${h.appUrl}/auth/logout`, {
          method: 'POST',
          headers: { origin: h.appUrl },
        });
        expect(out.status).toBe(303);
        expect(await sessionRow(sid)).toBeUndefined();
        await waitFor(async () => {
          const c = await h.app.get(SyncQueue).counts();
          return c.pending + c.running === 0;
        }, 'the forum log-out to be delivered');

        const replay = new TestBrowser();
        replay.cookies.set(HOST, new Map([['dc.sid', cookie]]));
        expect(await isSignedIn(replay)).toBe(false);
        const before = await snapshot(h);
        const again = await replay.request(`${h.appUrl}/auth/logout`, {
          method: 'POST',
          headers: { origin: h.appUrl },
        });
        expect(again.status).toBe(303);
        // No user on the replayed session: no second forum log-out is queued.
        await expectNothingWritten(h, before);
      });

      it('a session signed out from the forum (logout_redirect) cannot be reused either', async () => {
        const { browser } = await signedInBrowser();
        const cookie = browser.cookie(HOST, 'dc.sid')!;
        const sid = sidOf(browser);
        const res = await browser.request(`${h.appUrl}/discourse/logout`, {
          headers: {
            referer: `${h.forum.baseUrl}/`,
            'sec-fetch-site': 'same-site',
            'sec-fetch-mode': 'navigate',
            'sec-fetch-dest': 'document',
          },
        });
        expect(res.status).toBe(303);
        expect(await sessionRow(sid)).toBeUndefined();
        const replay = new TestBrowser();
        replay.cookies.set(HOST, new Map([['dc.sid', cookie]]));
        expect(await isSignedIn(replay)).toBe(false);
      });

      it.each([
        ['an unsigned session id', (sid: string) => sid],
        ['a session id with a forged signature', (sid: string) => `s%3A${sid}.${'A'.repeat(43)}`],
      ])('%s of a signed-in session is ignored', async (_n, forge) => {
        const { browser } = await signedInBrowser();
        const forged = new TestBrowser();
        forged.cookies.set(HOST, new Map([['dc.sid', forge(sidOf(browser)!)]]));
        expect(await isSignedIn(forged)).toBe(false);
      });
    });
  },
);
