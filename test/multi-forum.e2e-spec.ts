import { DiscourseSimulator } from 'nestjs-discourse-connect-simulators';
import { DISCORD_FIXTURES } from 'nestjs-discourse-connect-simulators';
import { TestBrowser } from './support/browser';
import { HTTP_ADAPTERS, startHarness, type Harness } from './support/harness';

const { migrated } = DISCORD_FIXTURES;
const ALPHA_SECRET = 'e2e-alpha-secret-0123456789';
const BRAVO_SECRET = 'e2e-bravo-secret-0123456789';

/**
 * Two forums configured from the environment alone (DISCOURSE_FORUM_<NAME>_*): one Discord sign-in
 * signs the member in on both.
 */
describe.each(HTTP_ADAPTERS)('two forums from the environment (%s)', (adapter) => {
  let h: Harness;
  let alpha: DiscourseSimulator;
  let bravo: DiscourseSimulator;

  beforeAll(async () => {
    alpha = new DiscourseSimulator({ secret: ALPHA_SECRET, title: 'Alpha forum' });
    bravo = new DiscourseSimulator({ secret: BRAVO_SECRET, title: 'Bravo forum' });
    const alphaUrl = await alpha.listen(0);
    const bravoUrl = await bravo.listen(0);
    h = await startHarness('forRootAsync', {
      adapter,
      env: {
        // No single-forum variables: only the two forums' own.
        DISCOURSE_URL: undefined,
        DISCOURSE_CONNECT_SECRET: undefined,
        DISCOURSE_FORUM_ALPHA_URL: alphaUrl,
        DISCOURSE_FORUM_ALPHA_SECRET: ALPHA_SECRET,
        DISCOURSE_FORUM_BRAVO_URL: bravoUrl,
        DISCOURSE_FORUM_BRAVO_SECRET: BRAVO_SECRET,
      },
    });
    for (const forum of [alpha, bravo]) {
      forum.connectUrl = `${h.mountUrl}/discourse/sso`;
      forum.logoutRedirect = `${h.mountUrl}/discourse/logout`;
    }
  });
  afterAll(async () => {
    await h?.close();
    await Promise.all([alpha?.close(), bravo?.close()]);
  });

  it('signs one member in on both forums with ONE Discord sign-in', async () => {
    h.discord.knobs.autoApproveAs = migrated.id;
    const browser = new TestBrowser();

    const first = await browser.visit(
      `${alpha.baseUrl}/session/sso?return_path=%2Ft%2Fwelcome%2F1`,
    );
    expect(first.status).toBe(200);
    expect(first.url).toBe(`${alpha.baseUrl}/t/welcome/1`);
    expect(alpha.findByExternalId(migrated.id)).toMatchObject({ email: migrated.email });
    expect(h.discord.stats.tokenExchanges).toBe(1);

    // The second forum: the app's session answers at once, Discord is not asked again.
    const second = await browser.visit(
      `${bravo.baseUrl}/session/sso?return_path=%2Ft%2Fwelcome%2F1`,
    );
    expect(second.status).toBe(200);
    expect(second.url).toBe(`${bravo.baseUrl}/t/welcome/1`);
    const hops = second.hops.map((hop) => new URL(hop.url).pathname);
    expect(hops).not.toContain('/oauth2/authorize');
    expect(bravo.findByExternalId(migrated.id)).toMatchObject({ email: migrated.email });
    expect(h.discord.stats.tokenExchanges).toBe(1);
    expect(second.body).toContain('id="current-user"');
  });

  it('links to each forum by its name (?forum=alpha, ?forum=bravo)', async () => {
    for (const [name, forum] of [
      ['alpha', alpha],
      ['bravo', bravo],
    ] as const) {
      const res = await fetch(`${h.mountUrl}/discourse/forum?forum=${name}`, {
        redirect: 'manual',
      });
      expect([name, res.status]).toEqual([name, 302]);
      expect(res.headers.get('location')).toContain(forum.baseUrl);
    }
  });
});
