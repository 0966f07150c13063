import { createHmac } from 'node:crypto';
import type { DiscourseSimulator, SimForumUser } from './discourse-simulator';

/** Where the forum's webhook posts, and the secret it signs with (Admin → API → Webhooks). */
export interface SimWebhookConfig {
  url: string;
  /** Signs every delivery (`X-Discourse-Event-Signature`); Discourse leaves the header out when blank. */
  secret: string;
}

/** Discourse's `user` webhook events the simulator sends (`WebHookEventType::TYPES`; there is no anonymization event). */
export type SimWebhookEvent =
  'user_created' | 'user_updated' | 'user_destroyed' | 'user_suspended' | 'user_unsuspended';

/** One delivery attempt as the forum saw it. */
export interface SimWebhookDelivery {
  event: SimWebhookEvent;
  /** `X-Discourse-Event-Id`; a redelivery keeps the id of the original. */
  id: number;
  /** HTTP status of the answer; 0 when the URL could not be reached (see `error`). */
  status: number;
  error?: string;
  /** True for a delivery sent by `redeliverWebhook`. */
  redelivery?: boolean;
}

interface StoredEvent {
  event: SimWebhookEvent;
  id: number;
  body: string;
  /** Forum URL at the time of the event (`X-Discourse-Instance`). */
  instance: string;
  /** The hook the event was made for (a redelivery goes to the same place, as in Discourse). */
  hook: SimWebhookConfig;
}

const DELIVERY_TIMEOUT_MS = 10_000;
const USER_AGENT = 'Discourse/3.4.0 (simulated)';

/**
 * Discourse's outgoing webhooks for the `user` event type, as `WebHookEmitter` sends them: JSON body
 * `{"user":{…}}`, headers `X-Discourse-Instance`, `-Event-Id`, `-Event-Type`, `-Event` and
 * `-Event-Signature: sha256=<hex HMAC of the exact body>`. Delivered in the background; every
 * outcome is recorded in `stats.webhookDeliveries`, never thrown.
 */
export class SimulatedWebhooks {
  private nextEventId = 1;
  private readonly events = new Map<number, StoredEvent>();
  private readonly inFlight = new Set<Promise<void>>();

  constructor(private readonly forum: DiscourseSimulator) {}

  reset(): void {
    this.nextEventId = 1;
    this.events.clear();
  }

  /** Queues a `user` event if a webhook is configured and `knobs.webhooksEnabled`. */
  userEvent(event: SimWebhookEvent, user: SimForumUser): void {
    const hook = this.forum.webhooks;
    if (!hook || !hook.url || !this.forum.knobs.webhooksEnabled) return;
    const id = this.nextEventId++;
    const body = JSON.stringify({
      user: webhookUserJson(user, (g) => this.forum.adminApi.groupId(g), this.forum.now()),
    });
    const stored: StoredEvent = {
      event,
      id,
      body,
      instance: this.forum.forumRootUrl,
      hook: { ...hook },
    };
    this.events.set(id, stored);
    this.deliver(stored, false);
  }

  /** Sends a recorded event again, same id, same body, same signature (a replay). */
  redeliver(eventId: number): void {
    const stored = this.events.get(eventId);
    if (!stored) throw new Error(`No webhook event ${eventId} was recorded`);
    this.deliver(stored, true);
  }

  /** Resolves when every delivery in flight (including ones started meanwhile) has finished. */
  async flush(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  private deliver(e: StoredEvent, redelivery: boolean): void {
    const headers: Record<string, string> = {
      Accept: '*/*',
      'Content-Type': 'application/json',
      'User-Agent': USER_AGENT,
      'X-Discourse-Instance': e.instance,
      'X-Discourse-Event-Id': String(e.id),
      'X-Discourse-Event-Type': 'user',
      'X-Discourse-Event': e.event,
    };
    if (e.hook.secret) {
      headers['X-Discourse-Event-Signature'] =
        `sha256=${createHmac('sha256', e.hook.secret).update(e.body).digest('hex')}`;
    }
    const record = (status: number, error?: string) => {
      const d: SimWebhookDelivery = { event: e.event, id: e.id, status };
      if (error !== undefined) d.error = error;
      if (redelivery) d.redelivery = true;
      this.forum.stats.webhookDeliveries.push(d);
    };
    const p = (async () => {
      try {
        // Like Discourse's "Redeliver": the stored headers and body, to the hook's current URL.
        const url = redelivery && this.forum.webhooks?.url ? this.forum.webhooks.url : e.hook.url;
        const res = await fetch(url, {
          method: 'POST',
          headers,
          body: e.body,
          redirect: 'manual',
          signal: AbortSignal.timeout(DELIVERY_TIMEOUT_MS),
        });
        await res.arrayBuffer().catch(() => undefined);
        record(res.status);
      } catch (err) {
        const cause = (err as { cause?: { code?: string } })?.cause?.code;
        record(0, cause ?? (err as Error)?.message ?? String(err));
      }
    })();
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }
}

/** What `WebHookUserSerializer` puts under `user` (the fields the simulator models). */
function webhookUserJson(
  u: SimForumUser,
  groupId: (name: string) => number,
  now: number,
): Record<string, unknown> {
  // UserSerializer shows `suspended_till` and `suspend_reason` only while the user is suspended.
  const suspended = typeof u.suspendedTill === 'number' && u.suspendedTill > now;
  return {
    ...(suspended
      ? {
          suspended_till: new Date(u.suspendedTill!).toISOString(),
          suspend_reason: u.suspendReason ?? null,
        }
      : {}),
    id: u.id,
    username: u.username,
    name: u.name,
    avatar_template:
      u.avatarUrl ??
      `/letter_avatar_proxy/v4/letter/${u.username[0]?.toLowerCase() ?? 'x'}/9de0a6/{size}.png`,
    email: u.email,
    external_id: u.externalId,
    admin: u.admin,
    moderator: u.moderator,
    active: u.active,
    groups: u.groups.map((name) => ({ id: groupId(name), name, automatic: false })),
    ...(u.updatedAt !== undefined ? { updated_at: new Date(u.updatedAt).toISOString() } : {}),
  };
}
