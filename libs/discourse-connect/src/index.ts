/**
 * nestjs-discourse-connect: the public API. Every name here is documented in the README and pinned
 * by `public-api.spec.ts`, so a change to the API is always deliberate (and in the CHANGELOG).
 */

// ── The module and its configuration ────────────────────────────────────────────────────────────

/** The module: `DiscourseConnectModule.forRoot(options)` or `.forRootAsync({ useFactory, inject })`. */
export { DiscourseConnectModule } from './discourse-connect.module';
/** The module's TypeORM entities, for a host DataSource that lists entities instead of `autoLoadEntities`. */
export { DISCOURSE_CONNECT_ENTITIES } from './discourse-connect.module';
/** The module's TypeORM migrations: add them to the host DataSource's `migrations`. */
export { DISCOURSE_CONNECT_MIGRATIONS } from './migrations';
/** Injection token of the options given to `forRoot`/`forRootAsync`. */
export { DISCOURSE_CONNECT_OPTIONS } from './discourse-connect.constants';
/** Parameter decorator that injects the module's options. */
export { InjectDiscourseConnectOptions } from './discourse-connect.constants';
/** The option types of `forRoot`/`forRootAsync`. */
export type {
  DiscourseConnectModuleOptions,
  DiscourseForumOptions,
  DiscourseApiOptions,
  DiscordOptions,
  DiscourseConnectSessionOptions,
  DiscourseConnectSessionStore,
  DiscourseConnectSyncOptions,
  DiscourseConnectGroupsOptions,
  DiscourseConnectRateLimitOptions,
  DiscourseConnectRedisOptions,
  DiscourseConnectDatabaseOptions,
  DiscourseConnectBotOptions,
  DiscordGuildLeaveAction,
} from './discourse-connect-options.interface';
/** Vanilla forums through jsConnect v3: the `vanilla` option, each forum, the signing algorithms. */
export type {
  DiscourseConnectVanillaOptions,
  VanillaForumOptions,
  VanillaJsConnectAlgorithm,
} from './discourse-connect-options.interface';
/** Member lifecycle options (`lifecycle`): suspensions, forgetting a member, anonymized accounts. */
export type {
  DiscourseConnectLifecycleOptions,
  DiscourseForgetAction,
} from './discourse-connect-options.interface';
/** `registerAs` config from the environment: `ConfigModule.forRoot({ load: [discourseConnectConfig] })`. */
export { discourseConnectConfig } from './config/discourse-connect.config';
/** The module's options read from environment variables (throws a readable error naming each bad one). */
export { discourseConnectOptionsFromEnv } from './config/discourse-connect.config';
/** Validates the environment variables the module reads (for `ConfigModule`'s `validate`). */
export { validateDiscourseConnectEnv } from './config/discourse-connect.config';
/** The environment variables the module reads, with their validation rules. */
export { DiscourseConnectEnvironment } from './config/discourse-connect.config';
/** Names of `.env` values cut short by an unquoted `#`, so a host can say so at boot. */
export { findCutEnvValues } from './config/discourse-connect.config';
/** Thrown at boot for options or environment the module cannot run with; the message says the fix. */
export { DiscourseConnectConfigurationError } from './config/configuration.error';
/** The resolved settings (defaults applied, URLs normalised), injectable in host code. */
export { DiscourseConnectSettings } from './config/discourse-connect.settings';
/** Where the module's routes are served (global prefix, RouterModule path): paths and URLs for links. */
export { DiscourseConnectRoutes } from './http/discourse-connect-routes';
/** The names of the module's routes and the path of each as served. */
export type {
  DiscourseConnectRouteName,
  DiscourseConnectRoutePaths,
} from './http/discourse-connect-routes';
/** One configured forum as the module resolved it (name, URLs, API credentials). */
export type { ResolvedForum as DiscourseConnectForum } from './config/discourse-connect.settings';

// ── HTTP: guards, pages and errors ──────────────────────────────────────────────────────────────

/** Starts Discord sign-in on a host route (`@UseGuards(DiscordAuthGuard)`). */
export { DiscordAuthGuard } from './discord/discord-auth.guard';
/** Finishes Discord sign-in on a host callback route. */
export { DiscordCallbackGuard } from './discord/discord-auth.guard';
/** Refuses state-changing requests whose Origin/Referer is not this site (CSRF). */
export { SameOriginGuard as DiscourseConnectSameOriginGuard } from './http/same-origin.guard';
/** Cuts a value from a request to a bounded, single-line, control-free text for a log line. */
export { boundForLog } from './common/log-text';
/** Renders the module's readable HTML/JSON error pages; usable on host controllers too. */
export { DiscourseConnectExceptionFilter } from './http/discourse-connect-exception.filter';
/** Base of the module's HTTP errors: a status, a stable code and a message for people. */
export { DiscourseConnectHttpException } from './common/discourse-connect.exceptions';
/** 400: a DiscourseConnect request that is malformed or badly signed. */
export { BadSsoRequestException } from './common/discourse-connect.exceptions';
/** 403: a DiscourseConnect request that is valid but refused (e.g. by the `user.canSignIn` filter). */
export { SsoForbiddenException } from './common/discourse-connect.exceptions';
/** A Discord sign-in that could not finish (denied consent, Discord down, bad state). */
export { DiscordSignInException } from './common/discourse-connect.exceptions';

// ── Members ─────────────────────────────────────────────────────────────────────────────────────

/** A member as the site keeps them (`req.user` on a signed-in request). */
export type { LocalUser as DiscourseConnectUser } from './users/local-user.interface';
/** Injection token and interface of the user store (give your own in the `userStore` option). */
export { UserStore as DiscourseConnectUserStore } from './users/user-store.interface';
/** The fields a user store writes when a member is created or their Discord data changed. */
export type { LocalUserData as DiscourseConnectUserData } from './users/user-store.interface';
/** Reads members and lists them for bulk work (e.g. a CLI resync). */
export { UsersService as DiscourseConnectUsersService } from './users/users.service';
/** The whitelisted copy of a member's Discord profile that the module keeps. */
export type { DiscordMetadata } from './users/discord-profile';
/** The member's Discord avatar URL (or Discord's default avatar). */
export { discordAvatarUrl } from './users/discord-profile';

// ── Extending it: filters and events ────────────────────────────────────────────────────────────

/** Method decorator: `@DiscourseConnectFilter('sso.payload', { priority })` on a host provider. */
export { DiscourseConnectFilter } from './hooks/discourse-connect-filter.decorator';
/** The filters, their value and context types. */
export type {
  DiscourseConnectFilters,
  DiscourseConnectFilterName,
  SsoPayloadContext,
  CanSignInContext,
  GroupsContext,
  VanillaUserContext,
} from './hooks/filters.interface';
/** Event names for `@OnEvent(DiscourseConnectEvents.SignedIn)` and the others. */
export { DiscourseConnectEvents } from './hooks/discourse-connect.events';
/** The events' payloads. */
export type {
  UserCreatedEvent,
  ProfileChangedEvent,
  SignedInEvent,
  SignedOutEvent,
  SyncJobEvent,
  ForumUserChangedEvent,
  DiscordMemberEvent,
  DiscordReconcileEvent,
  StaffChangedEvent,
  VanillaSignedInEvent,
} from './hooks/discourse-connect.events';
/** Member lifecycle events' payloads: a forum account suspended, lifted, anonymized, deleted; a member forgotten. */
export type {
  ForumUserLifecycleEvent,
  MemberForgottenEvent,
} from './hooks/discourse-connect.events';

// ── Keeping the forum aligned ───────────────────────────────────────────────────────────────────

/** The typed Discourse admin API client (sync_sso, log out, groups, users). */
export { DiscourseAdminService } from './admin/discourse-admin.service';
/** A forum user as the admin API returns it. */
export type { DiscourseUser } from './admin/discourse-admin.service';
/** The forum's admin API answered with an error (status and message). */
export { DiscourseApiError } from './admin/discourse-api.errors';
/** The forum's admin API answered 429; `retryAfterMs` says when to try again. */
export { DiscourseRateLimitError } from './admin/discourse-api.errors';
/** An admin API call to a forum configured without an API key. */
export { DiscourseApiNotConfiguredError } from './admin/discourse-api.errors';
/** The durable sync queue (token, and the base of a host's own queue in the `syncQueue` option). */
export { DiscourseConnectSyncQueue } from './sync/discourse-connect-sync-queue';
/** Delivers one sync job to the forum, for a host's own queue worker. */
export { DiscourseConnectSyncDelivery } from './sync/discourse-connect-sync-queue';
/** Jobs pending, running and failed. */
export type { SyncQueueCounts as DiscourseConnectSyncQueueCounts } from './sync/discourse-connect-sync-queue';
/** A job kept after its last retry. */
export type { SyncJobRecord as DiscourseConnectFailedJob } from './sync/discourse-connect-sync-queue';
/** What a sync job does: `sync` (profile and groups), `create`, `logout`, `suspend`, `unsuspend`, `anonymize`, `delete`. */
export type { SyncJobKind as DiscourseConnectSyncJobKind } from './sync/sync-job.entity';
/** Route decorator: after the handler succeeds, sync the member to the forum. */
export { SyncToDiscourse } from './sync/discourse-lifecycle.interceptor';
/** Route decorator: after the handler succeeds, log the member out of the forum. */
export { LogOutOfDiscourse } from './sync/discourse-lifecycle.interceptor';
/** The interceptor behind the two decorators above. */
export { DiscourseLifecycleInterceptor } from './sync/discourse-lifecycle.interceptor';
/** Options of the two decorators (which member, which forum). */
export type { DiscourseLifecycleOptions } from './sync/discourse-lifecycle.interceptor';

// ── Member lifecycle ────────────────────────────────────────────────────────────────────────────

/** Suspend, unsuspend and forget members on the forums; what the forums' user webhooks say. */
export { DiscourseMemberLifecycle } from './lifecycle/member-lifecycle.service';
/** A lifecycle call refused for bad input (not a Discord id, an end date in the past). */
export { MemberLifecycleError } from './lifecycle/member-lifecycle.service';
/** What `forget`, `suspend` and `unsuspend` did on each forum. */
export type {
  MemberForgetReport,
  MemberSuspensionOutcome,
} from './lifecycle/member-lifecycle.service';
/** What an admin API lifecycle call did: `{ found: true, forumUserId }` or `{ found: false }`. */
export type { DiscourseLifecycleResult } from './admin/discourse-admin.service';
/** Route decorator: after the handler succeeds, suspend the member on the forums (a job). */
export { SuspendOnDiscourse } from './sync/discourse-lifecycle.interceptor';
/** Route decorator: after the handler succeeds, lift the member's suspension the module made (a job). */
export { UnsuspendOnDiscourse } from './sync/discourse-lifecycle.interceptor';
/** Route decorator: after the handler succeeds, forget the member (local data, forum accounts). */
export { ForgetDiscourseMember } from './lifecycle/forget-member.interceptor';
/** The interceptor behind `@ForgetDiscourseMember()`. */
export { ForgetDiscourseMemberInterceptor } from './lifecycle/forget-member.interceptor';
/** Options of `@ForgetDiscourseMember()` (which member). */
export type { ForgetDiscourseMemberOptions } from './lifecycle/forget-member.interceptor';

// ── The DiscourseConnect protocol (no Nest inside) ──────────────────────────────────────────────

/** The payload fields of DiscourseConnect, typed. */
export type {
  DiscourseConnectPayload,
  DiscourseConnectField,
} from './protocol/discourse-connect.fields';
/** Signs and encodes a payload: `{ sso, sig }` for a URL. */
export { buildSignedPayload, type SignedPayload } from './protocol/discourse-connect.codec';
/** Verifies the signature and decodes a DiscourseConnect request; throws a protocol error otherwise. */
export { verifyAndDecode } from './protocol/discourse-connect.codec';
/** A DiscourseConnect request or payload that breaks the protocol, with a stable code. */
export {
  DiscourseConnectProtocolError,
  type DiscourseConnectErrorCode,
} from './protocol/discourse-connect.errors';

// ── Vanilla jsConnect v3 (the codec has no Nest inside) ─────────────────────────────────────────

/** The member as jsConnect describes them to a Vanilla forum (the `vanilla.user` filter's value). */
export type { JsConnectUser as VanillaUser } from './jsconnect/jsconnect.codec';
/** Verifies a jsConnect v3 request token from Vanilla (kid, algorithm, secret, exp, rurl). */
export { verifyJsConnectRequest } from './jsconnect/jsconnect.codec';
/** Signs the answer to a verified request: `rurl#jwt=…`. */
export { buildJsConnectResponse } from './jsconnect/jsconnect.codec';
/** A connection, a verified request, and the algorithms offered. */
export type {
  JsConnectClient,
  JsConnectRequest,
  JsConnectAlgorithm,
} from './jsconnect/jsconnect.codec';
/** A jsConnect request that breaks the protocol, with a stable code. */
export { JsConnectProtocolError, type JsConnectErrorCode } from './jsconnect/jsconnect.errors';
/** The Vanilla username of a Discord member (3–20 of A-Z a-z 0-9 _, the same every time). */
export { vanillaUsername } from './vanilla/vanilla-username';
