import { Redis } from 'ioredis';
import {
  DISCORD_FIXTURES,
  DiscordSimulator,
  DiscourseSimulator,
  SIM_GUILD_ID,
  SIM_GUILD_ROLES,
} from 'nestjs-discourse-connect-simulators';
import { TestBrowser } from '../support/browser';
import { FORUM_SECRET } from '../support/harness';
import { API_KEY, waitFor } from './support/flows';
import { Instance } from './support/instance-process';
import { createDatabase, describeWithServices, redisUrl, uniquePrefix } from './support/services';

/** A short gateway lease, so the takeover happens within seconds (the default is 30 s). */
const LEASE_MS = 2000;
const { migrated } = DISCORD_FIXTURES;

describeWithServices('the Discord gateway over two instances (PostgreSQL and Redis)', () => {
  jest.setTimeout(120_000);
  const discord = new DiscordSimulator();
  const forum = new DiscourseSimulator({ secret: FORUM_SECRET, apiKey: API_KEY });
  let db: Awaited<ReturnType<typeof createDatabase>>;
  let one: Instance;
  let two: Instance;
  let prefix: string;

  beforeAll(async () => {
    db = await createDatabase('gateway');
    const [discordUrl, forumUrl] = await Promise.all([discord.listen(0), forum.listen(0)]);
    prefix = uniquePrefix('gateway');
    const instance = () =>
      Instance.create({
        databaseUrl: db.url,
        discordUrl,
        forumUrl,
        more: {
          sync: { ratePerMinute: 600, pollIntervalMs: 100, leaseMs: 3000 },
          groups: {
            guildId: SIM_GUILD_ID,
            roleGroups: {
              [SIM_GUILD_ROLES.member]: 'members',
              [SIM_GUILD_ROLES.moderator]: 'moderators',
            },
          },
          // The reconcile's own interval is long: only the takeover's reconcile can catch the change.
          bot: { token: discord.botToken, leaseMs: LEASE_MS, reconcileSeconds: 3600 },
          redis: { url: redisUrl(), prefix },
        },
      });
    [one, two] = [await instance(), await instance()];
    discord.redirectUris = [`${one.url}/auth/discord/callback`];
    forum.connectUrl = `${one.url}/discourse/sso`;
    await one.start();
    await waitFor(() => discord.gateway.openSessions === 1, 'the first instance on the gateway');
    await two.start();
  });

  afterAll(async () => {
    await Instance.stopAll(one, two);
    await Promise.all([discord.close(), forum.close()]);
    await db?.drop();
  });

  const groupsOf = (id: string) => [...(forum.findByExternalId(id)?.groups ?? [])].sort().join();

  it('the holder is killed; the other takes the gateway over and a change made meanwhile reaches the forum', async () => {
    discord.knobs.autoApproveAs = migrated.id;
    const page = await new TestBrowser().visit(`${forum.baseUrl}/session/sso?return_path=%2F`);
    expect(page.url).toBe(`${forum.baseUrl}/`);
    await waitFor(
      () => groupsOf(migrated.id) === 'members,moderators',
      'the groups of the sign-in',
    );
    // One gateway for the deployment: the second instance waits for the lease.
    expect(discord.gateway.stats.identifies).toBe(1);
    const gatewayOf = async (instance: Instance) =>
      ((await (await fetch(`${instance.url}/health`)).json()) as { discord: { gateway: string } })
        .discord.gateway;
    expect(await gatewayOf(one)).toBe('held');
    expect(await gatewayOf(two)).toBe('standby');

    one.kill();
    await waitFor(() => discord.gateway.openSessions === 0, 'the killed holder off the gateway');
    // Nobody holds the gateway now: the change is seen only by the next holder's reconcile.
    discord.guild.setRoles(migrated.id, [SIM_GUILD_ROLES.member]);
    await waitFor(
      () => groupsOf(migrated.id) === 'members',
      'the second instance to take over and reconcile',
      60_000,
    );
    await waitFor(() => discord.gateway.openSessions === 1, 'the second instance on the gateway');
    expect(discord.gateway.stats.identifies).toBe(2);
    expect(await gatewayOf(two)).toBe('held');

    // And the events flow through the new holder.
    discord.guild.setRoles(migrated.id, [SIM_GUILD_ROLES.member, SIM_GUILD_ROLES.moderator]);
    await waitFor(
      () => groupsOf(migrated.id) === 'members,moderators',
      'the event through the new holder',
    );
  });

  it('a holder that shuts down closes the gateway and gives the lease up at once', async () => {
    const redis = new Redis(redisUrl());
    try {
      expect(await redis.exists(`${prefix}discord-gateway`)).toBe(1);
      await two.stop();
      expect(await redis.exists(`${prefix}discord-gateway`)).toBe(0);
      await waitFor(() => discord.gateway.openSessions === 0, 'the gateway closed');
    } finally {
      await redis.quit();
    }
  });
});
