import { Injectable, Logger } from '@nestjs/common';
import { OnEvent } from '@nestjs/event-emitter';
import {
  DiscourseConnectEvents,
  DiscourseConnectFilter,
  type DiscourseConnectPayload,
  type SsoPayloadContext,
  type UserCreatedEvent,
  type SignedOutEvent,
} from 'nestjs-discourse-connect';

/**
 * An example plugin, the way a host app customises the module: a filter on the payload sent to
 * the forum, and listeners on events.
 */
@Injectable()
export class ForumPlugin {
  private readonly logger = new Logger('ForumPlugin');

  /** Shows the Discord handle as a custom field on the forum profile. */
  @DiscourseConnectFilter('sso.payload', { priority: 20 })
  addDiscordHandle(
    payload: DiscourseConnectPayload,
    { user }: SsoPayloadContext,
  ): DiscourseConnectPayload {
    return { ...payload, custom: { ...payload.custom, discord_username: user.username } };
  }

  @OnEvent(DiscourseConnectEvents.UserCreated)
  welcome({ user }: UserCreatedEvent): void {
    this.logger.log(`new member ${user.username} (${user.discordId})`);
  }

  @OnEvent(DiscourseConnectEvents.SignedOut)
  signedOut({ discordId, via }: SignedOutEvent): void {
    this.logger.log(`member ${discordId} signed out (${via})`);
  }
}
