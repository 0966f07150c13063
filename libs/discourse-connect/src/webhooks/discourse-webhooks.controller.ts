import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { Controller, Headers, HttpCode, HttpStatus, Post, Req, UseFilters } from '@nestjs/common';
import { DISCOURSE_CONNECT_ROUTES as ROUTES } from '../http/discourse-connect-routes';
import { InjectRepository } from '@nestjs/typeorm';
import { UNSUPPORTED_BODY_MESSAGE, type DiscourseConnectRequest } from '../http/http-adapter-glue';
import { EntityManager, Repository } from 'typeorm';
import { DiscourseConnectExceptionFilter } from '../http/discourse-connect-exception.filter';
import { DiscourseConnectHttpException } from '../common/discourse-connect.exceptions';
import { DiscourseConnectSettings, ResolvedForum } from '../config/discourse-connect.settings';
import { DiscourseConnectActionsService } from '../hooks/actions.service';
import { DiscourseConnectEvents, ForumUserChangedEvent } from '../hooks/discourse-connect.events';
import { UsersService } from '../users/users.service';
import { ForumLinks } from '../users/forum-links';
import { isUniqueViolation } from '../common/database-errors';
import { UserStore } from '../users/user-store.interface';
import { DiscourseMemberLifecycle } from '../lifecycle/member-lifecycle.service';
import { DiscourseConnectWebhookEventEntity } from './webhook-event.entity';
import { checkWebhookBody, parseEventId, type WebhookUser } from './webhook-body';
import {
  DiscourseConnectWebhookBodyEntity,
  DiscourseConnectWebhookUserEntity,
} from './webhook-replay.entities';

const SIGNATURE = /^sha256=([0-9a-f]{64})$/;
const USER_EVENTS = new Set([
  'user_created',
  'user_updated',
  // Member lifecycle: their bodies are applied like the others; the header never decides alone.
  'user_suspended',
  'user_unsuspended',
  'user_destroyed',
]);
/** Largest webhook body accepted (Discourse's user bodies are a few KB). */
const MAX_BODY_BYTES = 64 * 1024;
/**
 * How long a processed body is remembered (refused when sent again). Pruned by the age of the
 * body record itself, never together with event ids.
 */
export const WEBHOOK_BODY_RETENTION_MS = 7 * 24 * 60 * 60 * 1000;
/**
 * How long a delivery's event id is remembered (refused when sent again). Pruned by the age of the
 * event record, in each delivery's transaction, so `discourse_connect_webhook_events` holds about a
 * week of deliveries instead of growing forever; replays of older bodies are still refused by the
 * ordering key of their forum user.
 */
export const WEBHOOK_EVENT_RETENTION_MS = 7 * 24 * 60 * 60 * 1000;

type Outcome = 'ok' | 'ignored' | 'stale';

const utf8 = new TextDecoder('utf-8', { fatal: true });
const isUtf8 = (bytes: Buffer): boolean => {
  try {
    utf8.decode(bytes);
    return true;
  } catch {
    return false;
  }
};

const refuse = (status: HttpStatus, message: string, reason: string) =>
  new DiscourseConnectHttpException(status, 'Webhook refused', message, reason);

/**
 * `POST /discourse/webhooks`: the forum's user webhooks. The signature (`X-Discourse-Event-Signature`,
 * HMAC-SHA256 of the raw body) is checked in constant time. Only the body is signed, so a replay is
 * judged by the body: each signed body is processed once (by SHA-256, for
 * `WEBHOOK_BODY_RETENTION_MS`), and a body older than the state stored for its forum user (by
 * `updated_at`/`last_seen_at`, see `checkWebhookBody`) is not applied. Each event id is also taken once
 * (for `WEBHOOK_EVENT_RETENTION_MS`).
 * Needs the raw body: create the app with `NestFactory.create(AppModule, { rawBody: true })`.
 */
@Controller(ROUTES.webhooks.controller)
@UseFilters(DiscourseConnectExceptionFilter)
export class DiscourseWebhooksController {
  constructor(
    private readonly settings: DiscourseConnectSettings,
    private readonly users: UsersService,
    private readonly actions: DiscourseConnectActionsService,
    private readonly links: ForumLinks,
    @InjectRepository(DiscourseConnectWebhookEventEntity)
    private readonly deliveries: Repository<DiscourseConnectWebhookEventEntity>,
    private readonly lifecycle: DiscourseMemberLifecycle,
  ) {}

  @Post(ROUTES.webhooks.path)
  @HttpCode(200)
  async receive(
    @Req() req: DiscourseConnectRequest,
    @Headers('x-discourse-instance') instance: string | undefined,
    @Headers('x-discourse-event') event: string | undefined,
    @Headers('x-discourse-event-id') eventId: string | undefined,
    @Headers('x-discourse-event-signature') signature: string | undefined,
  ): Promise<{ status: string }> {
    const forum = this.forumFor(instance);
    if (!forum?.webhookSecret) {
      throw refuse(
        HttpStatus.NOT_FOUND,
        'Webhooks from this forum are not configured here.',
        'webhook_not_configured',
      );
    }
    if (!req.rawBody) {
      throw refuse(
        HttpStatus.UNSUPPORTED_MEDIA_TYPE,
        UNSUPPORTED_BODY_MESSAGE,
        'webhook_without_raw_body',
      );
    }
    if (req.rawBody.length > MAX_BODY_BYTES) {
      throw refuse(
        HttpStatus.PAYLOAD_TOO_LARGE,
        'The webhook body is too large.',
        'webhook_body_too_large',
      );
    }
    const match = SIGNATURE.exec(signature ?? '');
    const expected = createHmac('sha256', forum.webhookSecret).update(req.rawBody).digest();
    if (!match || !timingSafeEqual(expected, Buffer.from(match[1], 'hex'))) {
      throw refuse(
        HttpStatus.FORBIDDEN,
        'The webhook signature does not match.',
        'webhook_bad_signature',
      );
    }
    const deliveryId = parseEventId(eventId);
    if (!deliveryId || !event || !/^[a-z_]{1,64}$/.test(event)) {
      throw refuse(
        HttpStatus.BAD_REQUEST,
        'The webhook has no valid event name or id.',
        'webhook_bad_headers',
      );
    }
    if (!isUtf8(req.rawBody)) {
      throw refuse(
        HttpStatus.BAD_REQUEST,
        'The webhook body is not valid UTF-8.',
        'webhook_invalid_utf8',
      );
    }
    if (event === 'ping') return { status: 'pong' };

    // The body is checked before anything is recorded, so a refused one leaves nothing behind.
    const applies = USER_EVENTS.has(event);
    const checked = checkWebhookBody(req.body, applies);
    if (!checked.ok) throw refuse(HttpStatus.BAD_REQUEST, checked.problem, 'webhook_bad_body');
    const user = checked.user;
    const bodySha256 = createHash('sha256').update(req.rawBody).digest('hex');

    const record = async (manager: EntityManager, store: UserStore): Promise<Outcome> => {
      const now = Date.now();
      await manager
        .createQueryBuilder()
        .delete()
        .from(DiscourseConnectWebhookBodyEntity)
        .where('received_at < :cutoff', { cutoff: now - WEBHOOK_BODY_RETENTION_MS })
        .execute();
      await manager
        .createQueryBuilder()
        .delete()
        .from(DiscourseConnectWebhookEventEntity)
        .where('received_at < :cutoff', { cutoff: now - WEBHOOK_EVENT_RETENTION_MS })
        .execute();
      await manager.insert(DiscourseConnectWebhookEventEntity, {
        forum: forum.name,
        eventId: deliveryId,
        event,
        receivedAt: now,
      });
      await manager.insert(DiscourseConnectWebhookBodyEntity, {
        forum: forum.name,
        bodySha256,
        receivedAt: now,
      });
      if (!applies || !user) return 'ignored';
      if (!(await this.advance(manager, forum.name, user, now))) return 'stale';
      if (user.discordId) {
        // The forum named the member: they have an account there (per forum), and on the user.
        await this.links.record(
          forum.name,
          user.discordId,
          { status: 'linked', account: { id: user.id, username: user.username } },
          { manager, now },
        );
        if (store.linkForumAccount)
          await store.linkForumAccount(user.discordId, { id: user.id, username: user.username });
      }
      return 'ok';
    };

    let outcome: Outcome;
    try {
      // One transaction: the delivery id, the body record, the ordering key and the forum link are
      // written together or not at all.
      outcome = await this.users.inStoreTransaction(user?.discordId ?? null, (store, manager) =>
        manager
          ? record(manager, store)
          : this.deliveries.manager.transaction((own) => record(own, store)),
      );
    } catch (error) {
      if (!isUniqueViolation(error)) throw error;
      throw refuse(
        HttpStatus.CONFLICT,
        'This webhook delivery was already received.',
        'webhook_replay',
      );
    }
    if (outcome !== 'ok' || !user) return { status: outcome };
    // Member lifecycle: suspension, deletion, anonymization, from the body (or confirmed by the forum).
    await this.lifecycle.applyForumWebhook(forum.name, event, user);
    const payload: ForumUserChangedEvent = {
      event: event as ForumUserChangedEvent['event'],
      forum: forum.name,
      forumUserId: user.id,
      forumUsername: user.username,
      discordId: user.discordId,
    };
    this.actions.emit(DiscourseConnectEvents.ForumUserChanged, payload);
    return { status: 'ok' };
  }

  /**
   * Moves the forum user's ordering key to this body's, unless the key stored is newer: false then
   * (an older state, not applied). Equal keys apply (bodies without timestamps all have the same,
   * null, key; an exact replay is already refused by the body record). A conditional UPDATE, so two
   * deliveries racing on PostgreSQL are ordered by the row lock.
   */
  private async advance(
    manager: EntityManager,
    forum: string,
    user: WebhookUser,
    now: number,
  ): Promise<boolean> {
    await manager
      .createQueryBuilder()
      .insert()
      .into(DiscourseConnectWebhookUserEntity)
      .values({ forum, forumUserId: user.id, version: user.version, appliedAt: now })
      .orIgnore()
      .execute();
    const update = manager
      .createQueryBuilder()
      .update(DiscourseConnectWebhookUserEntity)
      .set({ version: user.version, appliedAt: now })
      .where('forum = :forum AND forum_user_id = :id', { forum, id: user.id });
    if (user.version === null) update.andWhere('version IS NULL');
    else update.andWhere('(version IS NULL OR version <= :version)', { version: user.version });
    const result = await update.execute();
    return (result.affected ?? 0) > 0;
  }

  private forumFor(instance: string | undefined): ResolvedForum | undefined {
    if (!instance) return this.settings.forums.length === 1 ? this.settings.forums[0] : undefined;
    const origin = (() => {
      try {
        return new URL(instance).origin;
      } catch {
        return undefined;
      }
    })();
    return this.settings.forums.find((f) => f.origin === origin);
  }
}
