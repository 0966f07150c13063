import { DataSource } from 'typeorm';
import {
  DiscourseConnectForumLinkEntity,
  DiscourseConnectUsersService,
  SyncQueue,
  FORUM_LINK_NOT_FOUND_TTL_MS,
} from 'nestjs-discourse-connect/internal';
import { DISCORD_FIXTURES, DiscourseSimulator } from 'nestjs-discourse-connect-simulators';
import { SyncCommand } from '../src/cli/sync.command';
import { TestBrowser } from './support/browser';
import {
  API_KEY,
  HTTP_ADAPTERS,
  startHarness,
  type Harness,
  type HttpAdapterName,
} from './support/harness';
import { waitFor } from './support/wait';

/** The second forum's own DiscourseConnect secret (a forum is told apart by its secret). */
const OTHER_SECRET = 'e2e-other-forum-secret-0123456789';
const DAY = 24 * 60 * 60 * 1000;

const { legacy } = DISCORD_FIXTURES;

describe.each(HTTP_ADAPTERS)(
  'no forum accounts nobody asked for: two forums, the member visited one (%s)',
  (adapter: HttpAdapterName) => {
    let h: Harness;
    let other: DiscourseSimulator;

    beforeAll(async () => {
      other = new DiscourseSimulator({
        secret: OTHER_SECRET,
        apiKey: API_KEY,
        apiRateLimitPerMinute: 0,
      });
      const otherUrl = await other.listen(0);
      h = await startHarness('forRoot', {
        adapter,
        forumOptions: { apiKey: API_KEY, apiRateLimitPerMinute: 0 },
        moduleOptions: (o) => ({
          ...o,
          forums: [
            { ...o.forums[0], name: 'visited', api: { key: API_KEY, timeoutMs: 2000 } },
            {
              url: otherUrl,
              secret: OTHER_SECRET,
              name: 'other',
              api: { key: API_KEY, timeoutMs: 2000 },
            },
          ],
          sync: { ratePerMinute: 6000, pollIntervalMs: 50, backoffBaseMs: 100, backoffMaxMs: 400 },
        }),
      });
      other.connectUrl = `${h.mountUrl}/discourse/sso`;
      other.logoutRedirect = `${h.mountUrl}/discourse/logout`;
    });
    afterAll(async () => {
      await h?.close();
      await other?.close();
    });
    beforeEach(async () => {
      h.discord.reset();
      h.forum.reset();
      other.reset();
      const db = h.app.get(DataSource);
      await db.query('DELETE FROM discourse_connect_sync_jobs');
      await db.query('DELETE FROM discourse_connect_forum_links');
      await db.query('DELETE FROM discourse_connect_users');
    });

    const links = () => h.app.get(DataSource).getRepository(DiscourseConnectForumLinkEntity);
    const linkOf = (forum: string) => links().findOneBy({ forum, discordId: legacy.id });
    /** Admin API requests the other forum answered that were not sync_sso: its by-external lookups. */
    const lookups = (forum: DiscourseSimulator) =>
      forum.stats.apiRequests - forum.stats.syncSsoCalls - forum.stats.apiLogOuts;

    const idle = () =>
      waitFor(async () => {
        const c = await h.app.get(SyncQueue).counts();
        return c.pending + c.running === 0;
      }, 'an empty queue');

    /** A job for the member on every forum, as a profile or role change records it. */
    const syncJob = async () => {
      await h.app.get(SyncQueue).enqueue('sync', legacy.id);
      await idle();
    };

    async function signInOnForum(forum: DiscourseSimulator) {
      h.discord.knobs.autoApproveAs = legacy.id;
      const browser = new TestBrowser();
      await browser.visit(`${forum.baseUrl}/session/sso?return_path=%2F`);
      return browser;
    }

    it('records the link when a handshake for that forum completes', async () => {
      await signInOnForum(h.forum);
      expect(h.forum.findByExternalId(legacy.id)).toBeDefined();
      expect(await linkOf('visited')).toMatchObject({ status: 'linked' });
      expect(await linkOf('other')).toBeNull();
    });

    it('a changed re-login reaches only the visited forum; the other forum gets no account', async () => {
      await signInOnForum(h.forum);
      h.discord.updateUser(legacy.id, { global_name: 'Renamed Elsewhere' });
      h.discord.knobs.autoApproveAs = legacy.id;
      const page = await new TestBrowser().visit(`${h.appUrl}/auth/discord`);
      expect(page.url).toBe(`${h.appUrl}/`);
      await waitFor(() => h.forum.stats.syncSsoCalls === 1, 'one sync_sso on the visited forum');
      await idle();
      expect(other.stats.syncSsoCalls).toBe(0);
      expect(other.findByExternalId(legacy.id)).toBeUndefined();
      expect(other.users).toHaveLength(0);
      // The other forum was asked once, and its answer kept.
      expect(lookups(other)).toBe(1);
      expect(await linkOf('other')).toMatchObject({ status: 'not_found' });
    });

    it('an upgraded install (member, no links): the first job asks by-external once per forum and syncs only where found', async () => {
      await signInOnForum(h.forum);
      const account = h.forum.findByExternalId(legacy.id)!;
      await links().clear(); // as after the upgrade: members, no links
      h.forum.stats.apiRequests = 0;

      await syncJob();
      expect(lookups(h.forum)).toBe(1);
      expect(h.forum.stats.syncSsoCalls).toBe(1);
      expect(lookups(other)).toBe(1);
      expect(other.stats.syncSsoCalls).toBe(0);
      expect(other.users).toHaveLength(0);
      const before = Date.now();
      expect(await linkOf('visited')).toMatchObject({
        status: 'linked',
        forumUserId: account.id,
        forumUsername: account.username,
      });
      const notFound = await linkOf('other');
      expect(notFound).toMatchObject({ status: 'not_found', forumUserId: null });
      expect(notFound!.checkedAt).toBeLessThanOrEqual(before);
      expect(notFound!.checkedAt).toBeGreaterThan(before - 60_000);

      // The answers are kept: the next job asks neither forum again.
      await syncJob();
      expect(lookups(h.forum)).toBe(1);
      expect(h.forum.stats.syncSsoCalls).toBe(2);
      expect(lookups(other)).toBe(1);
      expect(other.users).toHaveLength(0);
    });

    it('asks again about a "not found" only after a day', async () => {
      await signInOnForum(h.forum);
      await syncJob();
      expect(lookups(other)).toBe(1);

      // Within the day: trusted, not asked.
      await links().update(
        { forum: 'other', discordId: legacy.id },
        { checkedAt: Date.now() - DAY + 60_000 },
      );
      await syncJob();
      expect(lookups(other)).toBe(1);

      // Older than a day: asked once more; the member has an account there by now.
      await signInOnForum(other);
      await links().update(
        { forum: 'other', discordId: legacy.id },
        { status: 'not_found', checkedAt: Date.now() - FORUM_LINK_NOT_FOUND_TTL_MS - 1 },
      );
      other.stats.syncSsoCalls = 0;
      await syncJob();
      expect(lookups(other)).toBe(2);
      expect(other.stats.syncSsoCalls).toBe(1);
      expect(await linkOf('other')).toMatchObject({ status: 'linked' });
    });

    it('sync --all skips forums without an account; sync --all --create creates them', async () => {
      await signInOnForum(h.forum);
      const command = new SyncCommand(
        h.app.get(DiscourseConnectUsersService),
        h.app.get(SyncQueue),
      );
      const log = jest.spyOn(console, 'log').mockImplementation(() => undefined);
      const progress = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
      try {
        await command.run([], { all: true });
        expect(h.forum.stats.syncSsoCalls).toBe(1);
        expect(other.users).toHaveLength(0);

        await command.run([], { all: true, create: true });
        expect(h.forum.stats.syncSsoCalls).toBe(2);
        expect(other.stats.syncSsoCalls).toBe(1);
        const created = other.findByExternalId(legacy.id);
        expect(created).toBeDefined();
        expect(await linkOf('other')).toMatchObject({ status: 'linked', forumUserId: created!.id });
      } finally {
        log.mockRestore();
        progress.mockRestore();
      }
    });
  },
);
