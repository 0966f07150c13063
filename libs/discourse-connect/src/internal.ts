/**
 * Everything of the library, under its internal names, for this repository's own tests, demo host
 * and benchmarks only. Not in the package's `exports`: an app that installs the package cannot
 * import it, and nothing here is a promise. Hosts use the public API (`index.ts`).
 */
export * from './index';
export {
  DiscourseConnectSettings,
  type ResolvedForum,
  type ResolvedVanillaForum,
} from './config/discourse-connect.settings';
export { VanillaConnectService } from './vanilla/vanilla.service';
export { UserStore, type LocalUserData } from './users/user-store.interface';
export type { LocalUser } from './users/local-user.interface';
export { UsersService, type SignInOutcome } from './users/users.service';
export { DiscourseConnectSignIn } from './discord/sign-in.service';
export {
  SignInRefusedError,
  InvalidDiscordProfileError,
  type SignInRefusal,
} from './discord/sign-in.errors';
export { ReturnTo } from './http/return-to';
export { displayNameOf, hashDiscordMetadata, pickDiscordMetadata } from './users/discord-profile';
export { DiscourseConnectUserEntity } from './users/discourse-connect-user.entity';
export { DiscourseConnectSessionEntity } from './session/discourse-connect-session.entity';
export { TypeOrmSessionStore } from './session/typeorm-session.store';
export { createSessionStore, type SessionStoreChoice } from './session/session-store.factory';
export { DiscourseConnectFiltersService } from './hooks/filters.service';
export { SameOriginGuard } from './http/same-origin.guard';
export { SyncQueue, type SyncQueueCounts, type SyncJobRecord } from './sync/sync-queue.service';
export { DatabaseSyncQueue } from './sync/database-sync-queue';
export { BullMqSyncQueue, BULL_QUEUE_NAME, type BullSyncJobData } from './sync/bullmq-sync-queue';
export { RedisAdminApiRateLimiter } from './admin/redis-rate-limiter';
export { DiscourseConnectRedis } from './redis/discourse-connect-redis';
export { RedisSessionStore } from './session/redis-session.store';
export { RedisThrottlerStorage, RedisFailureCounter } from './redis/redis-throttler.storage';
export { DatabaseSyncWorker } from './sync/database-sync.worker';
export { SyncOutboxRelay } from './sync/outbox-relay';
export {
  SyncDeliveryCore,
  type SyncDeliveryJob,
  type SyncDeliveryOutcome,
} from './sync/sync-delivery.core';
export { AdminApiRateLimiter } from './admin/rate-limiter';
export {
  DiscourseConnectSyncJobEntity,
  type SyncJobKind,
  type SyncJobStatus,
} from './sync/sync-job.entity';
export { SsoService } from './sso/sso.service';
export { SsoHandshakeShortcut } from './sso/handshake-shortcut';
export {
  DiscoursePayloadBuilder,
  MemberCannotBeSyncedError,
} from './payload/discourse-payload.builder';
export * from './protocol';
export { DiscourseConnectActionsService } from './hooks/actions.service';
export { TypeOrmUserStore } from './users/typeorm-user.store';
export { DiscourseConnectSessionMiddleware } from './session/session.middleware';
export { DiscourseConnectSessions } from './session/sessions';
export {
  ForumLinks,
  FORUM_LINK_NOT_FOUND_TTL_MS,
  type ForumLink,
  type ForumLinkAnswer,
} from './users/forum-links';
export { DiscourseConnectForumLinkEntity, type ForumLinkStatus } from './users/forum-link.entity';
export { untrustedProxyHop, isPrivateAddress, MemoryFailureCounter } from './http/rate-limit.guard';
export { DiscordBotConnection } from './bot/discord-bot';
export { DiscordMemberSync, type MemberChange } from './bot/discord-member-sync';
export { DiscordReconcile, type ReconcileOptions } from './bot/discord-reconcile';
export {
  DiscordGuildMembers,
  GUILD_MEMBERS_PAGE,
  type GuildMember,
  type GuildMemberSource,
} from './bot/guild-members';
export { DiscordGatewayConnection, BOT_INTENTS } from './bot/discord-gateway';
export { RedisGatewayLease, LocalGatewayLease, type GatewayLease } from './bot/gateway-lease';
export { FailureLog, BOT_FAILURE_LOG_INTERVAL_MS } from './bot/failure-log';
export { roleTransition, sameRoles } from './bot/member-roles';
