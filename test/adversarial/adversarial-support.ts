import { DataSource } from 'typeorm';
import type { DiscourseConnectModuleOptions } from 'nestjs-discourse-connect/internal';
import type { HttpTimeouts } from '../../src/http-adapter';
import type { TestBrowser } from '../support/browser';
import {
  startHarness,
  type Harness,
  type HttpAdapterName,
  API_KEY,
  WEBHOOK_SECRET,
} from '../support/harness';
import { waitFor } from '../support/wait';

export { waitFor };

/**
 * Shared by the adversarial suite: an app with the forum's admin API and webhooks configured (so a
 * wrongful write would also show up as a sync job or an admin API call), and a snapshot of
 * everything an attack could have written locally or sent to the forum.
 */

export async function startAdversarialHarness(
  adapter: HttpAdapterName,
  extra: { timeouts?: HttpTimeouts } = {},
): Promise<Harness> {
  return startHarness('forRoot', {
    adapter,
    timeouts: extra.timeouts,
    forumOptions: {
      apiKey: API_KEY,
      apiRateLimitPerMinute: 0,
      authOverridesEmail: true,
      authOverridesName: true,
    },
    moduleOptions: (o: DiscourseConnectModuleOptions): DiscourseConnectModuleOptions => ({
      ...o,
      forums: o.forums.map((f) => ({
        ...f,
        api: { key: API_KEY, timeoutMs: 2000 },
        webhookSecret: WEBHOOK_SECRET,
      })),
      sync: { ratePerMinute: 6000, pollIntervalMs: 50, backoffBaseMs: 100, backoffMaxMs: 400 },
    }),
  });
}

/** Whether `browser` is signed in: the forum link sends a signed-in person through the forum's SSO. */
export async function isSignedIn(
  h: Harness,
  browser: TestBrowser,
  headers: Record<string, string> = {},
): Promise<boolean> {
  const res = await browser.request(`${h.appUrl}/discourse/forum`, { headers });
  return res.headers.get('location')!.includes('/session/sso?');
}

export interface Snapshot {
  users: unknown[];
  jobs: unknown[];
  webhookEvents: number;
  /** Signed bodies recorded as processed, and the ordering key per forum user. */
  webhookBodies: number;
  webhookUsers: unknown[];
  sessions: number;
  forum: {
    ssoLogins: number;
    ssoErrors: number;
    syncSsoCalls: number;
    apiRequests: number;
    apiLogOuts: number;
    users: string;
  };
}

const db = (h: Harness) => h.app.get(DataSource);

/** Everything an attack could change: local rows, queued jobs, and what the forum received. */
export async function snapshot(h: Harness): Promise<Snapshot> {
  const [
    users,
    jobs,
    [{ n: webhookEvents }],
    [{ n: webhookBodies }],
    webhookUsers,
    [{ n: sessions }],
  ] = await Promise.all([
    db(h).query('SELECT * FROM discourse_connect_users ORDER BY discord_id'),
    db(h).query('SELECT * FROM discourse_connect_sync_jobs ORDER BY id'),
    db(h).query('SELECT COUNT(*) AS n FROM discourse_connect_webhook_events'),
    db(h).query('SELECT COUNT(*) AS n FROM discourse_connect_webhook_bodies'),
    db(h).query('SELECT * FROM discourse_connect_webhook_users ORDER BY forum, forum_user_id'),
    db(h).query('SELECT COUNT(*) AS n FROM discourse_connect_sessions'),
  ]);
  const s = h.forum.stats;
  return {
    users,
    jobs,
    webhookEvents: Number(webhookEvents),
    webhookBodies: Number(webhookBodies),
    webhookUsers,
    sessions: Number(sessions),
    forum: {
      ssoLogins: s.ssoLogins,
      ssoErrors: s.ssoErrors,
      syncSsoCalls: s.syncSsoCalls,
      apiRequests: s.apiRequests,
      apiLogOuts: s.apiLogOuts,
      users: JSON.stringify(h.forum.users),
    },
  };
}

/**
 * Nothing was written locally (users, sync jobs, webhook deliveries, bodies and ordering keys) and nothing was sent to the
 * forum (no sign-in, no admin API call). Sessions may be created by a refused request (an
 * anonymous visitor gets one when sign-in starts), so they are compared only when asked.
 */
export async function expectNothingWritten(
  h: Harness,
  before: Snapshot,
  opts: { sessions?: boolean } = {},
): Promise<void> {
  // Give a wrongly queued job the chance to reach the forum before looking.
  await new Promise((r) => setTimeout(r, 20));
  const after = await snapshot(h);
  expect(after.users).toEqual(before.users);
  expect(after.jobs).toEqual(before.jobs);
  expect(after.webhookEvents).toBe(before.webhookEvents);
  expect(after.webhookBodies).toBe(before.webhookBodies);
  expect(after.webhookUsers).toEqual(before.webhookUsers);
  expect(after.forum).toEqual(before.forum);
  if (opts.sessions) expect(after.sessions).toBe(before.sessions);
}

/** A readable error page or JSON body: no stack trace, no secret, no source path. */
export function expectCleanErrorBody(body: string): void {
  expect(body).not.toMatch(/\bat \S+ \(|\.ts:\d+|node_modules|Error: /);
  expect(body).not.toContain(WEBHOOK_SECRET);
  expect(body).not.toContain(API_KEY);
}

export { API_KEY, WEBHOOK_SECRET };
