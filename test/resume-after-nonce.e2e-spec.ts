import { DISCORD_FIXTURES } from 'nestjs-discourse-connect-simulators';
import { TestBrowser } from './support/browser';
import { HTTP_ADAPTERS, startHarness, type Harness } from './support/harness';

/**
 * A person who leaves Discord's consent screen open: the forum's nonce (30 minutes) may be dead when
 * they come back. Past `sso.resumeWithinSeconds` (25 minutes by default) the module does not answer
 * with the old nonce; the forum starts over with a fresh one. The clock moves through `Date.now`
 * only (the module, the simulated forum's nonces, session expiry); timers and sockets are real.
 */
const MINUTE = 60_000;
const { migrated } = DISCORD_FIXTURES;

describe.each(HTTP_ADAPTERS)('a sign-in that outlasts the nonce (%s)', (adapter) => {
  let h: Harness;
  let offset = 0;
  const realNow = Date.now.bind(Date);

  beforeAll(async () => {
    h = await startHarness('forRoot', { adapter, forumOptions: { now: () => Date.now() } });
  });
  afterAll(async () => h.close());
  beforeEach(() => {
    offset = 0;
    jest.spyOn(Date, 'now').mockImplementation(() => realNow() + offset);
    h.discord.reset();
    h.forum.reset();
    h.discord.knobs.autoApproveAs = migrated.id;
  });
  afterEach(() => jest.restoreAllMocks());

  /** The forum's sign-in up to the redirect to Discord; `minutes` pass there; then the rest. */
  async function signInAfter(minutes: number) {
    const browser = new TestBrowser();
    const toDiscord = await browser.visit(
      `${h.forum.baseUrl}/session/sso?return_path=${encodeURIComponent('/t/welcome/1')}`,
      { maxHops: 2 },
    );
    expect(new URL(toDiscord.url).pathname).toBe('/auth/discord');
    expect(toDiscord.status).toBe(302);
    offset += minutes * MINUTE;
    const page = await browser.visit(new URL(toDiscord.headers.get('location')!).toString());
    return { page, hops: page.hops.map((hop) => new URL(hop.url).pathname) };
  }

  it('26 minutes later: the forum starts over with a fresh nonce and the member lands signed in', async () => {
    const { page, hops } = await signInAfter(26);
    expect(hops).toEqual([
      '/oauth2/authorize',
      '/auth/discord/callback',
      '/discourse/sso',
      '/session/sso',
      '/discourse/sso',
      '/session/sso_login',
      '/',
    ]);
    expect(page.status).toBe(200);
    expect(page.url).toBe(`${h.forum.baseUrl}/`);
    expect(h.forum.stats.ssoRedirects).toBe(2);
    expect(h.forum.stats.ssoErrors).toBe(0);
    expect(h.forum.stats.ssoLogins).toBe(1);
    const forumUser = h.forum.findByExternalId(migrated.id)!;
    expect(forumUser.username).toBe(migrated.username);
    expect(page.body).toContain(forumUser.username);
    expect(page.body).not.toMatch(/timed out/i);
  });

  it('24 minutes later: the original request is answered, back to the page the member was on', async () => {
    const { page, hops } = await signInAfter(24);
    expect(hops).toEqual([
      '/oauth2/authorize',
      '/auth/discord/callback',
      '/discourse/sso',
      '/session/sso_login',
      '/t/welcome/1',
    ]);
    expect(page.status).toBe(200);
    expect(h.forum.stats.ssoRedirects).toBe(1);
    expect(h.forum.stats.ssoErrors).toBe(0);
    expect(h.forum.stats.ssoLogins).toBe(1);
    expect(page.body).toContain(h.forum.findByExternalId(migrated.id)!.username);
  });

  it("without the restart the forum's timeout page is what the member would see (the simulator's nonce is 30 minutes)", async () => {
    const browser = new TestBrowser();
    const before = Date.now();
    const toDiscord = await browser.visit(
      `${h.forum.baseUrl}/session/sso?return_path=${encodeURIComponent('/t/welcome/1')}`,
      { maxHops: 2 },
    );
    const after = Date.now();
    const resume = new URL(toDiscord.hops[1].url);
    offset += 31 * MINUTE;
    const signedIn = await browser.visit(toDiscord.headers.get('location')!, { maxHops: 1 });
    // The callback's redirect carries the request and when it was remembered.
    const back = new URL(signedIn.headers.get('location')!, signedIn.url);
    expect(back.pathname).toBe(resume.pathname);
    expect(back.searchParams.get('sso')).toBe(resume.searchParams.get('sso'));
    const rememberedAt = Number(back.searchParams.get('remembered_at'));
    expect(rememberedAt).toBeGreaterThanOrEqual(before);
    expect(rememberedAt).toBeLessThanOrEqual(after);
    // Answered with the old nonce anyway (remembered_at dropped): "Account login timed out".
    back.searchParams.delete('remembered_at');
    const page = await browser.visit(back.toString());
    expect(page.status).toBe(419);
    expect(h.forum.stats.ssoErrors).toBe(1);
  });
});
