import { connect, createServer, type Server, type Socket } from 'node:net';
import { Redis } from 'ioredis';
import {
  DiscordBotConnection,
  RedisGatewayLease,
  type DiscourseConnectModuleOptions,
} from 'nestjs-discourse-connect/internal';
import { SIM_GUILD_ID } from 'nestjs-discourse-connect-simulators';
import { startHarness, type Harness } from '../support/harness';
import { waitFor } from '../support/wait';
import { describeWithServices, redisUrl, uniquePrefix } from './support/services';

/**
 * A TCP relay to Redis that can be frozen: while frozen it passes nothing either way and closes
 * nothing, as a network that stops answering does, so commands through it go unanswered.
 */
class FreezableRelay {
  private readonly server: Server;
  private readonly sockets: Socket[] = [];
  private frozen = false;

  constructor(private readonly target: URL) {
    this.server = createServer((client) => {
      const upstream = connect(Number(target.port || 6379), target.hostname);
      for (const [from, to] of [
        [client, upstream],
        [upstream, client],
      ]) {
        from.on('data', (chunk: Buffer) => {
          if (!this.frozen) to.write(chunk);
        });
        from.on('error', () => to.destroy());
        from.on('close', () => to.destroy());
      }
      this.sockets.push(client, upstream);
    });
  }

  /** The relay's Redis URL (the target's, on the relay's port). */
  async listen(): Promise<string> {
    await new Promise<void>((done) => this.server.listen(0, '127.0.0.1', done));
    const url = new URL(this.target.href);
    url.hostname = '127.0.0.1';
    url.port = String((this.server.address() as { port: number }).port);
    return url.href;
  }

  /** Drops everything sent from now on (a command's request or its answer). */
  freeze(): void {
    this.frozen = true;
  }

  /** Passes traffic again; connections that lost bytes are closed, so their clients reconnect. */
  thaw(): void {
    this.frozen = false;
    for (const socket of this.sockets.splice(0)) socket.destroy();
  }

  async close(): Promise<void> {
    this.thaw();
    await new Promise<void>((done) => this.server.close(() => done()));
  }
}

/** The Discord gateway lease on a real Redis: one holder at a time, taken over when it lapses. */
describeWithServices('Discord gateway lease (Redis)', () => {
  let redis: Redis;
  beforeAll(() => {
    redis = new Redis(redisUrl());
  });
  afterAll(async () => {
    await redis.quit();
  });

  it('one holder at a time; only the holder renews or releases; a release hands it over at once', async () => {
    const key = `${uniquePrefix('lease')}discord-gateway`;
    const a = new RedisGatewayLease(redis, key, 10_000);
    const b = new RedisGatewayLease(redis, key, 10_000);
    expect(await a.acquire()).toBe(true);
    expect(await b.acquire()).toBe(false);
    expect(await a.renew()).toBe(true);
    expect(await b.renew()).toBe(false);
    await b.release(); // not the holder: nothing happens
    expect(await redis.get(key)).toBe(a.holder);
    await a.release();
    expect(await b.acquire()).toBe(true);
    expect(await a.renew()).toBe(false);
    expect(await redis.get(key)).toBe(b.holder);
  });

  it('a holder asking again keeps the lease it holds', async () => {
    const key = `${uniquePrefix('lease')}discord-gateway`;
    const a = new RedisGatewayLease(redis, key, 10_000);
    const b = new RedisGatewayLease(redis, key, 10_000);
    expect(await a.acquire()).toBe(true);
    await redis.pexpire(key, 5000);
    expect(await a.acquire()).toBe(true);
    expect(await redis.pttl(key)).toBeGreaterThan(5000);
    expect(await b.acquire()).toBe(false);
    expect(await redis.get(key)).toBe(a.holder);
  });

  it('a holder that stops renewing loses the lease when it expires, and another takes it', async () => {
    const key = `${uniquePrefix('lease')}discord-gateway`;
    const dead = new RedisGatewayLease(redis, key, 300);
    const next = new RedisGatewayLease(redis, key, 300);
    expect(await dead.acquire()).toBe(true);
    expect(await redis.pttl(key)).toBeGreaterThan(0);
    await waitFor(() => next.acquire(), 'the lease to lapse and be taken over');
    expect(await dead.renew()).toBe(false);
  });
});

describeWithServices('the Discord gateway holder whose Redis stops answering', () => {
  jest.setTimeout(60_000);
  const LEASE_MS = 3000;
  let relay: FreezableRelay;
  let redis: Redis;
  let h: Harness;
  const prefix = uniquePrefix('lease');
  const key = `${prefix}discord-gateway`;

  beforeAll(async () => {
    relay = new FreezableRelay(new URL(redisUrl()));
    redis = new Redis(redisUrl());
    h = await startHarness('forRoot', {
      redis: { url: await relay.listen(), prefix },
      moduleOptions: (o: DiscourseConnectModuleOptions) => ({
        ...o,
        groups: { guildId: SIM_GUILD_ID },
        bot: { token: 'sandbox-bot-token', leaseMs: LEASE_MS, reconcileSeconds: 3600 },
      }),
    });
  });
  afterAll(async () => {
    relay?.thaw();
    await h?.close();
    await relay?.close();
    await redis?.quit();
  });

  it('closes the gateway before its lease can lapse in Redis, then takes it again once Redis answers', async () => {
    await waitFor(() => h.discord.gateway.openSessions === 1, 'the bot on the gateway');
    const bot = h.app.get(DiscordBotConnection);
    expect(bot.isHolder).toBe(true);
    expect(await redis.exists(key)).toBe(1);

    relay.freeze();
    // The moment the lease lapses in Redis another instance may take it: this one has let go.
    await waitFor(async () => (await redis.exists(key)) === 0, 'the lease to lapse', 20_000);
    expect(bot.isHolder).toBe(false);
    expect(h.discord.gateway.openSessions).toBe(0);

    relay.thaw();
    await waitFor(() => bot.isHolder, 'the lease taken again', 20_000);
    await waitFor(() => h.discord.gateway.openSessions === 1, 'the bot back on the gateway');
    expect(await redis.get(key)).not.toBeNull();
  });
});
