import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  DISCORD_FIXTURES,
  DiscordSimulator,
  DiscourseSimulator,
  type SimDiscordUser,
} from 'nestjs-discourse-connect-simulators';
import { TestBrowser } from '../support/browser';
import { FORUM_SECRET } from '../support/harness';
import { API_KEY, waitFor } from './support/flows';
import { Instance } from './support/instance-process';
import { createDatabase, describeWithServices, redisUrl, uniquePrefix } from './support/services';

/** The forum's admin API budget and the app's sync rate: one call per 150 ms. */
const RATE_PER_MINUTE = 400;
const INTERVAL_MS = 60_000 / RATE_PER_MINUTE;
const USERS = 12;

/** A simulated forum that also records when each sync_sso arrived, and for whom. */
class RecordingForum extends DiscourseSimulator {
  readonly syncs: { at: number }[] = [];
  protected override route(req: IncomingMessage, res: ServerResponse, url: URL) {
    if (req.method === 'POST' && url.pathname === '/admin/users/sync_sso')
      this.syncs.push({ at: Date.now() });
    return super.route(req, res, url);
  }
}

describeWithServices('two instances sharing PostgreSQL and Redis', () => {
  jest.setTimeout(120_000);
  const users: SimDiscordUser[] = Array.from({ length: USERS }, (_, i) => ({
    ...DISCORD_FIXTURES.migrated,
    id: String(BigInt(DISCORD_FIXTURES.migrated.id) + BigInt(i + 1)),
    username: `member${i}`,
    global_name: `Member ${i}`,
    email: `member${i}@example.com`,
  }));
  const discord = new DiscordSimulator({ users });
  const forum = new RecordingForum({
    secret: FORUM_SECRET,
    apiKey: API_KEY,
    apiRateLimitPerMinute: RATE_PER_MINUTE,
    authOverridesName: true,
  });
  let db: Awaited<ReturnType<typeof createDatabase>>;
  let one: Instance;
  let two: Instance;

  beforeAll(async () => {
    db = await createDatabase('multi');
    const [discordUrl, forumUrl] = await Promise.all([discord.listen(0), forum.listen(0)]);
    const prefix = uniquePrefix('multi');
    const instance = () =>
      Instance.create({
        databaseUrl: db.url,
        discordUrl,
        forumUrl,
        more: {
          // Short leases, so the test does not wait a minute for a killed instance's work.
          sync: {
            ratePerMinute: RATE_PER_MINUTE,
            pollIntervalMs: 100,
            leaseMs: 3000,
            backoffBaseMs: 200,
            backoffMaxMs: 1000,
          },
          redis: { url: redisUrl(), prefix },
        },
      });
    [one, two] = [await instance(), await instance()];
    discord.redirectUris = [`${one.url}/auth/discord/callback`, `${two.url}/auth/discord/callback`];
    forum.logoutRedirect = `${one.url}/discourse/logout`;
    // One after the other: the first runs the migrations (as `npm run migration:run` would before a rollout).
    await one.start();
    await two.start();
  });

  afterAll(async () => {
    await Instance.stopAll(one, two);
    await Promise.all([discord.close(), forum.close()]);
    await db?.drop();
  });

  const signIn = async (instance: Instance, user: SimDiscordUser) => {
    discord.knobs.autoApproveAs = user.id;
    const page = await new TestBrowser().visit(`${instance.url}/auth/discord`);
    expect(page.url).toBe(`${instance.url}/`);
  };
  /** A sign-in that starts on the forum and goes through `instance`'s handshake. */
  const signInOnForum = async (instance: Instance, user: SimDiscordUser) => {
    discord.knobs.autoApproveAs = user.id;
    forum.connectUrl = `${instance.url}/discourse/sso`;
    const page = await new TestBrowser().visit(`${forum.baseUrl}/session/sso?return_path=%2F`);
    expect(page.url).toBe(`${forum.baseUrl}/`);
  };
  /**
   * Never faster than the rate: any run of k + 1 calls spans at least k intervals. The times are when
   * calls reach the forum, so one call may arrive late after its slot (a busy CI machine delays a
   * process by tens of ms) and the next on time: JITTER_MS allows that once, not as a trend. Two
   * instances each at the full rate would fall behind by half an interval per call and fail here.
   */
  const JITTER_MS = 100;
  const expectSpacedByTheRate = (times: number[]) => {
    for (let i = 0; i < times.length; i++) {
      for (let j = i + 1; j < times.length; j++) {
        expect(times[j] - times[i]).toBeGreaterThanOrEqual((j - i) * INTERVAL_MS - JITTER_MS);
      }
    }
  };

  it('a sign-in through one instance is valid on the other: the SSO handshake succeeds there', async () => {
    const browser = new TestBrowser();
    discord.knobs.autoApproveAs = users[0].id;
    forum.connectUrl = `${one.url}/discourse/sso`;
    const first = await browser.visit(`${forum.baseUrl}/session/sso?return_path=%2Ft%2Fone%2F1`);
    expect(first.url).toBe(`${forum.baseUrl}/t/one/1`);
    expect(first.hops.map((h) => new URL(h.url).origin)).toContain(one.url);

    // The forum forgets its own session and now sends people to the second instance.
    browser.cookies.get('127.0.0.1')!.delete('_forum_session');
    forum.connectUrl = `${two.url}/discourse/sso`;
    discord.knobs.autoApproveAs = null;
    const second = await browser.visit(`${forum.baseUrl}/session/sso?return_path=%2Ft%2Ftwo%2F2`);
    expect(second.url).toBe(`${forum.baseUrl}/t/two/2`);
    const paths = second.hops.map((h) => `${new URL(h.url).origin}${new URL(h.url).pathname}`);
    expect(paths).toContain(`${two.url}/discourse/sso`);
    expect(paths.some((p) => p.endsWith('/oauth2/authorize'))).toBe(false); // no new Discord sign-in
    expect(forum.stats.ssoLogins).toBe(2);
    expect(forum.findByExternalId(users[0].id)?.name).toBe('Member 0');
  });

  it('a burst of profile changes over both instances reaches the forum exactly once each, never faster than the rate', async () => {
    // First sign-ins, through the forum (so each member has an account there): nothing to sync.
    for (const [i, user] of users.entries()) await signInOnForum(i % 2 ? two : one, user);
    forum.syncs.length = 0;
    const limitedBefore = forum.stats.apiRateLimited;
    for (const [i, user] of users.entries()) {
      discord.updateUser(user.id, { global_name: `Renamed ${i}` });
      await signIn(i % 2 ? two : one, user);
    }
    await waitFor(
      () => users.every((u, i) => forum.findByExternalId(u.id)?.name === `Renamed ${i}`),
      'every change on the forum',
      30_000,
    );
    await new Promise((r) => setTimeout(r, 4 * INTERVAL_MS)); // nothing more arrives
    expect(forum.syncs).toHaveLength(USERS);
    expectSpacedByTheRate(forum.syncs.map((s) => s.at));
    expect(forum.stats.apiRateLimited).toBe(limitedBefore);
    const health = await (await fetch(`${one.url}/health`)).json();
    expect(health).toMatchObject({
      status: 'ok',
      checks: { database: 'up', redis: 'up' },
      queue: { pending: 0, running: 0, failed: 0 },
    });
  });

  it('killing one instance mid-burst loses nothing', async () => {
    forum.syncs.length = 0;
    // Half the changes go through the second instance, which is killed while the queue delivers them.
    for (const [i, user] of users.entries()) {
      discord.updateUser(user.id, { global_name: `Again ${i}` });
      if (i % 2) await signIn(two, user);
    }
    await waitFor(() => forum.syncs.length >= 2, 'the delivery to start');
    two.kill();
    for (const [i, user] of users.entries()) if (i % 2 === 0) await signIn(one, user);
    await waitFor(
      () => users.every((u, i) => forum.findByExternalId(u.id)?.name === `Again ${i}`),
      `every change on the forum after the kill (${users.filter((u, i) => forum.findByExternalId(u.id)?.name !== `Again ${i}`).length} missing)`,
      60_000,
    );
    // At least once each; a job cut off mid-delivery may be delivered again (idempotent on the forum).
    expect(forum.syncs.length).toBeGreaterThanOrEqual(USERS);
    expect(forum.syncs.length).toBeLessThanOrEqual(USERS + 4);
    expectSpacedByTheRate(forum.syncs.map((s) => s.at));
    await waitFor(
      async () => {
        const health = (await (await fetch(`${one.url}/health`)).json()) as {
          queue: { pending: number; running: number; failed: number };
        };
        return health.queue.pending + health.queue.running === 0 && health.queue.failed === 0;
      },
      'the surviving instance to report an empty queue',
      20_000,
    );
  });
});
