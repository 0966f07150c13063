/**
 * The module's routes wherever the host mounts them: under `app.setGlobalPrefix('community')`
 * (also with `exclude`), and under a `RouterModule` path, with no option of the module's own. Every
 * link and redirect the module makes follows: the sign-in start and its continue, Discord's
 * redirect URI, the try-again links, logout, the forum link, and what `check` expects.
 */
import { DiscourseAdminService, DiscourseConnectSettings } from 'nestjs-discourse-connect/internal';
import { DISCORD_FIXTURES } from 'nestjs-discourse-connect-simulators';
import { CheckCommand } from '../src/cli/check.command';
import { findAppRoutes, MOUNT_PATH_VARIABLE } from '../src/cli/app-routes';
import { HomeController } from '../src/home.controller';
import { TestBrowser, logOutOnForum } from './support/browser';
import { HTTP_ADAPTERS, startHarness, type Harness, API_KEY } from './support/harness';
jest.setTimeout(30_000);
const { migrated } = DISCORD_FIXTURES;

type Mount = {
  name: string;
  options: Pick<Parameters<typeof startHarness>[1] & object, 'globalPrefix' | 'routerPath'>;
  /** The path the module's routes are under. */
  mount: string;
  /** Where the host's own home page is. */
  home: string;
  /** Whether `GET <PUBLIC_URL>/health` reaches the module (its route is not under the mount). */
  healthAtRoot: boolean;
};

const MOUNTS: Mount[] = [
  {
    name: 'a global prefix',
    options: { globalPrefix: 'community' },
    mount: '/community',
    home: '/community',
    healthAtRoot: false,
  },
  {
    name: 'a global prefix excluding /health',
    options: { globalPrefix: { prefix: 'community', exclude: ['health'] } },
    mount: '/community',
    home: '/community',
    healthAtRoot: true,
  },
  {
    name: 'a RouterModule path',
    options: { routerPath: 'community' },
    mount: '/community',
    home: '',
    healthAtRoot: false,
  },
  {
    name: 'a global prefix and a RouterModule path',
    options: { globalPrefix: 'site', routerPath: 'community' },
    mount: '/site/community',
    home: '/site',
    healthAtRoot: false,
  },
];

describe.each(
  HTTP_ADAPTERS.flatMap((adapter) => MOUNTS.map((mount) => [adapter, mount.name, mount] as const)),
)('routes mounted anywhere (%s, %s)', (adapter, _name, m) => {
  let h: Harness;
  const path = (p: string) => `${m.mount}${p}`;

  beforeAll(async () => {
    h = await startHarness('forRoot', {
      adapter,
      ...m.options,
      controllers: [HomeController],
      forumOptions: { apiKey: API_KEY, apiRateLimitPerMinute: 0 },
      moduleOptions: (o) => ({
        ...o,
        forums: o.forums.map((f) => ({ ...f, api: { key: API_KEY, username: 'system' } })),
        sync: { ratePerMinute: 6000, worker: false },
      }),
    });
  });
  afterAll(async () => h.close());
  beforeEach(() => {
    h.discord.reset();
    h.forum.reset();
    h.forum.apiKey = API_KEY;
    h.forum.connectUrl = `${h.mountUrl}/discourse/sso`;
    h.forum.logoutRedirect = `${h.mountUrl}/discourse/logout`;
  });

  async function signInOnForum(as: string) {
    h.discord.knobs.autoApproveAs = as;
    const browser = new TestBrowser();
    const page = await browser.visit(
      `${h.forum.baseUrl}/session/sso?return_path=${encodeURIComponent('/t/welcome/1')}`,
    );
    return { browser, page };
  }

  it('runs the whole sign-in through the mounted routes, with the mounted Discord redirect URI', async () => {
    const { browser, page } = await signInOnForum(migrated.id);
    expect(page.status).toBe(200);
    expect(page.url).toBe(`${h.forum.baseUrl}/t/welcome/1`);
    expect(page.hops.map((hop) => new URL(hop.url).pathname)).toEqual([
      '/session/sso',
      path('/discourse/sso'),
      path('/auth/discord'),
      '/oauth2/authorize',
      path('/auth/discord/callback'),
      path('/discourse/sso'),
      '/session/sso_login',
      '/t/welcome/1',
    ]);
    const start = page.hops.find((hop) => new URL(hop.url).pathname === path('/discourse/sso'))!;
    expect(start.location).toBe(path('/auth/discord?continue=1'));
    const authorize = new URL(
      page.hops.find((hop) => new URL(hop.url).pathname === '/oauth2/authorize')!.url,
    );
    expect(authorize.searchParams.get('redirect_uri')).toBe(`${h.mountUrl}/auth/discord/callback`);
    expect(h.forum.findByExternalId(migrated.id)).toMatchObject({ email: migrated.email });

    // The forum link, signed in: through the forum's /session/sso.
    const link = await browser.request(`${h.mountUrl}/discourse/forum?return_path=%2Ft%2Fx%2F1`);
    expect(link.status).toBe(302);
    expect(link.headers.get('location')).toBe(
      `${h.forum.baseUrl}/session/sso?return_path=%2Ft%2Fx%2F1`,
    );
    // The routes are not also served at the root.
    expect((await browser.request(`${h.appUrl}/discourse/forum`)).status).toBe(404);
  });

  it('links the host page to the mounted sign-in, forum link and sign-out', async () => {
    const anonymous = await new TestBrowser().request(`${h.appUrl}${m.home}/`);
    expect(anonymous.status).toBe(200);
    const body = await anonymous.text();
    expect(body).toContain(`href="${path('/auth/discord')}"`);
    expect(body).toContain(`href="${path('/discourse/forum')}?return_path=%2F"`);
    const { browser } = await signInOnForum(migrated.id);
    const signedIn = await (await browser.request(`${h.appUrl}${m.home}/`)).text();
    expect(signedIn).toContain(`action="${path('/auth/logout')}"`);
  });

  it('points the try-again links of sign-in errors at the mounted sign-in', async () => {
    h.discord.knobs.deny = true;
    const { page } = await signInOnForum(migrated.id);
    expect(page.status).toBe(403);
    expect(page.body).toContain('You cancelled signing in with Discord');
    expect(page.body).toContain(`href="${path('/auth/discord')}"`);
    expect(page.body).not.toContain('href="/auth/discord"');

    const withCode = await new TestBrowser().request(`${h.mountUrl}/auth/discord?code=abc`);
    expect(withCode.status).toBe(400);
    expect(await withCode.text()).toContain(`href="${path('/auth/discord')}"`);
  });

  it('signs out through the mounted logout routes', async () => {
    const { browser } = await signInOnForum(migrated.id);
    const signedIn = async () =>
      (await browser.request(`${h.mountUrl}/discourse/forum`)).headers
        .get('location')!
        .includes('/session/sso');
    expect(await signedIn()).toBe(true);
    // The forum's logout_redirect, as a navigation from the forum: signs out at once.
    const page = await logOutOnForum(browser, h.forum.baseUrl);
    expect(page.hops.map((hop) => new URL(hop.url).pathname)).toContain(path('/discourse/logout'));
    expect(await signedIn()).toBe(false);

    // From a third-party page: the confirmation form posts to the mounted route.
    await signInOnForum(migrated.id).then(async ({ browser: b }) => {
      const ask = await b.request(`${h.mountUrl}/discourse/logout`, {
        headers: { referer: 'https://evil.example/page', 'sec-fetch-site': 'cross-site' },
      });
      expect(ask.status).toBe(200);
      expect(await ask.text()).toContain(`action="${path('/discourse/logout')}"`);
      const out = await b.request(`${h.mountUrl}/auth/logout`, {
        method: 'POST',
        headers: { origin: h.appUrl, 'sec-fetch-site': 'same-origin' },
      });
      expect(out.status).toBe(303);
    });
  });

  it('says the mounted URLs in /health, and nothing secret', async () => {
    const health = await fetch(`${h.appUrl}${m.healthAtRoot ? '' : m.mount}/health`);
    expect(health.status).toBe(200);
    const report = (await health.json()) as { routes: Record<string, string> };
    expect(report.routes).toEqual({
      mountPath: m.mount,
      connectUrl: `${h.mountUrl}/discourse/sso`,
      logoutRedirect: `${h.mountUrl}/discourse/logout`,
      discordRedirectUri: `${h.mountUrl}/auth/discord/callback`,
    });
    const text = JSON.stringify(report);
    expect(text).not.toContain(API_KEY);
    expect(text).not.toMatch(/secret/i);
  });

  describe('check', () => {
    const saved = process.env[MOUNT_PATH_VARIABLE];
    afterEach(() => {
      if (saved === undefined) delete process.env[MOUNT_PATH_VARIABLE];
      else process.env[MOUNT_PATH_VARIABLE] = saved;
      process.exitCode = undefined;
    });

    async function runCheck(): Promise<string> {
      const lines: string[] = [];
      const log = jest.spyOn(console, 'log').mockImplementation((...args) => {
        lines.push(args.join(' '));
      });
      try {
        const command = new CheckCommand(
          h.app.get(DiscourseConnectSettings),
          h.app.get(DiscourseAdminService),
        );
        await command.run();
      } finally {
        log.mockRestore();
      }
      return lines.join('\n');
    }

    it(`expects the mounted connect and logout URLs (from ${MOUNT_PATH_VARIABLE})`, async () => {
      process.env[MOUNT_PATH_VARIABLE] = m.mount;
      const out = await runCheck();
      expect(out).toContain(`discourse_connect_url is ${h.mountUrl}/discourse/sso.`);
      expect(out).toContain(`logout_redirect is ${h.mountUrl}/discourse/logout.`);
      expect(out).toContain('No problems found.');
      expect(process.exitCode).toBeUndefined();

      // A forum still set to the unmounted URL is reported, with the right value to set.
      h.forum.connectUrl = `${h.appUrl}/discourse/sso`;
      const wrong = await runCheck();
      expect(wrong).toContain(`[FAIL] discourse_connect_url is "${h.appUrl}/discourse/sso"`);
      expect(wrong).toContain(`set it to ${h.mountUrl}/discourse/sso.`);
      expect(process.exitCode).toBe(1);
      h.forum.connectUrl = `${h.mountUrl}/discourse/sso`;
    });

    if (m.healthAtRoot) {
      it('learns the mounted URLs from the running app (GET <PUBLIC_URL>/health)', async () => {
        delete process.env[MOUNT_PATH_VARIABLE];
        const routes = await findAppRoutes(h.appUrl, {});
        expect(routes.connectUrl).toBe(`${h.mountUrl}/discourse/sso`);
        expect(routes.logoutRedirect).toBe(`${h.mountUrl}/discourse/logout`);
        const out = await runCheck();
        expect(out).toContain(`discourse_connect_url is ${h.mountUrl}/discourse/sso.`);
        expect(out).toContain('No problems found.');
      });
    }
  });
});

describe('check without the app running', () => {
  it(`reads ${MOUNT_PATH_VARIABLE}, refuses a bad one, and falls back to the root`, async () => {
    const publicUrl = 'http://127.0.0.1:9';
    await expect(
      findAppRoutes(publicUrl, { [MOUNT_PATH_VARIABLE]: '/community/' }),
    ).resolves.toMatchObject({
      connectUrl: `${publicUrl}/community/discourse/sso`,
      logoutRedirect: `${publicUrl}/community/discourse/logout`,
    });
    await expect(
      findAppRoutes(publicUrl, { [MOUNT_PATH_VARIABLE]: '//evil.example' }),
    ).rejects.toThrow(MOUNT_PATH_VARIABLE);
    await expect(findAppRoutes(publicUrl, {})).resolves.toMatchObject({
      connectUrl: `${publicUrl}/discourse/sso`,
      logoutRedirect: `${publicUrl}/discourse/logout`,
    });
  });
});
