import { Logger } from '@nestjs/common';
import { DataSource, type Repository } from 'typeorm';
import type { DiscourseAdminService } from '../admin/discourse-admin.service';
import { DiscourseApiError, DiscourseRateLimitError } from '../admin/discourse-api.errors';
import { DiscourseConnectActionsService } from '../hooks/actions.service';
import { DiscourseConnectForumLinkEntity } from '../users/forum-link.entity';
import { ForumLinks } from '../users/forum-links';
import type { UsersService } from '../users/users.service';
import { DatabaseSyncQueue } from './database-sync-queue';
import { DatabaseSyncWorker } from './database-sync.worker';
import { SyncOutboxRelay } from './outbox-relay';
import { SyncDeliveryCore } from './sync-delivery.core';
import { DiscourseConnectSyncJobEntity } from './sync-job.entity';
import { migratedSqlite, settingsFixture } from '../../test-support/fixtures';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const settings = settingsFixture({
  sync: { maxAttempts: 3, backoffBaseMs: 1000, backoffMaxMs: 10_000, leaseMs: 60_000 },
});

/** A queue with Redis behind it, as the relay sees it: rows are handed over instead of delivered. */
class HandOverQueue extends DatabaseSyncQueue {
  handedOver: string[] = [];
  down = false;
  override async handOver(row: DiscourseConnectSyncJobEntity): Promise<void> {
    if (this.down) throw new Error('connect ECONNREFUSED redis://:secret@127.0.0.1:6379');
    this.handedOver.push(`${row.kind}:${row.discordId}`);
  }
}

/** The outbox workers on a real SQLite database migrated by the module's migrations. */
describe('outbox workers', () => {
  let dataSource: DataSource;
  let jobs: Repository<DiscourseConnectSyncJobEntity>;
  let failure: unknown;
  let delivered: string[];
  let core: SyncDeliveryCore;

  const admin = {
    syncSso: async (user: { discordId: string }) => {
      if (failure) throw failure;
      delivered.push(`sync:${user.discordId}`);
    },
    logOutByExternalId: async (id: string) => {
      if (failure) throw failure;
      delivered.push(`logout:${id}`);
      return true;
    },
  } as unknown as DiscourseAdminService;
  let reads: string[];
  let recent: Record<string, { discordId: string; name: string }>;
  const users = {
    findByDiscordId: async (discordId: string) => {
      reads.push(discordId);
      return { discordId };
    },
    recentCopy: (discordId: string) => recent[discordId] ?? null,
  } as unknown as UsersService;

  const rows = () => jobs.find({ order: { id: 'ASC' } });

  beforeEach(async () => {
    dataSource = await migratedSqlite();
    jobs = dataSource.getRepository(DiscourseConnectSyncJobEntity);
    failure = undefined;
    delivered = [];
    reads = [];
    recent = {};
    core = new SyncDeliveryCore(users, admin, settings, new DiscourseConnectActionsService());
    jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
  });
  afterEach(async () => {
    jest.restoreAllMocks();
    await dataSource.destroy();
  });

  describe('DatabaseSyncWorker', () => {
    let queue: DatabaseSyncQueue;
    let worker: DatabaseSyncWorker;
    beforeEach(() => {
      queue = new DatabaseSyncQueue(jobs, settings);
      worker = new DatabaseSyncWorker(jobs, queue, settings, core);
    });

    it('delivers every due job oldest first, coalesced per member, and deletes it', async () => {
      await queue.enqueue('sync', '1');
      await queue.enqueue('sync', '1'); // absorbed by the waiting job
      await queue.enqueue('logout', '2');
      await worker.drain();
      expect(delivered).toEqual(['sync:1', 'logout:2']);
      expect(await rows()).toEqual([]);
    });

    it('after an enqueue, a short pass: as many rows as announced, without the lease check; the poll does the rest', async () => {
      const pass = () => (worker as unknown as { running?: Promise<void> }).running;
      await queue.enqueue('sync', '1');
      await queue.enqueue('sync', '2');
      await queue.enqueue('sync', '3');
      // A row whose worker died: its lease ran out.
      await jobs.update({ discordId: '3' }, { status: 'running', lockedUntil: 1, dedupeKey: null });
      worker.kick(1);
      await pass();
      expect(delivered).toEqual(['sync:1']);
      expect((await rows()).map((r) => [r.discordId, r.status])).toEqual([
        ['2', 'pending'],
        ['3', 'running'],
      ]);
      worker.kick();
      await pass();
      expect(delivered).toEqual(['sync:1', 'sync:2', 'sync:3']);
      expect(await rows()).toEqual([]);
    });

    it('requeues a retryable failure with the backoff, then keeps it as failed', async () => {
      failure = new DiscourseApiError(503, 'forum down');
      await queue.enqueue('sync', '1');
      const before = Date.now();
      await worker.drain();
      const [row] = await rows();
      expect(row).toMatchObject({ status: 'pending', attempts: 1, lastError: 'forum down' });
      expect(row.dedupeKey).toBe(`sync:${settings.forums[0].name}:1`);
      expect(row.runAt - before).toBeGreaterThanOrEqual(800);
      expect(row.runAt - Date.now()).toBeLessThanOrEqual(1200);

      await jobs.update({ id: row.id }, { runAt: 0 });
      await worker.drain();
      await jobs.update({ id: row.id }, { runAt: 0 });
      await worker.drain();
      expect(await rows()).toEqual([
        expect.objectContaining({ status: 'failed', attempts: 3, lockedUntil: null }),
      ]);
      expect(await queue.counts()).toEqual({ pending: 0, running: 0, failed: 1 });
    });

    it('fails a refusal at once', async () => {
      failure = new DiscourseApiError(422, 'refused');
      await queue.enqueue('logout', '1');
      await worker.drain();
      expect(await rows()).toEqual([
        expect.objectContaining({ status: 'failed', attempts: 1, lastError: 'refused' }),
      ]);
    });

    it('waits out a 429 without costing an attempt', async () => {
      failure = new DiscourseRateLimitError('slow down', 30);
      await queue.enqueue('sync', '1');
      await worker.drain();
      const [row] = await rows();
      expect(row).toMatchObject({ status: 'pending', attempts: 0, lastError: 'slow down' });
      expect(row.runAt - Date.now()).toBeGreaterThan(29_000);
    });

    it('takes back a job whose lease ran out (a worker died mid-delivery)', async () => {
      await queue.enqueue('sync', '1');
      await jobs.update({ discordId: '1' }, { status: 'running', lockedUntil: 1, dedupeKey: null });
      await worker.drain();
      expect(delivered).toEqual(['sync:1']);
      expect(await rows()).toEqual([]);
    });

    it('leaves a job alone while another worker holds its lease', async () => {
      await queue.enqueue('sync', '1');
      await jobs.update(
        { discordId: '1' },
        { status: 'running', lockedUntil: Date.now() + 60_000 },
      );
      await worker.drain();
      expect(delivered).toEqual([]);
    });

    it('delivers on enqueue once started, and does nothing once stopped', async () => {
      worker.onApplicationBootstrap();
      await queue.enqueue('sync', '3');
      for (let i = 0; i < 200 && delivered.length === 0; i++) await sleep(10);
      expect(delivered).toEqual(['sync:3']);
      await worker.onModuleDestroy();
      await queue.enqueue('sync', '4');
      await worker.drain();
      expect(delivered).toEqual(['sync:3']);
      expect(await rows()).toEqual([expect.objectContaining({ discordId: '4' })]);
    });
  });

  describe('a job written already claimed', () => {
    const twoForums = settingsFixture({
      sync: { leaseMs: 60_000 },
      forums: ['one', 'two'].map((name) => ({
        name,
        url: `https://${name}.example.com/`,
        secret: `${name}-forum-secret-0123456789`,
        api: { key: 'api-key-0123456789' },
      })),
    });
    let queue: DatabaseSyncQueue;
    let worker: DatabaseSyncWorker;
    let links: ForumLinks;
    beforeEach(() => {
      links = new ForumLinks(dataSource.getRepository(DiscourseConnectForumLinkEntity));
      core = new SyncDeliveryCore(
        users,
        admin,
        twoForums,
        new DiscourseConnectActionsService(),
        links,
      );
      queue = new DatabaseSyncQueue(jobs, twoForums);
      worker = new DatabaseSyncWorker(jobs, queue, twoForums, core);
    });
    afterEach(() => worker.onModuleDestroy());

    const writeClaimed = (discordId: string) =>
      dataSource.transaction((manager) => queue.enqueueClaimed('sync', discordId, manager));

    it('is only written by a process whose worker delivers the outbox, and not for a kind with an opposite', async () => {
      expect(await writeClaimed('1')).toBeNull();
      worker.onApplicationBootstrap();
      expect(
        await dataSource.transaction((m) => queue.enqueueClaimed('suspend', '1', m)),
      ).toBeNull();
      expect(await writeClaimed('1')).toHaveLength(2);
    });

    it('is running under a lease, carries the link read with it, and is delivered after the commit without a claim or a read', async () => {
      worker.onApplicationBootstrap();
      await links.record('one', '1', { status: 'linked', account: { id: 7, username: 'seven' } });
      await links.record('two', '1', { status: 'linked' });
      const before = Date.now();
      const claimed = (await writeClaimed('1'))!;
      expect(claimed.map((r) => [r.forum, r.link?.status, r.link?.forumUserId])).toEqual([
        ['one', 'linked', 7],
        ['two', 'linked', null],
      ]);
      const stored = await rows();
      expect(stored.map((r) => [r.id, r.status, r.dedupeKey])).toEqual(
        claimed.map((r) => [r.id, 'running', null]),
      );
      expect(stored[0].lockedUntil).toBeGreaterThanOrEqual(before + 60_000);
      // Not for the poll while its lease holds.
      await worker.drain();
      expect(delivered).toEqual([]);

      const find = jest.spyOn(links, 'find');
      recent['1'] = { discordId: '1', name: 'as written' };
      queue.deliverClaimed(claimed);
      for (let i = 0; i < 200 && delivered.length < 2; i++) await sleep(10);
      expect(delivered).toEqual(['sync:1', 'sync:1']);
      expect(find).not.toHaveBeenCalled();
      expect(reads).toEqual([]);
      for (let i = 0; i < 200 && (await rows()).length > 0; i++) await sleep(10);
      expect(await rows()).toEqual([]);
    });

    it('is absorbed by a job of its kind already waiting for the member on that forum', async () => {
      await queue.enqueue('sync', '1', { forum: 'two' });
      // Waiting for its next try (a failed one before).
      await jobs.update({ discordId: '1' }, { runAt: Date.now() + 60_000, attempts: 1 });
      worker.onApplicationBootstrap();
      const claimed = (await writeClaimed('1'))!;
      expect(claimed.map((r) => r.forum)).toEqual(['one']);
      expect((await rows()).map((r) => [r.forum, r.status])).toEqual([
        ['two', 'pending'],
        ['one', 'running'],
      ]);
    });

    it('whose process stopped before delivering it is delivered by the poll once its lease ran out, reading the member', async () => {
      worker.onApplicationBootstrap();
      await links.record('one', '1', { status: 'linked' });
      await links.record('two', '1', { status: 'linked' });
      await writeClaimed('1');
      await jobs.update({ discordId: '1' }, { lockedUntil: 1 });
      await worker.drain();
      expect(delivered).toEqual(['sync:1', 'sync:1']);
      expect(reads).toEqual(['1', '1']);
      expect(await rows()).toEqual([]);
    });

    it('not delivered yet when the worker stops goes back to the queue at once', async () => {
      worker.onApplicationBootstrap();
      await links.record('one', '1', { status: 'linked' });
      await links.record('two', '1', { status: 'linked' });
      const claimed = (await writeClaimed('1'))!;
      queue.deliverClaimed(claimed); // the first one is being delivered...
      await worker.onModuleDestroy(); // ...when the worker stops
      expect(delivered).toEqual(['sync:1']);
      expect((await rows()).map((r) => [r.id, r.status, r.lockedUntil, r.dedupeKey])).toEqual([
        [claimed[1].id, 'pending', null, 'sync:two:1'],
      ]);
    });

    it('whose lease was taken back before its turn is left to the queue', async () => {
      worker.onApplicationBootstrap();
      await links.record('one', '1', { status: 'linked' });
      await links.record('two', '1', { status: 'linked' });
      const claimed = (await writeClaimed('1'))!;
      // The worker was busy past half the lease, and the lease of the first row was taken back.
      for (const row of claimed) row.lockedUntil = Date.now() + 1000;
      await jobs.update({ id: claimed[0].id }, { status: 'pending', lockedUntil: null });
      await jobs.update({ id: claimed[1].id }, { lockedUntil: claimed[1].lockedUntil! });
      queue.deliverClaimed(claimed);
      for (let i = 0; i < 200 && delivered.length < 1; i++) await sleep(10);
      await worker.onModuleDestroy();
      // The second one renewed its lease and was delivered; the first waits for the poll.
      expect(delivered).toEqual(['sync:1']);
      expect((await rows()).map((r) => [r.id, r.status])).toEqual([[claimed[0].id, 'pending']]);
    });
  });

  describe('SyncOutboxRelay', () => {
    let queue: HandOverQueue;
    let relay: SyncOutboxRelay;
    beforeEach(() => {
      queue = new HandOverQueue(jobs, settings);
      relay = new SyncOutboxRelay(jobs, queue, settings);
    });

    it('hands each row over and deletes it; the database worker stays idle', async () => {
      await queue.enqueue('sync', '1');
      await queue.enqueue('logout', '2');
      await new DatabaseSyncWorker(jobs, queue, settings, core).drain();
      expect(await rows()).toHaveLength(2);
      await relay.drain();
      expect(queue.handedOver).toEqual(['sync:1', 'logout:2']);
      expect(delivered).toEqual([]);
      expect(await rows()).toEqual([]);
    });

    it('keeps a row Redis did not take, to relay it later (never failed for that)', async () => {
      queue.down = true;
      await queue.enqueue('sync', '1');
      for (let i = 0; i < 5; i++) {
        await jobs.update({ discordId: '1' }, { runAt: 0 });
        await relay.drain();
      }
      const [row] = await rows();
      expect(row).toMatchObject({ status: 'pending', attempts: 5 });
      expect(row.lastError).toContain('ECONNREFUSED');
      queue.down = false;
      await jobs.update({ discordId: '1' }, { runAt: 0 });
      await relay.drain();
      expect(queue.handedOver).toEqual(['sync:1']);
      expect(await rows()).toEqual([]);
    });
  });
});
