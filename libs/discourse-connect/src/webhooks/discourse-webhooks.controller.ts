import { createHmac, timingSafeEqual } from 'node:crypto';
import { Controller, Headers, HttpCode, HttpStatus, Post, Req, UseFilters } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { UNSUPPORTED_BODY_MESSAGE, type DiscourseConnectRequest } from '../http/http-adapter-glue';
import { Repository } from 'typeorm';
import { DiscourseConnectExceptionFilter } from '../common/discourse-connect-exception.filter';
import { DiscourseConnectHttpException } from '../common/discourse-connect.exceptions';
import { DiscourseConnectSettings, ResolvedForum } from '../config/discourse-connect.settings';
import { DiscourseConnectActionsService } from '../hooks/actions.service';
import { DiscourseConnectEvents, ForumUserChangedEvent } from '../hooks/discourse-connect.events';
import { UsersService } from '../users/users.service';
import { isUniqueViolation } from '../common/database-errors';
import { DiscourseConnectWebhookEventEntity } from './webhook-event.entity';

const SIGNATURE = /^sha256=([0-9a-f]{64})$/;
const USER_EVENTS = new Set(['user_created', 'user_updated']);

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
 * HMAC-SHA256 of the raw body) is checked in constant time; each event id is processed once.
 * Needs the raw body: create the app with `NestFactory.create(AppModule, { rawBody: true })`.
 */
@Controller('discourse')
@UseFilters(DiscourseConnectExceptionFilter)
export class DiscourseWebhooksController {
  constructor(
    private readonly settings: DiscourseConnectSettings,
    private readonly users: UsersService,
    private readonly actions: DiscourseConnectActionsService,
    @InjectRepository(DiscourseConnectWebhookEventEntity)
    private readonly deliveries: Repository<DiscourseConnectWebhookEventEntity>,
  ) {}

  @Post('webhooks')
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
      throw refuse(HttpStatus.NOT_FOUND, 'Webhooks from this forum are not configured here.', 'webhook_not_configured');
    }
    if (!req.rawBody) {
      throw refuse(
        HttpStatus.UNSUPPORTED_MEDIA_TYPE,
        UNSUPPORTED_BODY_MESSAGE,
        'webhook_without_raw_body',
      );
    }
    const match = SIGNATURE.exec(signature ?? '');
    const expected = createHmac('sha256', forum.webhookSecret).update(req.rawBody).digest();
    if (!match || !timingSafeEqual(expected, Buffer.from(match[1], 'hex'))) {
      throw refuse(HttpStatus.FORBIDDEN, 'The webhook signature does not match.', 'webhook_bad_signature');
    }
    if (!eventId || !/^[0-9]{1,20}$/.test(eventId) || !event || !/^[a-z_]{1,64}$/.test(event)) {
      throw refuse(HttpStatus.BAD_REQUEST, 'The webhook has no valid event name or id.', 'webhook_bad_headers');
    }
    if (!isUtf8(req.rawBody)) {
      throw refuse(HttpStatus.BAD_REQUEST, 'The webhook body is not valid UTF-8.', 'webhook_invalid_utf8');
    }
    if (event === 'ping') return { status: 'pong' };

    // The body is checked before the delivery is recorded, so a refused one leaves nothing behind.
    const user = (req.body as { user?: { id?: unknown; username?: unknown; external_id?: unknown } })?.user;
    if (USER_EVENTS.has(event) && (!user || typeof user.id !== 'number' || typeof user.username !== 'string')) {
      throw refuse(HttpStatus.UNPROCESSABLE_ENTITY, 'The webhook has no user in its body.', 'webhook_without_user');
    }
    try {
      await this.deliveries.insert({ forum: forum.name, eventId, event, receivedAt: Date.now() });
    } catch (error) {
      if (!isUniqueViolation(error)) throw error;
      throw refuse(HttpStatus.CONFLICT, 'This webhook delivery was already received.', 'webhook_replay');
    }
    if (!USER_EVENTS.has(event) || !user) return { status: 'ignored' };
    const { id, username } = user as { id: number; username: string };
    const discordId = typeof user.external_id === 'string' && /^[0-9]{1,20}$/.test(user.external_id) ? user.external_id : null;
    if (discordId) await this.users.linkForumAccount(discordId, { id, username });
    const payload: ForumUserChangedEvent = {
      event: event as ForumUserChangedEvent['event'],
      forum: forum.name,
      forumUserId: id,
      forumUsername: username,
      discordId,
    };
    this.actions.emit(DiscourseConnectEvents.ForumUserChanged, payload);
    return { status: 'ok' };
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
