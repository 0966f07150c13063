import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { DISCORD_FIXTURES } from 'nestjs-discourse-connect-simulators';
import { TestBrowser } from './support/browser';
import { HTTP_ADAPTERS, startHarness, type Harness } from './support/harness';
import { b64, hmac } from './support/signing';

/**
 * Property-based fuzzing of `GET /discourse/sso` on real HTTP: whatever arrives, never a 5xx; a
 * success only for a signature made with the forum's secret; a redirect only to the forum or to a
 * path of this app. Inputs are built here with node:crypto, independently of the library.
 */

const RUNS = 150;
/** Percent-encodes every UTF-8 byte, so any string (lone surrogates included) travels intact-as-UTF-8. */
const pct = (s: string): string =>
  [...Buffer.from(s, 'utf8')].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
/** What the server decodes from `pct(s)`. */
const received = (s: string): string => Buffer.from(s, 'utf8').toString('utf8');

type Param = [string, string];

describe.each(HTTP_ADAPTERS)('GET /discourse/sso under fuzzing (%s)', (adapter) => {
  let h: Harness;
  const anonymous = new TestBrowser();
  const signedIn = new TestBrowser();

  beforeAll(async () => {
    h = await startHarness('forRoot', { adapter });
    h.discord.knobs.autoApproveAs = DISCORD_FIXTURES.migrated.id;
    const page = await signedIn.visit(`${h.forum.baseUrl}/session/sso?return_path=%2F`);
    expect(page.status).toBe(200);
    expect(h.forum.stats.ssoLogins).toBe(1);
  });
  afterAll(async () => h?.close());

  const forumOrigin = (): string => new URL(h.forumUrl).origin;

  /** Sends the params (in order, repeats allowed) and checks what must hold for any input. */
  async function send(
    browser: TestBrowser,
    params: Param[],
  ): Promise<{ status: number; location: string | null }> {
    const query = params.map(([k, v]) => `${pct(k)}=${pct(v)}`).join('&');
    const before = h.forum.stats.ssoLogins;
    const res = await browser.request(`${h.appUrl}/discourse/sso?${query}`);
    const body = await res.text();
    const location = res.headers.get('location');
    expect(res.status).toBeLessThan(500);
    expect(body).not.toMatch(/\bat \S+ \(|\.ts:\d+/);
    if (location !== null) assertSafeLocation(location, browser === signedIn);
    expect(h.forum.stats.ssoLogins).toBe(before);
    return { status: res.status, location };
  }

  /** A redirect goes to the forum (signed by the forum's secret) or to a relative path of this app. */
  function assertSafeLocation(location: string, signedInBrowser: boolean): void {
    if (!signedInBrowser) {
      expect(location).toBe('/auth/discord?continue=1');
      return;
    }
    const url = new URL(location);
    expect(url.origin).toBe(forumOrigin());
    expect(location.startsWith(`${h.forumUrl}/`)).toBe(true);
    expect(url.username).toBe('');
    const sso = url.searchParams.getAll('sso');
    const sig = url.searchParams.getAll('sig');
    expect(sso).toHaveLength(1);
    expect(sig).toEqual([hmac(sso[0])]);
  }

  /** Whether the server got exactly one sso and one sig, the sig being our HMAC of that sso. */
  function validlySigned(params: Param[]): boolean {
    const ssos = params.filter(([k]) => received(k) === 'sso');
    const sigs = params.filter(([k]) => received(k) === 'sig');
    if (ssos.length !== 1 || sigs.length !== 1) return false;
    const sso = received(ssos[0][1]);
    return sso !== '' && received(sigs[0][1]) === hmac(sso);
  }

  const anyText = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 120 }),
    fc.string({ maxLength: 120 }),
    fc.constantFrom(
      '',
      ' ',
      '%%%',
      '====',
      'AA==\n',
      '\u0000',
      'bm9uY2U9YQ==',
      '+/+/',
      'a'.repeat(300),
    ),
  );
  const hexish = fc.oneof(
    fc.stringMatching(/^[0-9a-f]{60,68}$/),
    fc.stringMatching(/^[0-9A-Fa-f]{64}$/),
    anyText,
  );
  const extraParams = fc.array(
    fc.tuple(
      fc.oneof(anyText, fc.constantFrom('sso', 'sig', 'SSO', 'sso[]', '__proto__', 'constructor')),
      anyText,
    ),
    { maxLength: 4 },
  );
  /** Payload texts a forum (or an attacker with the secret) might sign. */
  const returnUrl = fc.oneof(
    fc.constant('FORUM/session/sso_login'),
    fc.webPath().map((p) => `FORUM${p.startsWith('/') ? p : `/${p}`}`),
    fc.webUrl({ withQueryParameters: true, withFragments: true }),
    fc.constantFrom(
      'javascript:alert(1)',
      '//evil.example/session/sso_login',
      'https://evil.example/session/sso_login',
      'ORIGIN_HOST@evil.example/',
      'FORUM/..%2F..%2Fevil',
      'FORUM\\@evil.example/',
      'FORUM.evil.example/',
      '/session/sso_login',
      '',
    ),
    anyText,
  );
  const payloadText = fc
    .record({
      nonce: fc.option(fc.oneof(fc.stringMatching(/^[0-9a-f]{32}$/), anyText), { nil: undefined }),
      returnSsoUrl: fc.option(returnUrl, { nil: undefined }),
      extra: fc.array(fc.tuple(anyText, anyText), { maxLength: 3 }),
    })
    .map(({ nonce, returnSsoUrl, extra }) => {
      const params = new URLSearchParams();
      if (nonce !== undefined) params.append('nonce', nonce);
      if (returnSsoUrl !== undefined) {
        const host = new URL(h.forumUrl).host;
        params.append(
          'return_sso_url',
          returnSsoUrl.replace(/^FORUM/, h.forumUrl).replace(/^ORIGIN_HOST/, `http://${host}`),
        );
      }
      for (const [k, v] of extra) params.append(k, v);
      return { text: params.toString(), returnSsoUrl: params.get('return_sso_url') };
    });

  it.each([
    ['anonymous', () => anonymous],
    ['signed-in', () => signedIn],
  ] as const)(
    'arbitrary sso, sig and extra params never give a 5xx; success needs a valid signature (%s)',
    async (_n, browser) => {
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            anyText,
            anyText.map((t) => b64(t)),
            payloadText.map((p) => b64(p.text)),
          ),
          fc.constantFrom('valid', 'upper', 'other-secret', 'arbitrary'),
          hexish,
          extraParams,
          fc.boolean(),
          async (sso, sigMode, arbitrarySig, extra, extraFirst) => {
            const sig =
              sigMode === 'valid'
                ? hmac(received(sso))
                : sigMode === 'upper'
                  ? hmac(received(sso)).toUpperCase()
                  : sigMode === 'other-secret'
                    ? hmac(received(sso), 'another-forums-secret-0123456789')
                    : arbitrarySig;
            const core: Param[] = [
              ['sso', sso],
              ['sig', sig],
            ];
            const params = extraFirst ? [...extra, ...core] : [...core, ...extra];
            const { status } = await send(browser(), params);
            if (status < 400) expect(validlySigned(params)).toBe(true);
            else expect(status).toBeGreaterThanOrEqual(400);
          },
        ),
        { numRuns: RUNS },
      );
    },
  );

  it.each([
    ['anonymous', () => anonymous],
    ['signed-in', () => signedIn],
  ] as const)(
    'validly signed arbitrary payloads only ever lead back to the forum (%s)',
    async (_n, browser) => {
      let accepted = 0;
      await fc.assert(
        fc.asyncProperty(payloadText, async ({ text, returnSsoUrl }) => {
          const sso = b64(text);
          const { status } = await send(browser(), [
            ['sso', sso],
            ['sig', hmac(sso)],
          ]);
          let onForum: boolean;
          try {
            onForum = returnSsoUrl !== null && new URL(returnSsoUrl).origin === forumOrigin();
          } catch {
            onForum = false;
          }
          if (!onForum) expect(status).toBeGreaterThanOrEqual(400);
          if (status < 400) accepted++;
        }),
        { numRuns: RUNS },
      );
      // The generator reaches the success path too, so the redirect checks above really ran.
      expect(accepted).toBeGreaterThan(0);
    },
  );

  it('raw, unescaped query text never gives a 5xx or a redirect', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.string({
          unit: fc.constantFrom(...'abcAZ09+/=%&;[]?.-_~!$\'()*,:@ sosigSSO\\"<>{}|^`'.split('')),
          maxLength: 200,
        }),
        async (raw) => {
          const res = await anonymous.request(`${h.appUrl}/discourse/sso?${raw}`);
          await res.arrayBuffer();
          expect(res.status).toBeGreaterThanOrEqual(400);
          expect(res.status).toBeLessThan(500);
          expect(res.headers.get('location')).toBeNull();
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('sanity: a validly signed forum request succeeds for both browsers', async () => {
    const sso = b64(
      new URLSearchParams({
        nonce: randomBytes(16).toString('hex'),
        return_sso_url: `${h.forumUrl}/session/sso_login`,
      }).toString(),
    );
    expect(
      (
        await send(anonymous, [
          ['sso', sso],
          ['sig', hmac(sso)],
        ])
      ).status,
    ).toBe(302);
    expect(
      (
        await send(signedIn, [
          ['sso', sso],
          ['sig', hmac(sso)],
        ])
      ).status,
    ).toBe(302);
  });
});
