import fc from 'fast-check';
import { DiscourseConnectProtocolError, verifyAndDecode } from 'nestjs-discourse-connect/internal';
import { DISCORD_FIXTURES } from 'nestjs-discourse-connect-simulators';
import { TestBrowser } from '../support/browser';
import { FORUM_SECRET, HTTP_ADAPTERS, type Harness } from '../support/harness';
import {
  expectNothingWritten,
  snapshot,
  startAdversarialHarness,
  WEBHOOK_SECRET,
} from './adversarial-support';
import { hmac } from '../support/signing';

/**
 * Property-based fuzzing beyond GET /discourse/sso (whose fuzzing is test/sso-fuzz.e2e-spec.ts:
 * any input → a success only with a valid signature, else 4xx, never 5xx, redirects only to the
 * forum): the codec against an independent HMAC, and every other route that takes input.
 */

/** Per adapter. */
const RUNS = 40;
const pct = (s: string) =>
  [...Buffer.from(s, 'utf8')].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
const anyText = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 80 }),
  fc.string({ maxLength: 80 }),
  fc.constantFrom(
    '/',
    '//evil.example',
    '/\\evil',
    'https://evil.example',
    '/%2F%2Fevil',
    'javascript:alert(1)',
    '\u0000',
    '/a\uFFFD',
  ),
);

describe('adversarial: property-based fuzzing', () => {
  it('codec: a payload is accepted only when the signature is the HMAC of the exact text, and then decodes as a form', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          anyText,
          anyText.map((t) => Buffer.from(t).toString('base64')),
          fc.uint8Array({ maxLength: 60 }).map((b) => Buffer.from(b).toString('base64')),
        ),
        fc.constantFrom('valid', 'other', 'arbitrary'),
        anyText,
        (sso, mode, arbitrary) => {
          const sig =
            mode === 'valid'
              ? hmac(sso)
              : mode === 'other'
                ? hmac(sso, 'another-secret-0123456789')
                : arbitrary;
          let fields: Record<string, string>;
          try {
            fields = verifyAndDecode(sso, sig, FORUM_SECRET);
          } catch (error) {
            expect(error).toBeInstanceOf(DiscourseConnectProtocolError);
            return;
          }
          expect(sig).toBe(hmac(sso));
          const text = Buffer.from(sso, 'base64').toString('utf8');
          expect(fields).toEqual(Object.fromEntries(new URLSearchParams(text)));
        },
      ),
      { numRuns: 500 },
    );
  });

  describe.each(HTTP_ADAPTERS)('over HTTP (%s)', (adapter) => {
    let h: Harness;
    const anonymous = new TestBrowser();
    const signedIn = new TestBrowser();
    let discordOrigin = '';

    beforeAll(async () => {
      h = await startAdversarialHarness(adapter);
      h.discord.knobs.autoApproveAs = DISCORD_FIXTURES.migrated.id;
      await signedIn.visit(`${h.forum.baseUrl}/session/sso?return_path=%2F`);
      discordOrigin = new URL(
        (await new TestBrowser().request(`${h.appUrl}/auth/discord`)).headers.get('location')!,
      ).origin;
    });
    afterAll(async () => h?.close());

    it.each([
      ['anonymous', () => anonymous],
      ['signed-in', () => signedIn],
    ] as const)(
      'returnTo and return_path: never a 5xx, redirects only to Discord, this site or the forum (%s)',
      async (_n, browser) => {
        await fc.assert(
          fc.asyncProperty(
            anyText,
            fc.constantFrom('returnTo', 'return_path'),
            async (value, name) => {
              const before = await snapshot(h);
              const path = name === 'returnTo' ? '/auth/discord' : '/discourse/forum';
              const res = await browser().request(`${h.appUrl}${path}?${name}=${pct(value)}`);
              await res.arrayBuffer();
              expect(res.status).toBeLessThan(500);
              const location = res.headers.get('location');
              if (location !== null) {
                expect(res.status).toBe(302);
                const target = new URL(location, h.appUrl);
                const allowed =
                  name === 'returnTo' ? [discordOrigin] : [new URL(h.forumUrl).origin];
                expect(allowed).toContain(target.origin);
                expect(target.username + target.password).toBe('');
              } else {
                expect(res.status).toBeGreaterThanOrEqual(400);
              }
              await expectNothingWritten(h, before);
            },
          ),
          { numRuns: RUNS },
        );
      },
    );

    it('the Discord callback with arbitrary code and state: never a 5xx, never signed in, nothing written', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.tuple(fc.constantFrom('code', 'state', 'error', 'x'), anyText), {
            maxLength: 4,
          }),
          async (params) => {
            const browser = new TestBrowser();
            await browser.request(`${h.appUrl}/auth/discord`); // a real pending state in this browser
            const before = await snapshot(h);
            const res = await browser.request(
              `${h.appUrl}/auth/discord/callback?${params.map(([k, v]) => `${k}=${pct(v)}`).join('&')}`,
            );
            await res.arrayBuffer();
            expect(res.status).toBeGreaterThanOrEqual(400);
            expect(res.status).toBeLessThan(500);
            expect(res.headers.get('location')).toBeNull();
            await expectNothingWritten(h, before);
          },
        ),
        { numRuns: RUNS },
      );
    });

    it('webhooks with arbitrary bodies and signatures: 2xx only with the forum’s signature, never a 5xx', async () => {
      let id = 900_000;
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            anyText,
            fc.json(),
            fc.constant(JSON.stringify({ user: { id: 1, username: 'x', external_id: '1' } })),
          ),
          fc.constantFrom('valid', 'other', 'arbitrary'),
          anyText,
          async (body, mode, arbitrary) => {
            const sig =
              mode === 'valid'
                ? `sha256=${hmac(body, WEBHOOK_SECRET)}`
                : mode === 'other'
                  ? `sha256=${hmac(body, 'another-webhook-secret')}`
                  : arbitrary.replace(/[^\x20-\x7e]/g, '');
            const res = await fetch(`${h.appUrl}/discourse/webhooks`, {
              method: 'POST',
              headers: {
                'content-type': 'application/json',
                'x-discourse-event': 'user_updated',
                'x-discourse-event-id': String(id++),
                'x-discourse-event-signature': sig,
              },
              body,
            });
            await res.arrayBuffer();
            expect(res.status).toBeLessThan(500);
            if (res.status < 300) expect(sig).toBe(`sha256=${hmac(body, WEBHOOK_SECRET)}`);
          },
        ),
        { numRuns: RUNS },
      );
    });
  });
});
