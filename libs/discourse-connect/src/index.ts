/** nestjs-discourse-connect: the public API. */
export { DiscourseConnectModule, DISCOURSE_CONNECT_ENTITIES } from './discourse-connect.module';
export type {
  DiscourseConnectSyncOptions,
  DiscourseConnectRedisOptions,
  DiscourseConnectGroupsOptions,
  DiscourseApiOptions,
  DiscourseConnectModuleOptions,
  DiscourseForumOptions,
  DiscordOptions,
  DiscourseConnectSessionOptions,
} from './discourse-connect-options.interface';
export {
  DISCOURSE_CONNECT_OPTIONS,
  InjectDiscourseConnectOptions,
} from './discourse-connect.constants';
export { DiscourseConnectSettings, type ResolvedForum } from './config/discourse-connect.settings';
export {
  discourseConnectConfig,
  discourseConnectOptionsFromEnv,
  validateDiscourseConnectEnv,
  findCutEnvValues,
  DiscourseConnectEnvironment,
} from './config/discourse-connect.config';
export { DiscourseConnectConfigurationError } from './config/configuration.error';
export { DISCOURSE_CONNECT_MIGRATIONS } from './migrations';

export { DiscordAuthGuard, DiscordCallbackGuard } from './discord/discord-auth.guard';
export { SameOriginGuard } from './common/same-origin.guard';
export { boundForLog } from './common/log-text';
export { DiscourseConnectExceptionFilter } from './common/discourse-connect-exception.filter';
export {
  DiscourseConnectHttpException,
  BadSsoRequestException,
  SsoForbiddenException,
  DiscordSignInException,
} from './common/discourse-connect.exceptions';

export { UserStore, type LocalUserData } from './users/user-store.interface';
export type { LocalUser } from './users/local-user.interface';
export { UsersService, type SignInOutcome } from './users/users.service';
export {
  type DiscordMetadata,
  discordAvatarUrl,
  displayNameOf,
  hashDiscordMetadata,
  pickDiscordMetadata,
} from './users/discord-profile';
export { DiscourseConnectUserEntity } from './users/discourse-connect-user.entity';
export { DiscourseConnectSessionEntity } from './session/discourse-connect-session.entity';
export { TypeOrmSessionStore } from './session/typeorm-session.store';

export { DiscourseConnectFilter } from './hooks/discourse-connect-filter.decorator';
export { DiscourseConnectFiltersService } from './hooks/filters.service';
export type {
  DiscourseConnectFilters,
  DiscourseConnectFilterName,
  SsoPayloadContext,
  CanSignInContext,
  GroupsContext,
} from './hooks/filters.interface';
export {
  DiscourseConnectEvents,
  type UserCreatedEvent,
  type ProfileChangedEvent,
  type SignedInEvent,
  type SignedOutEvent,
  type SyncJobEvent,
  type ForumUserChangedEvent,
} from './hooks/discourse-connect.events';

export { DiscourseAdminService, type DiscourseUser } from './admin/discourse-admin.service';
export {
  DiscourseApiError,
  DiscourseRateLimitError,
  DiscourseApiNotConfiguredError,
} from './admin/discourse-api.errors';
export { SyncQueue, type SyncQueueCounts, type SyncJobRecord } from './sync/sync-queue.service';
export { DatabaseSyncQueue } from './sync/database-sync-queue';
export { BullMqSyncQueue, BULL_QUEUE_NAME, type BullSyncJobData } from './sync/bullmq-sync-queue';
export { RedisAdminApiRateLimiter } from './sync/redis-rate-limiter';
export { DiscourseConnectRedis } from './redis/discourse-connect-redis';
export { RedisSessionStore } from './redis/redis-session.store';
export { RedisThrottlerStorage } from './redis/redis-throttler.storage';
export { createSessionStore, type SessionStoreChoice } from './session/session-store.factory';
export { SyncWorker } from './sync/sync.worker';
export { AdminApiRateLimiter } from './sync/rate-limiter';
export {
  DiscourseConnectSyncJobEntity,
  type SyncJobKind,
  type SyncJobStatus,
} from './sync/sync-job.entity';
export {
  SyncToDiscourse,
  LogOutOfDiscourse,
  DiscourseLifecycleInterceptor,
  type DiscourseLifecycleOptions,
} from './sync/discourse-lifecycle.interceptor';

export * from './protocol';
