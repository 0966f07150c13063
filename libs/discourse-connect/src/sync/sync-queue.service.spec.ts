import type { DataSource } from 'typeorm';
import { migratedSqlite, settingsFixture } from '../../test-support/fixtures';
import { DatabaseSyncQueue } from './database-sync-queue';
import { DiscourseConnectSyncJobEntity } from './sync-job.entity';

/** Member lifecycle jobs in the database queue (a real, migrated SQLite database). */
describe('SyncQueue: member lifecycle jobs', () => {
  let db: DataSource;
  let queue: DatabaseSyncQueue;
  const ID = '123456789012345678';
  const OTHER = '223456789012345678';

  beforeEach(async () => {
    db = await migratedSqlite();
    queue = new DatabaseSyncQueue(
      db.getRepository(DiscourseConnectSyncJobEntity),
      settingsFixture(),
    );
  });
  afterEach(() => db.destroy());

  const pending = async () =>
    (await db.getRepository(DiscourseConnectSyncJobEntity).find({ order: { id: 'ASC' } })).map(
      (j) => `${j.kind}:${j.discordId}`,
    );

  it('a waiting suspension and its lifting cancel each other: the latest stays', async () => {
    await queue.enqueue('suspend', ID);
    await queue.enqueue('sync', ID);
    await queue.enqueue('unsuspend', ID);
    expect(await pending()).toEqual([`sync:${ID}`, `unsuspend:${ID}`]);
    await queue.enqueue('suspend', ID);
    expect(await pending()).toEqual([`sync:${ID}`, `suspend:${ID}`]);
  });

  it('cancelPending removes the waiting jobs of one member only (all, or some kinds)', async () => {
    await queue.enqueue('sync', ID);
    await queue.enqueue('logout', ID);
    await queue.enqueue('sync', OTHER);
    await queue.cancelPending(ID, { kinds: ['logout'] });
    expect(await pending()).toEqual([`sync:${ID}`, `sync:${OTHER}`]);
    await queue.cancelPending(ID);
    expect(await pending()).toEqual([`sync:${OTHER}`]);
  });

  it('keeps a failed job when cancelling (it stays visible to failed --retry)', async () => {
    await queue.enqueue('sync', ID);
    await db
      .getRepository(DiscourseConnectSyncJobEntity)
      .update({ discordId: ID }, { status: 'failed', dedupeKey: null });
    await queue.cancelPending(ID);
    expect(await pending()).toEqual([`sync:${ID}`]);
  });
});
