import { Injectable } from '@nestjs/common';
import { OnEvent } from '@nestjs/event-emitter';
import { DataSource } from 'typeorm';
import {
  DiscourseConnectEvents,
  DiscourseConnectFilter,
  type CanSignInContext,
  type DiscourseConnectPayload,
  type SsoPayloadContext,
} from 'nestjs-discourse-connect/internal';
import { DISCORD_FIXTURES } from 'nestjs-discourse-connect-simulators';
import { TestBrowser, logOutOnForum } from './support/browser';
import {
  FORUM_SECRET,
  HTTP_ADAPTERS,
  startHarness,
  type Harness,
  type ModuleStyle,
} from './support/harness';
import { createHmac } from 'node:crypto';

/** A host plugin: filters in priority order, a refusing filter, a throwing filter and listeners. */
@Injectable()
class TestPlugin {
  events: { name: string; payload: any }[] = [];
  throwInPayloadFilter = false;
  refuse = new Set<string>();

  @DiscourseConnectFilter('sso.payload', { priority: 20 })
  second(payload: DiscourseConnectPayload): DiscourseConnectPayload {
    if (this.throwInPayloadFilter) throw new Error('plugin bug');
    return { ...payload, title: `${payload.title}B` };
  }

  @DiscourseConnectFilter('sso.payload', { priority: 5 })
  first(payload: DiscourseConnectPayload, ctx: SsoPayloadContext): DiscourseConnectPayload {
    return { ...payload, title: 'A', custom: { forum_name: ctx.forum.name } };
  }

  @DiscourseConnectFilter('user.canSignIn')
  gate(allowed: boolean | string, { discord }: CanSignInContext): boolean | string {
    return this.refuse.has(discord.id) ? 'Members of the banned list cannot sign in.' : allowed;
  }

  @OnEvent(DiscourseConnectEvents.UserCreated)
  created(payload: unknown): void {
    this.events.push({ name: 'created', payload });
  }

  @OnEvent(DiscourseConnectEvents.ProfileChanged)
  changed(payload: unknown): void {
    this.events.push({ name: 'changed', payload });
  }

  @OnEvent(DiscourseConnectEvents.SignedIn)
  signedIn(payload: unknown): void {
    this.events.push({ name: 'signed-in', payload });
  }

  @OnEvent(DiscourseConnectEvents.SignedIn)
  broken(): void {
    throw new Error('listener bug');
  }
}

const { migrated, legacy, animated, unverified, noEmail, bigId } = DISCORD_FIXTURES;

describe.each(
  HTTP_ADAPTERS.flatMap((adapter) =>
    (['forRoot', 'forRootAsync'] as ModuleStyle[]).map((style) => [adapter, style] as const),
  ),
)('sign-in through the forum (%s, %s)', (adapter, style) => {
  let h: Harness;
  let plugin: TestPlugin;

  beforeAll(async () => {
    h = await startHarness(style, { adapter, providers: [TestPlugin] });
    plugin = h.app.get(TestPlugin);
  });
  afterAll(async () => h.close());
  beforeEach(() => {
    h.discord.reset();
    h.forum.reset();
    plugin.throwInPayloadFilter = false;
    plugin.refuse.clear();
  });

  const users = () => h.app.get(DataSource).query('SELECT * FROM discourse_connect_users');
  const userRow = async (id: string) => (await users()).find((u: any) => u.discord_id === id);

  async function signInOnForum(as: string, returnPath = '/t/welcome/1') {
    h.discord.knobs.autoApproveAs = as;
    const browser = new TestBrowser();
    const page = await browser.visit(
      `${h.forum.baseUrl}/session/sso?return_path=${encodeURIComponent(returnPath)}`,
    );
    return { browser, page };
  }

  it('signs a new member in on the forum with the Discord identity, resuming the same request', async () => {
    const { page } = await signInOnForum(migrated.id);
    expect(page.status).toBe(200);
    expect(page.url).toBe(`${h.forum.baseUrl}/t/welcome/1`);
    const hopsThroughApp = page.hops.map((hop) => new URL(hop.url).pathname);
    expect(hopsThroughApp).toEqual([
      '/session/sso',
      '/discourse/sso',
      '/auth/discord',
      '/oauth2/authorize',
      '/auth/discord/callback',
      '/discourse/sso',
      '/session/sso_login',
      '/t/welcome/1',
    ]);
    const payload = h.forum.stats.lastPayload!;
    expect(payload.external_id).toBe(migrated.id);
    expect(payload.email).toBe(migrated.email);
    expect(payload.username).toBe(migrated.username);
    expect(payload.name).toBe(migrated.global_name);
    expect(payload.avatar_url).toBe(
      `https://cdn.discordapp.com/avatars/${migrated.id}/${migrated.avatar}.png?size=512`,
    );
    expect(payload).not.toHaveProperty('admin');
    expect(payload).not.toHaveProperty('moderator');
    expect(payload).not.toHaveProperty('require_activation');
    expect(payload.title).toBe('AB'); // filters ran by priority
    expect(payload['custom.forum_name']).toBe('127.0.0.1');
    const forumUser = h.forum.findByExternalId(migrated.id)!;
    expect(forumUser).toMatchObject({
      email: migrated.email,
      active: true,
      admin: false,
      moderator: false,
    });
    expect(page.body).toContain(forumUser.username);
    // The Discord API was called on its versioned path with a real User-Agent.
    expect(h.discord.stats.userFetches).toBe(1);
    expect(h.discord.stats.unversionedUserFetches).toBe(0);
    // Token exchange and profile fetch both carry the module's User-Agent (the rest is the browser).
    expect(
      h.discord.stats.userAgents.filter((ua) => ua.startsWith('nestjs-discourse-connect (')),
    ).toHaveLength(2);
    const row = await userRow(migrated.id);
    expect(row).toMatchObject({
      username: migrated.username,
      display_name: migrated.global_name,
      email_verified: 1,
    });
    expect(row.metadata_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(row)).not.toMatch(/access|token/i);
  });

  it('uses the legacy default avatar, the animated .gif and keeps a snowflake above 2^53 exact', async () => {
    await signInOnForum(legacy.id);
    expect(h.forum.stats.lastPayload!.avatar_url).toBe(
      `https://cdn.discordapp.com/embed/avatars/${Number(legacy.discriminator) % 5}.png`,
    );
    expect(h.forum.stats.lastPayload!.name).toBe(legacy.username);
    await signInOnForum(animated.id);
    expect(h.forum.stats.lastPayload!.avatar_url).toMatch(/\/a_[0-9a-f]+\.gif\?size=512$/);
    await signInOnForum(bigId.id);
    expect(h.forum.stats.lastPayload!.external_id).toBe('1234567890123456789');
    expect((await userRow(bigId.id)).discord_id).toBe('1234567890123456789');
  });

  it('requires activation for an email Discord has not verified, so no forum account is taken over', async () => {
    const { page } = await signInOnForum(unverified.id);
    expect(h.forum.stats.lastPayload!.require_activation).toBe('true');
    expect(h.forum.findByExternalId(unverified.id)).toMatchObject({ active: false });
    expect(page.url).toContain('/u/account-created');

    // A forum account that already has this email is never linked to the unverified Discord user.
    h.forum.reset();
    const victim = h.forum.addUser({ username: 'victim', email: unverified.email! });
    await signInOnForum(unverified.id);
    expect(h.forum.stats.lastPayload!.require_activation).toBe('true');
    expect(victim.externalId).toBeNull();
    expect(h.forum.stats.ssoLogins).toBe(0);
  });

  it('explains that the forum needs an email when the Discord account has none', async () => {
    const { page } = await signInOnForum(noEmail.id);
    expect(page.status).toBe(403);
    expect(page.body).toMatch(/needs an email address/);
    expect(page.body).not.toMatch(/at .*\.ts:\d+/);
    expect(h.forum.stats.ssoLogins).toBe(0);
  });

  it('writes nothing on an unchanged re-login and updates when Discord changed', async () => {
    await signInOnForum(legacy.id);
    const before = await userRow(legacy.id);
    plugin.events = [];
    await signInOnForum(legacy.id);
    const after = await userRow(legacy.id);
    expect(after.updated_at).toBe(before.updated_at);
    expect(after.metadata_hash).toBe(before.metadata_hash);
    expect(plugin.events.map((e) => e.name)).toEqual(['signed-in']);
    expect(plugin.events[0].payload).toMatchObject({ created: false, changed: false });

    h.discord.updateUser(legacy.id, {
      global_name: 'Old Timer',
      avatar: 'ffeeddccbbaa99887766554433221100',
    });
    plugin.events = [];
    await signInOnForum(legacy.id);
    const changed = await userRow(legacy.id);
    expect(changed.display_name).toBe('Old Timer');
    expect(changed.metadata_hash).not.toBe(before.metadata_hash);
    expect(plugin.events.map((e) => e.name)).toEqual(['changed', 'signed-in']);
    expect(plugin.events[0].payload.previous.global_name).toBeNull();
    expect(h.forum.stats.lastPayload!.name).toBe('Old Timer');
  });

  it('regenerates the session id at sign-in and a signed-out session cannot be reused', async () => {
    const browser = new TestBrowser();
    h.discord.knobs.autoApproveAs = migrated.id;
    await browser.visit(`${h.appUrl}/auth/discord`, { maxHops: 1 });
    const anonymousSid = browser.cookie('127.0.0.1', 'dc.sid');
    expect(anonymousSid).toBeDefined();
    await browser.visit(`${h.appUrl}/auth/discord`);
    const signedInSid = browser.cookie('127.0.0.1', 'dc.sid');
    expect(signedInSid).toBeDefined();
    expect(signedInSid).not.toBe(anonymousSid);

    const forumLink = await browser.request(`${h.appUrl}/discourse/forum?return_path=%2Ft%2Fx%2F1`);
    expect(forumLink.headers.get('location')).toBe(
      `${h.forum.baseUrl}/session/sso?return_path=%2Ft%2Fx%2F1`,
    );

    const out = await browser.request(`${h.appUrl}/auth/logout`, {
      method: 'POST',
      headers: { origin: h.appUrl, 'sec-fetch-site': 'same-origin' },
    });
    expect(out.status).toBe(303);
    const replay = new TestBrowser();
    replay.cookies.set('127.0.0.1', new Map([['dc.sid', signedInSid!]]));
    const again = await replay.request(`${h.appUrl}/discourse/forum?return_path=%2F`);
    expect(again.headers.get('location')).toBe(`${h.forum.baseUrl}/`);
  });

  it('refuses sign-out from another site and signs out from the forum logout redirect', async () => {
    const { browser } = await signInOnForum(migrated.id);
    const signedIn = async () =>
      (await browser.request(`${h.appUrl}/discourse/forum`)).headers
        .get('location')!
        .includes('/session/sso');
    expect(await signedIn()).toBe(true);

    const crossSite = await browser.request(`${h.appUrl}/auth/logout`, {
      method: 'POST',
      headers: { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' },
    });
    expect(crossSite.status).toBe(403);
    const thirdPartyGet = await browser.request(`${h.appUrl}/discourse/logout`, {
      headers: { referer: 'https://evil.example/page', 'sec-fetch-site': 'cross-site' },
    });
    expect(thirdPartyGet.status).toBe(200);
    expect(await thirdPartyGet.text()).toContain('Sign out?');
    const forgedConfirm = await browser.request(`${h.appUrl}/discourse/logout`, {
      method: 'POST',
      headers: { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' },
    });
    expect(forgedConfirm.status).toBe(403);
    expect(await signedIn()).toBe(true);

    // Signing out on the forum sends the browser to logout_redirect, coming from the forum.
    const page = await logOutOnForum(browser, h.forum.baseUrl);
    expect(page.url).toBe(`${h.appUrl}/`);
    expect(await signedIn()).toBe(false);
  });

  it('shows a clear page and creates nobody when the person cancels on Discord', async () => {
    h.discord.knobs.deny = true;
    const before = (await users()).length;
    const { page } = await signInOnForum(migrated.id);
    expect(page.status).toBe(403);
    expect(page.body).toContain('You cancelled signing in with Discord');
    expect((await users()).length).toBe(before);
  });

  it.each([
    [
      'token endpoint 500',
      { tokenFailure: { status: 500 } },
      502,
      /could not be reached or had a problem/,
    ],
    ['token endpoint 429', { tokenFailure: { status: 429, retryAfter: 7 } }, 503, /slow down/],
    [
      'users/@me 429 in plain text',
      { userFailure: { status: 429, retryAfter: 3, plainText: true } },
      503,
      /slow down/,
    ],
    ['users/@me 401', { userFailure: { status: 401 } }, 400, /did not accept/],
    ['users/@me 503', { userFailure: { status: 503 } }, 502, /could not be reached/],
  ])('Discord failing (%s) gives a clear page and no user', async (_name, knobs, status, text) => {
    Object.assign(h.discord.knobs, knobs);
    const id = DISCORD_FIXTURES.changing.id;
    const { page } = await signInOnForum(id);
    expect(page.status).toBe(status);
    expect(page.body).toMatch(text);
    if (status === 503) expect(Number(page.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await userRow(id)).toBeUndefined();
  });

  it('a filter refusing the account stops sign-in before anything is written', async () => {
    plugin.refuse.add(animated.id);
    await h.app
      .get(DataSource)
      .query('DELETE FROM discourse_connect_users WHERE discord_id = ?', [animated.id]);
    const { page } = await signInOnForum(animated.id);
    expect(page.status).toBe(403);
    expect(page.body).toContain('Members of the banned list cannot sign in.');
    expect(await userRow(animated.id)).toBeUndefined();
  });

  it('a throwing payload filter fails closed with a clear page; nothing reaches the forum', async () => {
    plugin.throwInPayloadFilter = true;
    const { page } = await signInOnForum(migrated.id);
    expect(page.status).toBe(403);
    expect(page.body).toContain('Sign-in stopped by the site');
    expect(page.body).not.toContain('plugin bug');
    expect(h.forum.stats.ssoLogins).toBe(0);
  });

  it('links anonymous people straight to the forum page and refuses foreign return paths', async () => {
    const browser = new TestBrowser();
    const res = await browser.request(`${h.appUrl}/discourse/forum?return_path=%2Ft%2Fhello%2F2`);
    expect(res.headers.get('location')).toBe(`${h.forum.baseUrl}/t/hello/2`);
    for (const bad of [
      '//evil.example',
      'https://evil.example',
      '/\\evil.example',
      'javascript:alert(1)',
    ]) {
      const r = await browser.request(
        `${h.appUrl}/discourse/forum?return_path=${encodeURIComponent(bad)}`,
      );
      expect(r.status).toBe(400);
      expect(r.headers.get('location')).toBeNull();
    }
  });

  it('keeps sessions across a restart of the app', async () => {
    const { browser } = await signInOnForum(migrated.id);
    await h.restart();
    const res = await browser.request(`${h.appUrl}/discourse/forum`);
    expect(res.headers.get('location')).toContain('/session/sso?return_path=');
  });

  it('signs a payload Discourse-style code outside the module accepts', async () => {
    // The forum simulator verifies with its own HMAC; check the redirect's sig independently too.
    const { browser } = await signInOnForum(migrated.id);
    const start = await browser.request(`${h.forum.baseUrl}/session/sso?return_path=%2F`);
    // Already signed in on the forum: it does not ask again.
    expect(start.status).toBe(302);
    const fresh = new TestBrowser();
    fresh.cookies.set('127.0.0.1', new Map([['dc.sid', browser.cookie('127.0.0.1', 'dc.sid')!]]));
    const toApp = await fresh.request(`${h.forum.baseUrl}/session/sso?return_path=%2F`);
    const back = await fresh.request(toApp.headers.get('location')!);
    const location = new URL(back.headers.get('location')!);
    const sso = location.searchParams.get('sso')!;
    const sig = location.searchParams.get('sig')!;
    expect(createHmac('sha256', FORUM_SECRET).update(sso).digest('hex')).toBe(sig);
    expect(location.origin + location.pathname).toBe(`${h.forum.baseUrl}/session/sso_login`);
  });
});
