import { Logger } from '@nestjs/common';
import { DataSource, type Repository } from 'typeorm';
import type { DiscourseAdminService } from '../admin/discourse-admin.service';
import { DiscourseApiError, DiscourseRateLimitError } from '../admin/discourse-api.errors';
import { DiscourseConnectActionsService } from '../hooks/actions.service';
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
  const users = {
    findByDiscordId: async (discordId: string) => ({ discordId }),
  } as unknown as UsersService;

  const rows = () => jobs.find({ order: { id: 'ASC' } });

  beforeEach(async () => {
    dataSource = await migratedSqlite();
    jobs = dataSource.getRepository(DiscourseConnectSyncJobEntity);
    failure = undefined;
    delivered = [];
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
