import { Logger } from '@nestjs/common';
import { UnrecoverableError, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import {
  BULL_QUEUE_NAME,
  BullMqSyncQueue,
  SyncQueue,
  type DiscourseConnectModuleOptions,
} from 'nestjs-discourse-connect/internal';
import { DISCORD_FIXTURES } from 'nestjs-discourse-connect-simulators';
import { startHarness, type Harness } from '../support/harness';
import { API_KEY, waitFor } from './support/flows';
import { startRedis, type RunningServer } from './support/servers';
import { describeWithServices, redisUrl, uniquePrefix } from './support/services';

const { migrated, legacy } = DISCORD_FIXTURES;

/** An app whose sync queue is BullMQ on `url`, with (by default) this instance's worker running. */
function startApp(url: string, prefix: string, worker = true): Promise<Harness> {
  return startHarness('forRoot', {
    redis: { url, prefix },
    forumOptions: { apiKey: API_KEY, apiRateLimitPerMinute: 0 },
    moduleOptions: (o: DiscourseConnectModuleOptions) => ({
      ...o,
      forums: o.forums.map((f) => ({ ...f, api: { key: API_KEY, timeoutMs: 2000 } })),
      sync: { worker, pollIntervalMs: 50 },
    }),
  });
}

const bullQueue = (h: Harness) => h.app.get(SyncQueue) as BullMqSyncQueue;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());

describeWithServices('the BullMQ queue while its Redis is down', () => {
  jest.setTimeout(30_000);
  // A Redis of its own, stopped by the test (the shared one keeps running for the other files).
  let server: RunningServer | undefined;
  let h: Harness | undefined;
  beforeEach(async () => {
    // ioredis warns (console) that the server takes no password.
    jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    server = await startRedis();
    // A password the server does not ask for (ioredis goes on without it): it must never be logged.
    h = await startApp(
      server.url.replace('redis://', 'redis://:hunter2secret@'),
      uniquePrefix('down'),
    );
    const queue = bullQueue(h);
    await queue.queue.waitUntilReady();
    // The worker is up and polling before Redis goes away.
    await waitFor(async () => (await queue.queue.getWorkers()).length === 1, 'the worker to start');
  });
  afterEach(async () => {
    await Promise.race([h?.close(), sleep(5000)]);
    await server?.stop();
    jest.restoreAllMocks();
  });

  it('app.close() (SIGTERM) finishes within seconds, Redis connections included', async () => {
    await server!.stop();
    await sleep(300);
    const started = Date.now();
    const closing = h!.close();
    h = undefined;
    const closed = await Promise.race([closing.then(() => true), sleep(10_000).then(() => false)]);
    expect(closed).toBe(true);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('logs the outage at most once (every Redis connection of the module shares one limiter), never the URL', async () => {
    const logged: string[] = [];
    const spy = jest
      .spyOn(Logger.prototype, 'error')
      .mockImplementation((...args: unknown[]) => void logged.push(String(args[0])));
    try {
      await server!.stop();
      await sleep(2500);
    } finally {
      spy.mockRestore();
    }
    const redisLines = logged.filter((line) => /redis/i.test(line));
    expect(redisLines.length).toBeGreaterThanOrEqual(1);
    expect(logged.length).toBeLessThanOrEqual(2);
    expect(logged.join('\n')).not.toContain('hunter2secret');
    expect(logged.join('\n')).not.toContain('redis://');
  });
});

describeWithServices('retrying failed BullMQ jobs', () => {
  jest.setTimeout(20_000);
  let h: Harness;
  let redis: Redis;
  const prefix = uniquePrefix('retry');
  beforeAll(async () => {
    redis = new Redis(redisUrl());
    // No worker in the app: the test decides what runs.
    h = await startApp(redisUrl(), prefix, false);
  });
  afterAll(async () => {
    await h?.close();
    await redis?.quit();
  });

  const row = (discordId: string) =>
    ({ kind: 'sync', discordId, forum: 'default', id: 0 }) as never;
  const jobsFor = async (discordId: string) =>
    (await bullQueue(h).queue.getJobs(['waiting', 'prioritized', 'delayed', 'active'])).filter(
      (job) => job?.data.discordId === discordId,
    );

  /** Hands a job for the user over and lets a throwaway worker fail it for good. */
  async function failOne(discordId: string): Promise<void> {
    const queue = bullQueue(h);
    await queue.handOver(row(discordId));
    const connection = redis.duplicate({ maxRetriesPerRequest: null });
    const failer = new Worker(
      BULL_QUEUE_NAME,
      async () => {
        throw new UnrecoverableError('forum said no');
      },
      { connection, prefix: `${prefix}bull` },
    );
    try {
      await waitFor(
        async () =>
          (await queue.queue.getFailedCount()) >= 1 && (await jobsFor(discordId)).length === 0,
        'the job to fail',
      );
    } finally {
      await failer.close();
      await connection.quit();
    }
  }

  it('a retried failed job coalesces with the job already waiting for that user (one job per user)', async () => {
    const queue = bullQueue(h);
    await failOne(migrated.id);
    // A new change for the same user is waiting when the failed job is retried.
    await queue.handOver(row(migrated.id));
    expect(await jobsFor(migrated.id)).toHaveLength(1);
    expect(await queue.retryFailed()).toBe(1);
    expect(await jobsFor(migrated.id)).toHaveLength(1);
    expect(await queue.queue.getFailedCount()).toBe(0);
    expect((await queue.counts()).failed).toBe(0);
  });

  it('a retried failed job with nothing waiting for the user is queued again, by id too', async () => {
    const queue = bullQueue(h);
    await queue.queue.obliterate({ force: true });
    await failOne(legacy.id);
    const [failed] = await queue.failed();
    expect(failed).toMatchObject({ discordId: legacy.id });
    expect(await queue.retryFailed(['no-such-id'])).toBe(0);
    expect(await queue.retryFailed([failed.id])).toBe(1);
    const jobs = await jobsFor(legacy.id);
    expect(jobs).toHaveLength(1);
    expect(jobs[0].attemptsMade).toBe(0);
    expect(await queue.queue.getFailedCount()).toBe(0);
    // A change after the retry still coalesces into the re-queued job.
    await queue.handOver(row(legacy.id));
    expect(await jobsFor(legacy.id)).toHaveLength(1);
  });
});
