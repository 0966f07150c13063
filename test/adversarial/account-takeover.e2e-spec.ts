import { DataSource } from 'typeorm';
import { DiscourseAdminService, SyncQueue, UsersService } from 'nestjs-discourse-connect/internal';
import { DiscoursePayloadBuilder } from 'nestjs-discourse-connect/internal';
import { DiscourseConnectSettings } from 'nestjs-discourse-connect/internal';
import { DISCORD_FIXTURES, type SimDiscordUser } from 'nestjs-discourse-connect-simulators';
import { TestBrowser } from '../support/browser';
import { HTTP_ADAPTERS, type Harness } from '../support/harness';
import {
  expectCleanErrorBody,
  expectNothingWritten,
  snapshot,
  startAdversarialHarness,
  waitFor,
} from './adversarial-support';

/**
 * Account takeover: a Discord account whose email Discord has not verified (at first sign-in or
 * after a change) never reaches the forum without `require_activation`, so Discourse never links an
 * existing forum account by that email; a Discord id that differs only by whitespace, sign or
 * leading zeros never becomes a second identity; ids above 2^53 stay exact.
 *
 * The first-sign-in case through the forum is in test/sign-in.e2e-spec.ts ("requires activation
 * for an email Discord has not verified"); this file covers the changed email and the API path.
 */

const { migrated, unverified } = DISCORD_FIXTURES;

describe.each(HTTP_ADAPTERS)('adversarial: account takeover (%s)', (adapter) => {
  let h: Harness;

  beforeAll(async () => {
    h = await startAdversarialHarness(adapter);
  });
  afterAll(async () => h?.close());
  beforeEach(async () => {
    h.discord.reset();
    h.forum.reset();
    await waitFor(async () => {
      const c = await h.app.get(SyncQueue).counts();
      return c.pending + c.running === 0;
    }, 'an idle queue');
    await h.app.get(DataSource).query('DELETE FROM discourse_connect_sync_jobs');
    await h.app.get(DataSource).query('DELETE FROM discourse_connect_users');
  });

  const idle = () =>
    waitFor(async () => {
      const c = await h.app.get(SyncQueue).counts();
      return c.pending + c.running === 0;
    }, 'an idle queue');

  async function signInOnForum(as: string, browser = new TestBrowser()) {
    h.discord.knobs.autoApproveAs = as;
    const page = await browser.visit(`${h.forum.baseUrl}/session/sso?return_path=%2F`);
    return { browser, page };
  }

  async function signInOnSite(as: string, browser = new TestBrowser()) {
    h.discord.knobs.autoApproveAs = as;
    const page = await browser.visit(`${h.appUrl}/auth/discord`);
    return { browser, page };
  }

  /** Adds a Discord account to the simulator (its users map is public) as a copy of `base`. */
  function addDiscordAccount(base: SimDiscordUser, patch: Partial<SimDiscordUser>): void {
    const user: SimDiscordUser = {
      ...(JSON.parse(JSON.stringify(base)) as SimDiscordUser),
      ...patch,
    };
    h.discord.users.set(user.id, user);
  }

  const forumUserOf = async (browser: TestBrowser) => {
    const res = await browser.request(`${h.forum.baseUrl}/session/current.json`);
    return res.status === 200
      ? ((await res.json()) as { current_user: { id: number; username: string } }).current_user
      : null;
  };

  it('an email changed on Discord to an unverified one is sent with require_activation and never links the forum account that has it', async () => {
    await signInOnForum(migrated.id);
    const own = h.forum.findByExternalId(migrated.id)!;
    const victim = h.forum.addUser({ username: 'victim', email: 'victim@example.com' });

    h.discord.updateUser(migrated.id, { email: 'victim@example.com', verified: false });
    const { page } = await signInOnSite(migrated.id);
    expect(page.url).toBe(`${h.appUrl}/`);
    // The change reaches the forum through the admin API (sync_sso), with require_activation.
    await waitFor(() => h.forum.stats.syncSsoCalls === 1, 'the sync of the change');
    await idle();
    const local = (await h.app.get(UsersService).findByDiscordId(migrated.id))!;
    expect(local).toMatchObject({ email: 'victim@example.com', emailVerified: false });
    const payload = await h.app
      .get(DiscoursePayloadBuilder)
      .forSync(local, h.app.get(DiscourseConnectSettings).forums[0]);
    expect(payload).toMatchObject({
      external_id: migrated.id,
      email: 'victim@example.com',
      require_activation: true,
    });

    // Through the forum's own sign-in too.
    const { browser } = await signInOnForum(migrated.id);
    expect(h.forum.stats.lastPayload).toMatchObject({
      external_id: migrated.id,
      require_activation: 'true',
    });
    expect(victim).toMatchObject({ externalId: null, email: 'victim@example.com' });
    expect(h.forum.users.filter((u) => u.externalId === migrated.id)).toEqual([own]);
    expect((await forumUserOf(browser))?.id).not.toBe(victim.id);
  });

  it('an unverified Discord user synced through the admin API never takes over the forum account with that email', async () => {
    const victim = h.forum.addUser({ username: 'victim', email: unverified.email! });
    const { page } = await signInOnSite(unverified.id);
    expect(page.url).toBe(`${h.appUrl}/`);
    const local = (await h.app.get(UsersService).findByDiscordId(unverified.id))!;
    await h.app
      .get(DiscourseAdminService)
      .syncSso(local)
      .catch(() => undefined); // the forum may refuse (email taken): either way nothing is linked
    expect(h.forum.stats.syncSsoCalls).toBe(1);
    expect(victim.externalId).toBeNull();
    expect(
      h.forum.users.filter((u) => u.externalId === unverified.id).every((u) => !u.active),
    ).toBe(true);
  });

  it.each([
    ['a leading space', ` ${migrated.id}`],
    ['a trailing space', `${migrated.id} `],
    ['a trailing newline', `${migrated.id}\n`],
    ['a leading tab', `\t${migrated.id}`],
    ['a leading zero', `0${migrated.id}`],
    ['two leading zeros', `00${migrated.id}`],
    ['a plus sign', `+${migrated.id}`],
    ['a minus sign', `-${migrated.id}`],
    ['a decimal point', `${migrated.id}.0`],
    ['an exponent', `${migrated.id}e0`],
    [
      'full-width digits',
      migrated.id.replace(/[0-9]/g, (d) => String.fromCharCode(0xff10 + Number(d))),
    ],
    [
      'Arabic-Indic digits',
      migrated.id.replace(/[0-9]/g, (d) => String.fromCharCode(0x0660 + Number(d))),
    ],
    ['a value above 2^64 - 1', '18446744073709551616'],
    ['21 digits', '100000000000000000000'],
  ])(
    'a Discord id with %s never maps onto another record: 502, nothing written or sent',
    async (_name, id) => {
      await signInOnForum(migrated.id);
      await idle();
      const before = await snapshot(h);
      // The same person, same verified email, under an id that differs only in form.
      addDiscordAccount(migrated, { id });
      const { page } = await signInOnForum(id);
      expect(page.status).toBe(502);
      expect(page.headers.get('content-type')).toMatch(/^text\/html/);
      expect(page.body).toContain('Discord sent an unusable answer');
      expect(page.hops.map((hop) => new URL(hop.url).pathname)).not.toContain('/session/sso_login');
      expectCleanErrorBody(page.body);
      await expectNothingWritten(h, before);
      expect(await h.app.get(UsersService).findByDiscordId(id)).toBeNull();
    },
  );

  it('keeps snowflakes above 2^53 exact: ids equal as JavaScript numbers stay two people, and 2^64 - 1 works', async () => {
    const a = '9007199254740993';
    const b = '9007199254740992';
    const max = '18446744073709551615';
    expect(Number(a)).toBe(Number(b));
    addDiscordAccount(migrated, { id: a, username: 'odd', email: 'odd@example.com', avatar: null });
    addDiscordAccount(migrated, {
      id: b,
      username: 'even',
      email: 'even@example.com',
      avatar: null,
    });
    addDiscordAccount(migrated, {
      id: max,
      username: 'max',
      email: 'max@example.com',
      avatar: null,
    });
    for (const id of [a, b, max]) {
      const { page } = await signInOnForum(id);
      expect(page.status).toBe(200);
      expect(h.forum.stats.lastPayload!.external_id).toBe(id);
      expect(h.forum.stats.lastPayload!.avatar_url).toBe(
        `https://cdn.discordapp.com/embed/avatars/${Number((BigInt(id) >> 22n) % 6n)}.png`,
      );
    }
    const rows: { discord_id: string; email: string }[] = await h.app
      .get(DataSource)
      .query('SELECT discord_id, email FROM discourse_connect_users ORDER BY email');
    expect(rows).toEqual([
      { discord_id: b, email: 'even@example.com' },
      { discord_id: max, email: 'max@example.com' },
      { discord_id: a, email: 'odd@example.com' },
    ]);
    expect(h.forum.findByExternalId(a)!.email).toBe('odd@example.com');
    expect(h.forum.findByExternalId(b)!.email).toBe('even@example.com');
    expect(h.forum.findByExternalId(max)!.email).toBe('max@example.com');
  });
});
