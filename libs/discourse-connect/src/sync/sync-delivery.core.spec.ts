import { Logger } from '@nestjs/common';
import { EventEmitter2 } from '@nestjs/event-emitter';
import type { DiscourseAdminService } from '../admin/discourse-admin.service';
import {
  DiscourseApiError,
  DiscourseApiNotConfiguredError,
  DiscourseRateLimitError,
} from '../admin/discourse-api.errors';
import { DiscourseConnectActionsService } from '../hooks/actions.service';
import { DiscourseConnectEvents, type SyncJobEvent } from '../hooks/discourse-connect.events';
import type { UsersService } from '../users/users.service';
import {
  classifySyncFailure,
  SyncDeliveryCore,
  syncBackoffMs,
  syncErrorText,
  type SyncDeliveryJob,
  type SyncDeliveryOutcome,
} from './sync-delivery.core';
import { settingsFixture } from '../../test-support/fixtures';

const sync = { maxAttempts: 4, backoffBaseMs: 1000, backoffMaxMs: 10_000 };

describe('syncBackoffMs', () => {
  it('doubles from the base, capped at the maximum, within ±20 % jitter', () => {
    for (let attempts = 1; attempts <= 12; attempts++) {
      const nominal = Math.min(10_000, 1000 * 2 ** (attempts - 1));
      expect(syncBackoffMs(attempts, sync, () => 0)).toBe(Math.round(nominal * 0.8));
      expect(syncBackoffMs(attempts, sync, () => 0.5)).toBe(nominal);
      expect(syncBackoffMs(attempts, sync, () => 0.999999)).toBe(Math.round(nominal * 1.2));
      const random = syncBackoffMs(attempts, sync);
      expect(random).toBeGreaterThanOrEqual(nominal * 0.8);
      expect(random).toBeLessThanOrEqual(nominal * 1.2);
    }
  });

  it('waits the base before the first retry (attempts 0 or 1)', () => {
    expect(syncBackoffMs(0, sync, () => 0.5)).toBe(1000);
    expect(syncBackoffMs(1, sync, () => 0.5)).toBe(1000);
    expect(syncBackoffMs(2, sync, () => 0.5)).toBe(2000);
  });
});

describe('syncErrorText', () => {
  it('keeps the message, bounded to 500 characters', () => {
    expect(syncErrorText(new Error('boom'))).toBe('boom');
    expect(syncErrorText('plain')).toBe('plain');
    expect(syncErrorText(new Error('x'.repeat(800)))).toHaveLength(500);
  });
});

describe('classifySyncFailure', () => {
  const half = () => 0.5;

  it('a 429 pauses the queue for the forum’s wait and costs no attempt', () => {
    const error = new DiscourseRateLimitError('slow down', 12);
    expect(classifySyncFailure(error, 2, sync, half)).toEqual({
      status: 'rate-limited',
      attempts: 2,
      waitMs: 12_000,
      error: 'slow down',
      cause: error,
    });
    // Even on the last attempt: a rate limit never fails a job.
    expect(classifySyncFailure(error, 9, sync, half).status).toBe('rate-limited');
  });

  it.each([0, 500, 503])('retries a retryable failure (status %i) with the backoff', (status) => {
    const error = new DiscourseApiError(status, `answered ${status}`);
    expect(classifySyncFailure(error, 1, sync, half)).toEqual({
      status: 'retry',
      attempts: 2,
      delayMs: 2000,
      error: `answered ${status}`,
      cause: error,
    });
  });

  it('fails for good on the last attempt', () => {
    const error = new DiscourseApiError(500, 'down');
    expect(classifySyncFailure(error, 2, sync, half).status).toBe('retry');
    expect(classifySyncFailure(error, 3, sync, half)).toEqual({
      status: 'failed',
      attempts: 4,
      error: 'down',
      cause: error,
    });
  });

  it('fails at once on a refusal, a missing API key or an unexpected error', () => {
    for (const error of [
      new DiscourseApiError(422, 'refused'),
      new DiscourseApiError(403, 'forbidden'),
      new DiscourseApiNotConfiguredError('https://forum.example.com'),
      new TypeError('a bug'),
    ]) {
      expect(classifySyncFailure(error, 0, sync, half)).toMatchObject({
        status: 'failed',
        attempts: 1,
        error: error.message,
      });
    }
  });
});

describe('SyncDeliveryCore', () => {
  const settings = settingsFixture({
    sync: { maxAttempts: 3, backoffBaseMs: 100, backoffMaxMs: 1000 },
  });
  const forum = settings.forums[0].name;
  let failure: unknown;
  let calls: string[];
  let events: { event: string; payload: SyncJobEvent }[];
  let warnings: string[];
  let core: SyncDeliveryCore;

  const users = {
    findByDiscordId: async (id: string) => (id === 'gone' ? null : { discordId: id }),
  } as unknown as UsersService;
  const admin = {
    syncSso: async (user: { discordId: string }, forumName: string) => {
      calls.push(`sync ${user.discordId} ${forumName}`);
      if (failure) throw failure;
      return { id: 1, username: 'u' };
    },
    logOutByExternalId: async (id: string, forumName: string) => {
      calls.push(`logout ${id} ${forumName}`);
      if (failure) throw failure;
      return true;
    },
  } as unknown as DiscourseAdminService;

  const job = (extra: Partial<SyncDeliveryJob> = {}): SyncDeliveryJob => ({
    id: '7',
    kind: 'sync',
    discordId: '42',
    forum,
    attemptsMade: 0,
    ...extra,
  });

  beforeEach(() => {
    failure = undefined;
    calls = [];
    events = [];
    warnings = [];
    const emitter = new EventEmitter2({ wildcard: true });
    emitter.onAny((event, payload) => {
      events.push({ event: event as string, payload: payload as SyncJobEvent });
    });
    core = new SyncDeliveryCore(
      users,
      admin,
      settings,
      new DiscourseConnectActionsService(emitter),
    );
    jest
      .spyOn(Logger.prototype, 'warn')
      .mockImplementation((message: unknown) => void warnings.push(String(message)));
  });
  afterEach(() => jest.restoreAllMocks());

  it('delivers a sync and a log-out, records, then emits SyncSucceeded', async () => {
    const recorded: SyncDeliveryOutcome[] = [];
    const outcome = await core.run(job(), (o) => void recorded.push(o));
    await core.run(job({ id: 'b-1', kind: 'logout', attemptsMade: 1 }));
    expect(outcome).toEqual({ status: 'delivered', attempts: 1 });
    expect(recorded).toEqual([outcome]);
    expect(calls).toEqual([`sync 42 ${forum}`, `logout 42 ${forum}`]);
    expect(events).toEqual([
      {
        event: DiscourseConnectEvents.SyncSucceeded,
        payload: { jobId: '7', kind: 'sync', discordId: '42', forum, attempts: 1 },
      },
      {
        event: DiscourseConnectEvents.SyncSucceeded,
        payload: { jobId: 'b-1', kind: 'logout', discordId: '42', forum, attempts: 2 },
      },
    ]);
  });

  it('counts a sync for a member no longer there as delivered (nothing to push)', async () => {
    expect(await core.run(job({ discordId: 'gone' }))).toMatchObject({ status: 'delivered' });
    expect(calls).toEqual([]);
  });

  it('retries without an event or a log, with the configured backoff', async () => {
    failure = new DiscourseApiError(503, 'forum down');
    const outcome = await core.run(job({ attemptsMade: 1 }));
    expect(outcome).toMatchObject({ status: 'retry', attempts: 2, error: 'forum down' });
    const { delayMs } = outcome as { delayMs: number };
    expect(delayMs).toBeGreaterThanOrEqual(160);
    expect(delayMs).toBeLessThanOrEqual(240);
    expect(events).toEqual([]);
    expect(warnings).toEqual([]);
  });

  it('passes a 429 on as rate-limited, without an event', async () => {
    failure = new DiscourseRateLimitError('slow down', 3);
    expect(await core.run(job({ attemptsMade: 2 }))).toMatchObject({
      status: 'rate-limited',
      attempts: 2,
      waitMs: 3000,
    });
    expect(events).toEqual([]);
  });

  it('after the last attempt: records, logs "failed for good" and emits SyncFailed', async () => {
    failure = new DiscourseApiError(500, `boom ${'x'.repeat(600)}`);
    const order: string[] = [];
    const outcome = await core.run(job({ attemptsMade: 2 }), () => {
      order.push(`recorded, ${events.length} events`);
    });
    expect(outcome).toMatchObject({ status: 'failed', attempts: 3 });
    expect(order).toEqual(['recorded, 0 events']);
    const error = (outcome as { error: string }).error;
    expect(error).toHaveLength(500);
    expect(warnings).toEqual([`sync job 7 (sync for 42) failed for good: ${error}`]);
    expect(events).toEqual([
      {
        event: DiscourseConnectEvents.SyncFailed,
        payload: { jobId: '7', kind: 'sync', discordId: '42', forum, attempts: 3, error },
      },
    ]);
  });

  it('emits nothing when recording the outcome fails (the error propagates)', async () => {
    await expect(
      core.run(job(), () => {
        throw new Error('database gone');
      }),
    ).rejects.toThrow('database gone');
    expect(events).toEqual([]);
  });

  it('deliver() does the work only: no event, errors thrown as they are', async () => {
    await core.deliver({ kind: 'logout', discordId: '5', forum });
    failure = new DiscourseApiError(422, 'refused');
    await expect(core.deliver({ kind: 'sync', discordId: '5', forum })).rejects.toBe(failure);
    expect(calls).toEqual([`logout 5 ${forum}`, `sync 5 ${forum}`]);
    expect(events).toEqual([]);
    expect(core.backoff(1)).toBeGreaterThanOrEqual(80);
    expect(core.backoff(10)).toBeLessThanOrEqual(1200);
  });
});
