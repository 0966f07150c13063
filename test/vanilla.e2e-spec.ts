/**
 * Vanilla forums through jsConnect v3, against the simulated Vanilla forum (which signs its requests
 * and checks the answers with its own JWT code): the authenticate URL for anonymous and signed-in
 * people, guests, roles, unverified emails, every bad request, the forum link and the sign-out target,
 * on both adapters and under a global prefix.
 */
import { Injectable } from '@nestjs/common';
import { OnEvent } from '@nestjs/event-emitter';
import { DataSource } from 'typeorm';
import {
  DiscourseConnectEvents,
  DiscourseConnectFilter,
  type VanillaSignedInEvent,
  type VanillaUser,
  type VanillaUserContext,
} from 'nestjs-discourse-connect/internal';
import {
  DISCORD_FIXTURES,
  SIM_GUILD_ID,
  SIM_GUILD_ROLES,
  signVanillaJwt,
} from 'nestjs-discourse-connect-simulators';
import { HomeController } from '../src/home.controller';
import { TestBrowser, type Page } from './support/browser';
import {
  HTTP_ADAPTERS,
  startHarness,
  VANILLA_CLIENT_ID,
  VANILLA_SECRET,
  type Harness,
  type ModuleStyle,
} from './support/harness';
jest.setTimeout(30_000);

const { migrated, legacy, unverified, noEmail } = DISCORD_FIXTURES;

/** A host plugin: a `vanilla.user` filter and a listener of the Vanilla sign-in event. */
@Injectable()
class VanillaPlugin {
  events: VanillaSignedInEvent[] = [];

  @DiscourseConnectFilter('vanilla.user', { priority: 20 })
  addRank(user: VanillaUser, ctx: VanillaUserContext): VanillaUser {
    // The id cannot be changed by a filter; the extra field goes to Vanilla as it is.
    return { ...user, id: 'forged', rank: `rank-of-${ctx.forum.name}` };
  }

  @OnEvent(DiscourseConnectEvents.VanillaSignedIn)
  signedIn(event: VanillaSignedInEvent): void {
    this.events.push(event);
  }
}

/**
 * What the forum's redirect page script does: the answer's token is in the fragment of the last
 * redirect, which no HTTP client sends; hand it to the forum's connect route.
 */
async function finishOnForum(h: Harness, browser: TestBrowser, page: Page): Promise<Page> {
  const answer = page.hops.map((hop) => hop.location).find((l) => l?.includes('#jwt='));
  if (!answer) return page;
  const jwt = answer.split('#jwt=')[1];
  return browser.visit(
    `${h.vanilla!.forumRootUrl}/entry/connect/jsconnect?client_id=${VANILLA_CLIENT_ID}&jwt=${jwt}`,
  );
}

/** Signs in on the simulated Vanilla forum through `/sso`, as `as` on Discord. */
async function signInOnVanilla(h: Harness, as: string, browser = new TestBrowser()) {
  h.discord.knobs.autoApproveAs = as;
  const first = await browser.visit(`${h.vanilla!.forumRootUrl}/sso?target=%2Fdiscussion%2F1`);
  const page = await finishOnForum(h, browser, first);
  return { browser, first, page };
}

/** A request token as Vanilla builds it, with claims and header changes for the bad cases. */
function requestJwt(
  h: Harness,
  change: {
    claims?: object;
    secret?: string;
    kid?: string;
    alg?: 'HS256' | 'HS384' | 'HS512';
  } = {},
): string {
  const iat = Math.floor(Date.now() / 1000);
  return signVanillaJwt(
    {
      st: { n: 'nonce-0123456789', t: '/' },
      rurl: `${h.vanilla!.forumRootUrl}/entry/jsconnect-redirect?client_id=${VANILLA_CLIENT_ID}`,
      v: 'vanilla:3',
      iat,
      exp: iat + 600,
      ...change.claims,
    },
    change.kid ?? VANILLA_CLIENT_ID,
    change.secret ?? VANILLA_SECRET,
    change.alg ?? 'HS256',
  );
}

const b64url = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');

describe.each(
  HTTP_ADAPTERS.flatMap((adapter) =>
    (['forRoot', 'forRootAsync'] as ModuleStyle[]).map((style) => [adapter, style] as const),
  ),
)('Vanilla jsConnect (%s, %s)', (adapter, style) => {
  let h: Harness;
  let plugin: VanillaPlugin;

  beforeAll(async () => {
    h = await startHarness(style, { adapter, vanilla: {}, providers: [VanillaPlugin] });
    plugin = h.app.get(VanillaPlugin);
  });
  afterAll(async () => h.close());
  beforeEach(() => {
    h.discord.reset();
    h.vanilla!.reset();
    plugin.events = [];
  });

  const userCount = async () =>
    Number(
      (await h.app.get(DataSource).query('SELECT COUNT(*) AS n FROM discourse_connect_users'))[0].n,
    );
  const connectUrl = (query: string) => `${h.mountUrl}/vanilla/connect${query}`;

  it('signs an anonymous person in with Discord first, then answers the same request', async () => {
    const { first, page } = await signInOnVanilla(h, migrated.id);
    expect(first.hops.map((hop) => new URL(hop.url).pathname)).toEqual([
      '/sso',
      '/vanilla/connect',
      '/auth/discord',
      '/oauth2/authorize',
      '/auth/discord/callback',
      '/vanilla/connect',
      '/entry/jsconnect-redirect',
    ]);
    expect(new URL(first.hops[5].url).searchParams.get('resumed')).toBe('1');
    expect(page.status).toBe(200);
    expect(page.url).toBe(`${h.vanilla!.forumRootUrl}/discussion/1`);
    const user = h.vanilla!.findByUniqueId(migrated.id)!;
    expect(user).toMatchObject({
      email: migrated.email,
      photo: `https://cdn.discordapp.com/avatars/${migrated.id}/${migrated.avatar}.png?size=512`,
      roles: ['Member'],
    });
    // ava.migrated is not a Vanilla username: a valid one derived from it.
    expect(user.name).toMatch(/^ava_migrated_[a-z0-9]{4}$/);
    expect(page.body).toContain(user.name);
    expect(h.vanilla!.stats.lastHeader).toEqual({
      kid: VANILLA_CLIENT_ID,
      typ: 'JWT',
      alg: 'HS256',
    });
    // No role map: no roles sent (they would replace the member's roles on the forum).
    expect(h.vanilla!.stats.lastUser).toEqual({
      id: migrated.id,
      name: user.name,
      email: migrated.email,
      photo: user.photo,
      rank: 'rank-of-127.0.0.1',
    });
    expect(plugin.events).toHaveLength(1);
    expect(plugin.events[0]).toMatchObject({
      forum: '127.0.0.1',
      user: { discordId: migrated.id },
    });
  });

  it('answers a signed-in member at once, never cached', async () => {
    const { browser } = await signInOnVanilla(h, legacy.id);
    const again = await browser.visit(`${h.vanilla!.forumRootUrl}/entry/signin?target=%2F`, {
      maxHops: 0,
    });
    const connect = again.hops[0].location!;
    const res = await browser.request(connect);
    expect(res.status).toBe(302);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const location = res.headers.get('location')!;
    expect(location).toMatch(
      new RegExp(
        `^${h.vanilla!.forumRootUrl}/entry/jsconnect-redirect\\?client_id=${VANILLA_CLIENT_ID}#jwt=`,
      ),
    );
    const page = await finishOnForum(h, browser, {
      ...again,
      hops: [{ url: connect, status: 302, location }],
    });
    expect(page.status).toBe(200);
    expect(h.vanilla!.stats.logins).toBe(2);
    expect(h.discord.stats.userFetches).toBe(1);
    expect(h.vanilla!.findByUniqueId(legacy.id)!.name).toBe('OldTimer');
  });

  it('sends a request that expired during Discord sign-in back to the forum for a fresh one', async () => {
    const { browser } = await signInOnVanilla(h, legacy.id);
    const expired = requestJwt(h, { claims: { iat: 1_600_000_000, exp: 1_600_000_600 } });
    const resumed = await browser.request(connectUrl(`?jwt=${expired}&resumed=1`));
    expect(resumed.status).toBe(302);
    expect(resumed.headers.get('location')).toBe(`${h.vanilla!.forumRootUrl}/sso?target=%2F`);
    // Not remembered through sign-in, or not signed by the connection: refused.
    expect((await browser.request(connectUrl(`?jwt=${expired}`))).status).toBe(403);
    const forged = requestJwt(h, {
      secret: 'another-secret-0123456789',
      claims: { iat: 1_600_000_000, exp: 1_600_000_600 },
    });
    expect((await browser.request(connectUrl(`?jwt=${forged}&resumed=1`))).status).toBe(403);
  });

  it('asks a person whose Discord email is not verified to verify it, and sends nothing', async () => {
    const { page } = await signInOnVanilla(h, unverified.id);
    expect(page.status).toBe(403);
    expect(page.body).toMatch(/verify your email/i);
    expect(page.hops.at(-1)!.location).toBeUndefined();
    expect(h.vanilla!.users).toHaveLength(0);
    const none = await signInOnVanilla(h, noEmail.id);
    expect(none.page.status).toBe(403);
    expect(none.page.body).toMatch(/needs an email address/);
  });

  describe('refuses every bad request with a page, never a redirect, writing nothing', () => {
    const cases: [string, (h: Harness) => string, number][] = [
      ['no jwt', () => '', 400],
      ['an empty jwt', () => '?jwt=', 400],
      ['a repeated jwt', (h) => `?jwt=${requestJwt(h)}&jwt=${requestJwt(h)}`, 400],
      ['not a token', () => '?jwt=hello', 400],
      [
        'a token with a broken payload',
        () => `?jwt=${b64url({ kid: VANILLA_CLIENT_ID, alg: 'HS256' })}.bm9wZQ.abc`,
        403,
      ],
      [
        'a tampered token',
        (h) => {
          const [head, , sig] = requestJwt(h).split('.');
          return `?jwt=${head}.${b64url({ st: { n: 'x' }, rurl: 'https://evil.example.com/', iat: 1, exp: 9e9 })}.${sig}`;
        },
        403,
      ],
      [
        'a token signed with another secret',
        (h) => `?jwt=${requestJwt(h, { secret: 'another-secret-0123456789' })}`,
        403,
      ],
      [
        'an expired token',
        (h) => `?jwt=${requestJwt(h, { claims: { iat: 1_600_000_000, exp: 1_600_000_600 } })}`,
        403,
      ],
      [
        'alg none',
        (h) =>
          `?jwt=${b64url({ kid: VANILLA_CLIENT_ID, typ: 'JWT', alg: 'none' })}.${requestJwt(h).split('.')[1]}.`,
        403,
      ],
      [
        'an algorithm the connection does not use',
        (h) => `?jwt=${requestJwt(h, { alg: 'HS512' })}`,
        403,
      ],
      ['an unknown kid', (h) => `?jwt=${requestJwt(h, { kid: 'someone-else' })}`, 403],
      [
        'a return URL off the forum',
        (h) =>
          `?jwt=${requestJwt(h, { claims: { rurl: 'https://evil.example.com/entry/jsconnect-redirect' } })}`,
        403,
      ],
      [
        'a return URL beside the forum on its host',
        (h) => `?jwt=${requestJwt(h, { claims: { rurl: `${h.appUrl}/vanilla/connect` } })}`,
        403,
      ],
      ['no state', (h) => `?jwt=${requestJwt(h, { claims: { st: undefined } })}`, 400],
    ];

    it.each(cases)('%s', async (_what, query, status) => {
      const signedIn = (await signInOnVanilla(h, legacy.id)).browser;
      const before = await userCount();
      const logins = h.vanilla!.stats.logins;
      for (const browser of [new TestBrowser(), signedIn]) {
        const res = await browser.request(connectUrl(query(h)), {
          headers: { accept: 'text/html' },
        });
        expect(res.status).toBe(status);
        expect(res.headers.get('location')).toBeNull();
        expect(res.headers.get('content-type')).toMatch(/text\/html/);
        const body = await res.text();
        expect(body).not.toContain(VANILLA_SECRET);
        expect(body).not.toMatch(/at .*\.ts:\d+/);
      }
      expect(await userCount()).toBe(before);
      expect(h.vanilla!.stats.logins).toBe(logins);
    });
  });

  it('links to the forum signed in through its /sso, or straight to the page when anonymous', async () => {
    const anonymous = new TestBrowser();
    const direct = await anonymous.visit(`${h.mountUrl}/vanilla/forum?target=%2Fdiscussion%2F7`);
    expect(direct.hops.map((hop) => new URL(hop.url).pathname)).toEqual([
      '/vanilla/forum',
      '/discussion/7',
    ]);
    expect(direct.body).toContain('Not signed in');

    const { browser } = await signInOnVanilla(h, legacy.id);
    // Signed out of the forum only (its cookie gone), still signed in here.
    browser.cookies.get('127.0.0.1')!.delete('Vanilla');
    const page = await finishOnForum(
      h,
      browser,
      await browser.visit(`${h.mountUrl}/vanilla/forum?target=%2Fdiscussion%2F7`),
    );
    expect(page.url).toBe(`${h.vanilla!.forumRootUrl}/discussion/7`);
    expect(page.body).toContain('OldTimer');

    for (const bad of ['https://evil.example.com/', '//evil.example.com', 'javascript:alert(1)']) {
      const res = await browser.request(
        `${h.mountUrl}/vanilla/forum?target=${encodeURIComponent(bad)}`,
      );
      expect(res.status).toBe(400);
      expect(res.headers.get('location')).toBeNull();
    }
    expect((await browser.request(`${h.mountUrl}/vanilla/forum?forum=nope`)).status).toBe(400);
  });

  it("signs out here when the forum's sign-out sends the browser back, and not from a third party", async () => {
    const { browser } = await signInOnVanilla(h, legacy.id);
    const forumPage = await browser.visit(`${h.vanilla!.forumRootUrl}/`);
    const signOutLink = /id="signout" href="([^"]+)"/
      .exec(forumPage.body)![1]
      .replace(/&amp;/g, '&');

    // A third-party page (no Fetch Metadata of a navigation from the forum) gets a button.
    const thirdParty = await browser.request(`${h.mountUrl}/vanilla/logout`, {
      headers: {
        'sec-fetch-site': 'cross-site',
        'sec-fetch-mode': 'no-cors',
        'sec-fetch-dest': 'image',
      },
    });
    expect(thirdParty.status).toBe(200);
    expect(await thirdParty.text()).toContain('Sign out?');
    const forged = await browser.request(`${h.mountUrl}/vanilla/logout`, {
      method: 'POST',
      headers: { 'sec-fetch-site': 'cross-site', origin: 'https://evil.example.com' },
    });
    expect(forged.status).toBe(403);
    expect(
      (await browser.visit(`${h.mountUrl}/vanilla/forum`, { maxHops: 0 })).hops[0].location,
    ).toContain('/sso');

    // The forum's own sign-out: a navigation from the forum to the connection's sign-out URL.
    const out = await browser.visit(`${h.vanilla!.baseUrl}${signOutLink}`, {
      headers: {
        referer: `${h.vanilla!.forumRootUrl}/`,
        'sec-fetch-site': 'same-site',
        'sec-fetch-mode': 'navigate',
        'sec-fetch-dest': 'document',
      },
    });
    expect(out.hops.map((hop) => new URL(hop.url).pathname)).toEqual([
      '/entry/signout',
      '/vanilla/logout',
      '/',
    ]);
    const after = await browser.visit(`${h.mountUrl}/vanilla/forum`, { maxHops: 0 });
    expect(after.hops[0].location).toBe(`${h.vanilla!.forumRootUrl}/`);
  });
});

describe.each(HTTP_ADAPTERS)('Vanilla jsConnect options (%s)', (adapter) => {
  it('sends the full role list from the role map, replacing the roles made on the forum', async () => {
    const h = await startHarness('forRoot', {
      adapter,
      vanilla: {},
      moduleOptions: (o) => ({
        ...o,
        groups: { guildId: SIM_GUILD_ID },
        vanilla: {
          ...o.vanilla!,
          forums: [
            {
              ...o.vanilla!.forums[0],
              roleMap: {
                [SIM_GUILD_ROLES.moderator]: 'Moderator',
                [SIM_GUILD_ROLES.veteran]: 'Veteran',
              },
            },
          ],
        },
      }),
    });
    try {
      h.vanilla!.addUser({
        name: 'OldTimer',
        email: legacy.email!,
        uniqueId: legacy.id,
        roles: ['Administrator'],
      });
      await signInOnVanilla(h, migrated.id);
      expect(h.vanilla!.stats.lastUser!.roles).toEqual(['Moderator', 'Member']);
      expect(h.vanilla!.findByUniqueId(migrated.id)!.roles).toEqual(['Moderator', 'Member']);
      await signInOnVanilla(h, legacy.id);
      // Veteran is not a role on this forum (skipped there); the forum-made Administrator is gone.
      expect(h.vanilla!.stats.lastUser!.roles).toEqual(['Veteran', 'Member']);
      expect(h.vanilla!.findByUniqueId(legacy.id)!.roles).toEqual(['Member']);
    } finally {
      await h.close();
    }
  });

  it('answers anonymous people as guests with the guests option, and sends unverified emails with its option', async () => {
    const h = await startHarness('forRootAsync', {
      adapter,
      vanilla: {},
      env: {
        VANILLA_GUESTS: 'true',
        VANILLA_SEND_UNVERIFIED_EMAIL: 'true',
        VANILLA_SIGN_OUT_THROUGH_FORUM: 'true',
      },
    });
    try {
      const browser = new TestBrowser();
      const first = await browser.visit(`${h.vanilla!.forumRootUrl}/sso`);
      expect(first.hops.map((hop) => new URL(hop.url).pathname)).toEqual([
        '/sso',
        '/vanilla/connect',
        '/entry/jsconnect-redirect',
      ]);
      const page = await finishOnForum(h, browser, first);
      expect(page.body).toContain('not signed in on the site');
      expect(h.vanilla!.stats.guests).toBe(1);
      expect(h.vanilla!.stats.lastUser).toEqual({});
      expect(h.discord.stats.userFetches).toBe(0);

      // Signed in here, an unverified email goes (the forum keeps AutoConnect off).
      h.discord.knobs.autoApproveAs = unverified.id;
      await browser.visit(`${h.mountUrl}/auth/discord`);
      const signedIn = await finishOnForum(
        h,
        browser,
        await browser.visit(`${h.vanilla!.forumRootUrl}/sso`),
      );
      expect(signedIn.status).toBe(200);
      expect(h.vanilla!.findByUniqueId(unverified.id)!.email).toBe(unverified.email);

      // Signing out here goes through the forum's sign-out (which asks first, as Vanilla does).
      const out = await browser.submit(
        `${h.mountUrl}/auth/logout`,
        {},
        { origin: h.appUrl, 'sec-fetch-site': 'same-origin' },
      );
      expect(out.hops.map((hop) => new URL(hop.url).pathname)).toEqual([
        '/auth/logout',
        '/entry/signout',
      ]);
      const hidden = (name: string) =>
        new RegExp(`name="${name}" value="([^"]*)"`).exec(out.body)![1].replace(/&amp;/g, '&');
      expect(hidden('target')).toBe(`${h.appUrl}/`);
      const done = await browser.submit(`${h.vanilla!.forumRootUrl}/entry/signout`, {
        TransientKey: hidden('TransientKey'),
        target: hidden('target'),
      });
      expect(done.hops.map((hop) => hop.url)).toEqual([
        `${h.vanilla!.forumRootUrl}/entry/signout`,
        `${h.appUrl}/`,
      ]);
      expect((await browser.visit(`${h.vanilla!.forumRootUrl}/`)).body).toContain('Not signed in');
      const link = await browser.visit(`${h.mountUrl}/vanilla/forum`, { maxHops: 0 });
      expect(link.hops[0].location).toBe(`${h.vanilla!.forumRootUrl}/`);
    } finally {
      await h.close();
    }
  });

  it.each([
    ['a global prefix', { globalPrefix: 'community' }],
    ['a RouterModule path', { routerPath: 'community' }],
  ])(
    'mounts under %s, with a connection that is not the default sign-in method',
    async (_name, mount) => {
      const h = await startHarness('forRoot', {
        adapter,
        ...mount,
        controllers: [HomeController],
        vanilla: { defaultConnection: false, basePath: '/forum' },
      });
      try {
        h.discord.knobs.autoApproveAs = migrated.id;
        const browser = new TestBrowser();
        // The host's home page links to the Vanilla forum where the module is mounted.
        const home = await browser.visit(
          'globalPrefix' in mount ? `${h.appUrl}/community/` : `${h.appUrl}/`,
        );
        expect(home.body).toContain('id="vanilla-forum-link" href="/community/vanilla/forum"');
        const first = await browser.visit(`${h.mountUrl}/vanilla/forum?target=%2Fdiscussion%2F3`);
        expect(first.hops.map((hop) => new URL(hop.url).pathname)).toEqual([
          '/community/vanilla/forum',
          '/forum/discussion/3',
        ]);
        await browser.visit(`${h.mountUrl}/auth/discord`);
        const link = await browser.visit(`${h.mountUrl}/vanilla/forum?target=%2Fdiscussion%2F3`);
        expect(link.hops.map((hop) => new URL(hop.url).pathname)).toEqual([
          '/community/vanilla/forum',
          '/forum/entry/jsconnect',
          '/community/vanilla/connect',
          '/forum/entry/jsconnect-redirect',
        ]);
        const page = await finishOnForum(h, browser, link);
        expect(page.url).toBe(`${h.vanilla!.forumRootUrl}/discussion/3`);
        expect(h.vanilla!.findByUniqueId(migrated.id)).toBeDefined();
        expect((await browser.request(`${h.appUrl}/vanilla/connect`)).status).toBe(404);
        // /health tells what the jsConnect connection must be set to, where the module is mounted.
        const health = (await (await fetch(`${h.mountUrl}/health`)).json()) as {
          routes: { vanilla?: unknown };
        };
        expect(health.routes.vanilla).toEqual({
          authenticateUrl: `${h.mountUrl}/vanilla/connect`,
          signInUrl: `${h.mountUrl}/auth/discord`,
          signOutUrl: `${h.mountUrl}/vanilla/logout`,
        });
      } finally {
        await h.close();
      }
    },
  );
});

describe.each(
  HTTP_ADAPTERS.flatMap((adapter) =>
    (['forRoot', 'forRootAsync'] as ModuleStyle[]).map((style) => [adapter, style] as const),
  ),
)('a site with Vanilla forums only (%s, %s)', (adapter, style) => {
  it('signs members in to the Vanilla forum, and refuses Discourse requests with a page', async () => {
    const h = await startHarness(style, {
      adapter,
      vanilla: {},
      controllers: [HomeController],
      moduleOptions: (o) => ({ ...o, forums: [] }),
      env: { DISCOURSE_URL: undefined, DISCOURSE_CONNECT_SECRET: undefined },
    });
    try {
      const { page } = await signInOnVanilla(h, migrated.id);
      expect(page.url).toBe(`${h.vanilla!.forumRootUrl}/discussion/1`);
      expect(h.vanilla!.findByUniqueId(migrated.id)).toBeDefined();
      const browser = new TestBrowser();
      const home = await browser.visit(`${h.appUrl}/`);
      expect(home.body).toContain('id="vanilla-forum-link"');
      expect(home.body).not.toContain('id="forum-link"');
      const sso = await browser.request(
        `${h.mountUrl}/discourse/sso?sso=bm9uY2U9MQ%3D%3D&sig=${'0'.repeat(64)}`,
      );
      expect(sso.status).toBe(403);
      expect(sso.headers.get('location')).toBeNull();
      expect((await browser.request(`${h.mountUrl}/discourse/forum`)).status).toBe(400);
    } finally {
      await h.close();
    }
  });
});
