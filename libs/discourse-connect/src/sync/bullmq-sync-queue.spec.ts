import { bullJob, combinedCounts, failedJobRecord } from './bullmq-sync-queue';

describe('BullMqSyncQueue pure parts', () => {
  const data = { kind: 'sync' as const, discordId: '42', forum: 'forum.example.com' };

  it('gives the delivery core the job with its string id and attempts made', () => {
    expect(bullJob({ id: '17', data, attemptsMade: 2 })).toEqual({
      id: '17',
      ...data,
      attemptsMade: 2,
    });
    expect(bullJob({ id: undefined, data, attemptsMade: 0 }).id).toBe('');
  });

  it('reports a failed BullMQ job like a failed row', () => {
    expect(
      failedJobRecord({ id: '9', data, attemptsMade: 10, failedReason: 'answered 500' }),
    ).toEqual({
      id: '9',
      ...data,
      attempts: 10,
      lastError: 'answered 500',
    });
    expect(
      failedJobRecord({ id: undefined, data, attemptsMade: 1, failedReason: undefined as never }),
    ).toMatchObject({ id: '', lastError: null });
  });

  it('counts rows not yet handed over as pending, beside BullMQ’s own counts', () => {
    expect(
      combinedCounts(
        { pending: 1, running: 2, failed: 3 },
        { waiting: 4, delayed: 5, prioritized: 6, 'waiting-children': 7, active: 8, failed: 9 },
      ),
    ).toEqual({ pending: 1 + 2 + 4 + 5 + 6 + 7, running: 8, failed: 12 });
    expect(combinedCounts({ pending: 0, running: 0, failed: 0 }, {})).toEqual({
      pending: 0,
      running: 0,
      failed: 0,
    });
  });
});
