import type { Type } from '@nestjs/common';
import type { DiscourseConnectSyncQueue } from './sync/discourse-connect-sync-queue';
import type { UserStore } from './users/user-store.interface';

/** One Discourse forum this app signs people into. */
export interface DiscourseForumOptions {
  /** Forum base URL, e.g. `https://forum.example.com` (may include a subfolder). No default. */
  url: string;
  /** The forum's `discourse_connect_secret`, at least 10 characters. No default. */
  secret: string;
  /** Short name used in `?forum=` on the forum link route. Default: the forum's host name. */
  name?: string;
  /** Admin API credentials; without them the features that need the API are off. Default none. */
  api?: DiscourseApiOptions;
  /** Secret of the forum's webhook to `POST /discourse/webhooks` (12+ characters). Default: webhooks off. */
  webhookSecret?: string;
  /**
   * This forum's own Discord role id → group map (needs `groups.guildId`); when set it replaces
   * `groups.roleGroups` for this forum. Default: `groups.roleGroups`.
   */
  groupMap?: Record<string, string>;
  /** This forum's own Discord role ids that grant `admin` (replaces `groups.adminRoles` here). Default `groups.adminRoles`. */
  adminRoles?: string[];
  /** This forum's own Discord role ids that grant `moderator` (replaces `groups.moderatorRoles` here). Default `groups.moderatorRoles`. */
  moderatorRoles?: string[];
}

/** Credentials and limits of a forum's admin API. */
export interface DiscourseApiOptions {
  /** An admin API key (Admin → API → New API Key). No default. */
  key: string;
  /** The user the key acts as. Default `system`. */
  username?: string;
  /** Timeout of each API call, in milliseconds. Default 10000. */
  timeoutMs?: number;
  /** This forum's admin API budget, requests per minute (each forum has its own). Default `sync.ratePerMinute`. */
  ratePerMinute?: number;
}

/** The Discord application used for sign-in. */
export interface DiscordOptions {
  /** OAuth2 client id of the Discord application. No default. */
  clientId: string;
  /** OAuth2 client secret of the Discord application. No default. */
  clientSecret: string;
  /** Discord's base URL; point it at a simulator for tests. Default `https://discord.com`. */
  baseUrl?: string;
  /** Extra OAuth2 scopes on top of `identify email`. Default none. */
  extraScopes?: string[];
  /**
   * The redirect URI registered with Discord. Default `<publicUrl>/auth/discord/callback`, with the
   * app's global prefix or the module's RouterModule path in front (`<publicUrl>/community/auth/discord/callback`).
   */
  callbackUrl?: string;
  /** User-Agent sent to Discord. Default `nestjs-discourse-connect (<publicUrl>, <version>)`. */
  userAgent?: string;
  /** Timeout for each call to Discord, in milliseconds. Default 10000. */
  timeoutMs?: number;
}

/** Server-side sessions. */
export interface DiscourseConnectSessionOptions {
  /** Secret that signs the session cookie, at least 32 characters. No default. */
  secret: string;
  /** Cookie name. Default `dc.sid`. */
  cookieName?: string;
  /** Session lifetime in seconds. Default 14 days. */
  maxAgeSeconds?: number;
  /**
   * Where sessions live: any express-session store (the same object serves Fastify), as an instance
   * or a class (the module instantiates it, injecting its constructor dependencies). Default: the
   * module's database table (survives restarts), or Redis with `redis`.
   */
  store?: DiscourseConnectSessionStore | Type<DiscourseConnectSessionStore>;
  /**
   * Install the session and passport middleware on every route of the host app.
   * Set false when the host already installs express-session and passport itself. Default true.
   */
  installMiddleware?: boolean;
  /**
   * How long, in milliseconds, a session and its user read or written by this process answer a
   * request without another database read (0: read on every request). Changes made by this process
   * are seen at once; a change made by another instance on a shared database (a sign-out there, a
   * profile update) can go unseen here for at most this long. Default 1000.
   */
  readCacheMs?: number;
}

/** Keeping the forum aligned through its admin API (needs `api` on the forum). */
export interface DiscourseConnectSyncOptions {
  /** Requests per minute to a forum's admin API, shared by all jobs; a forum's `api.ratePerMinute` overrides it. Default 60 (Discourse's default budget). */
  ratePerMinute?: number;
  /** Delivery attempts before a job is kept as failed. Default 10. */
  maxAttempts?: number;
  /** First retry delay in milliseconds; doubles each attempt. Default 2000. */
  backoffBaseMs?: number;
  /** Longest retry delay in milliseconds. Default 600000 (10 minutes). */
  backoffMaxMs?: number;
  /** How often the worker looks for due jobs, in milliseconds. Default 500. */
  pollIntervalMs?: number;
  /** How long a claimed job is locked before another worker may take it over, in ms. Default 60000. */
  leaseMs?: number;
  /** Run the delivery worker in this process. Default true. */
  worker?: boolean;
  /**
   * Also create the forum account through sync_sso on a first sign-in, on every forum with an API
   * key (a `create` job; other jobs go only to forums where the member has an account). Default false.
   */
  onFirstSignIn?: boolean;
}

/** What forgetting a member does to their forum accounts. */
export type DiscourseForgetAction = 'anonymize' | 'delete' | 'none';

/** Member lifecycle: suspensions the module makes, forgetting a member, anonymized forum accounts. */
export interface DiscourseConnectLifecycleOptions {
  /** The reason sent with a suspension the module makes (a `suspend` job). Default "Suspended by the site.". */
  suspendReason?: string;
  /**
   * How long a suspension the module makes lasts, in days. Default 365000 (about 1000 years: the
   * forum shows a suspension longer than 100 years as "forever").
   */
  suspendDays?: number;
  /**
   * What `forget` does to the member's account on each forum: `anonymize` (the forum renames it and
   * detaches it from the member), `delete` (the account and its posts are removed) or `none`.
   * Default `anonymize`.
   */
  forgetAction?: DiscourseForgetAction;
  /**
   * A sign-in to a forum that anonymized the member's account: `new-account` (the forum creates a
   * fresh account) or `refuse` (a 403 page). Default `new-account`.
   */
  anonymizedSignIn?: 'new-account' | 'refuse';
}

/** Forum groups from Discord guild roles. */
export interface DiscourseConnectGroupsOptions {
  /** The Discord server (guild) whose roles decide groups. Adds the `guilds.members.read` scope. */
  guildId: string;
  /**
   * Discord role id → forum group name. Only these groups are managed; others are never touched.
   * Default: no group is managed (unless a forum has its own `groupMap`).
   */
  roleGroups?: Record<string, string>;
  /**
   * Send the full `groups` list (for forums with `discourse_connect_overrides_groups` on, where the
   * list replaces every non-automatic group) instead of `add_groups`/`remove_groups`. Default false.
   */
  fullGroupList?: boolean;
  /** Refuse sign-in to people who are not members of the guild. Default false. */
  requireMembership?: boolean;
  /** Discord role ids whose holders get `admin` on the forums. Default none (the module never sends `admin`). */
  adminRoles?: string[];
  /** Discord role ids whose holders get `moderator` on the forums. Default none (the module never sends `moderator`). */
  moderatorRoles?: string[];
  /** Grant staff flags only to Discord accounts with two-factor authentication on. Default true. */
  staffRequireMfa?: boolean;
}

/** What the module does on the forum when a member leaves, is kicked or is banned from the Discord server. */
export type DiscordGuildLeaveAction = 'groups' | 'logout' | 'suspend';

/**
 * The Discord bot connection that keeps mapped forum groups aligned while nobody signs in (needs
 * `groups.guildId`, and the bot in that server with the Server Members intent): live member events
 * through Discord's gateway, and a periodic reconcile of every member's roles.
 */
export interface DiscourseConnectBotOptions {
  /** The application's bot token (Developer Portal → Bot). Never logged. No default. */
  token: string;
  /** Seconds between two reconciles of every member's roles (5 or more); one also runs at boot. Default 3600. */
  reconcileSeconds?: number;
  /**
   * What a member leaving, kicked or banned from the server costs them on the forum, besides every
   * managed group: `groups` (only the groups), `logout` (also their forum sessions end) or `suspend`
   * (also a suspension, lifted when they come back). Default `logout`.
   */
  leaveAction?: DiscordGuildLeaveAction;
  /**
   * Hold the gateway connection and run the reconcile in this process (with `redis`, one instance
   * at a time holds them). The command line turns it off. Default true.
   */
  gateway?: boolean;
  /**
   * With `redis`: how long, in milliseconds, the instance holding the gateway keeps it without
   * renewing; another instance takes over within about this long after the holder died. Default 30000.
   */
  leaseMs?: number;
}

/**
 * Per-client-IP limit on the sign-in and SSO routes (`GET /discourse/sso`, `GET /auth/discord`,
 * `GET /auth/discord/callback`, `POST /auth/logout`). Each route counts separately. The client IP is
 * Express's `req.ip`, so behind a reverse proxy set the host app's `trust proxy` setting.
 */
export interface DiscourseConnectRateLimitOptions {
  /**
   * Failed requests (answered with a 4xx: a bad signature, a bad or missing OAuth state, malformed
   * input) allowed per client IP in each window, the limited routes together; past it every request
   * of that client gets a 429 until the window ends. Default 30. (Before 0.2.0 this limited every
   * request per route.)
   */
  limit?: number;
  /**
   * Requests allowed per client IP and route in each window, failed or not; the SSO route counts
   * signed-in handshakes and anonymous ones (which start a sign-in) apart. Default 200, Discourse's
   * own per-IP budget, so a whole class behind one NAT signs in within a minute.
   */
  requestLimit?: number;
  /** Window length in seconds; a client over a limit waits until its window ends. Default 60. */
  ttlSeconds?: number;
}

/**
 * Shared state for several app instances: with it, sessions live in Redis and the sync queue is
 * delivered through BullMQ (one rate limit for all instances). Without it, both stay in the database.
 */
export interface DiscourseConnectRedisOptions {
  /** `redis://[user:password@]host:port[/db]` (`rediss://` for TLS). Never logged. No default. */
  url: string;
  /** Prefix of every key the module writes, so apps can share one Redis. Default `dc:`. */
  prefix?: string;
}

/**
 * A session store with express-session's API (a subclass of express-session's `Store`, such as
 * connect-redis or connect-pg-simple), described here without express-session's types.
 */
export interface DiscourseConnectSessionStore {
  get(sid: string, callback: (error: unknown, session?: object | null) => void): void;
  set(sid: string, session: object, callback?: (error?: unknown) => void): void;
  destroy(sid: string, callback?: (error?: unknown) => void): void;
  touch?(sid: string, session: object, callback?: (error?: unknown) => void): void;
}

/**
 * The module's own TypeORM DataSource, for a host that has no TypeORM connection of its own (an app
 * on Prisma or Mongoose): given next to the options, `forRoot({ ..., database: { url } })` or
 * `forRootAsync({ useFactory, database: { url } })`. The module then runs its migrations on it at boot.
 */
export interface DiscourseConnectDatabaseOptions {
  /** `sqlite:<file>` (needs `better-sqlite3`) or `postgres://user:pass@host/db` (needs `pg`). Never logged. */
  url: string;
}

/** The signing algorithms a jsConnect connection may use (Vanilla's RS and ES ones are not offered). */
export type VanillaJsConnectAlgorithm = 'HS256' | 'HS384' | 'HS512';

/** One Vanilla forum whose jsConnect v3 connection signs people in with this app. */
export interface VanillaForumOptions {
  /** The forum's base URL, e.g. `https://community.example.com` (may include a subfolder). No default. */
  url: string;
  /** The jsConnect connection's client id (Vanilla's dashboard). No default. */
  clientId: string;
  /** The jsConnect connection's secret (Vanilla's dashboard), 16+ characters. No default. */
  secret: string;
  /** Short name used in `?forum=` on the Vanilla forum link. Default: the forum's host name. */
  name?: string;
  /**
   * Discord role id → Vanilla role name (needs `groups.guildId`). With it, each sign-in sends the
   * member's full role list (mapped roles plus `vanilla.defaultRole`), which replaces the roles the
   * member has on the forum. Default: no roles are sent.
   */
  roleMap?: Record<string, string>;
  /** The connection's signing algorithm, the only one accepted on its requests. Default `HS256`. */
  algorithm?: VanillaJsConnectAlgorithm;
  /**
   * The connection is the forum's default sign-in method, so the forum link goes through the
   * forum's `/sso`; false uses `/entry/jsconnect?client_id=`. Default true.
   */
  defaultSignIn?: boolean;
}

/** Vanilla forums through jsConnect v3, from the same Discord sign-in. */
export interface DiscourseConnectVanillaOptions {
  /** The Vanilla forums; at least one. */
  forums: VanillaForumOptions[];
  /** The role every member gets next to the mapped ones, on forums with a role map. Default `Member`. */
  defaultRole?: string;
  /** Answer people who are not signed in here as guests (`u: {}`) instead of signing them in. Default false. */
  guests?: boolean;
  /**
   * Send an email Discord has not verified (only with the forum's AutoConnect off, or anyone could
   * take over a forum account by claiming its email). Default false: such a person is asked to
   * verify their email on Discord first.
   */
  sendUnverifiedEmail?: boolean;
  /**
   * Signing out here (`POST /auth/logout`) then goes through each Vanilla forum's sign-out
   * (`/entry/signout?target=`), back to `afterSignOutPath`; the forum must trust this site's domain
   * (`Garden.TrustedDomains`). Default false.
   */
  signOutThroughForum?: boolean;
}

/** Options of `DiscourseConnectModule.forRoot()` / `forRootAsync()`. */
export interface DiscourseConnectModuleOptions {
  /**
   * The Discourse forums this app is the DiscourseConnect provider for; at least one, unless
   * `vanilla` lists Vanilla forums (then it may be empty: a site with Vanilla forums only).
   */
  forums: DiscourseForumOptions[];
  /** The Discord application used for sign-in. */
  discord: DiscordOptions;
  /** Where this app is reachable, e.g. `https://example.com`. No default. */
  publicUrl: string;
  /** Server-side sessions. */
  session: DiscourseConnectSessionOptions;
  /** Where to send a person after signing out locally (a relative path). Default `/`. */
  afterSignOutPath?: string;
  /** Where to send a person after signing in without a pending destination. Default `/`. */
  afterSignInPath?: string;
  /** Keeping the forum aligned: rate limit, retries, worker. */
  sync?: DiscourseConnectSyncOptions;
  /** Forum groups from Discord guild roles. Default: groups are not managed. */
  groups?: DiscourseConnectGroupsOptions;
  /** The Discord bot connection that keeps groups aligned without a sign-in (needs `groups`). Default: off. */
  bot?: DiscourseConnectBotOptions;
  /** Member lifecycle: suspensions, forgetting a member, anonymized forum accounts. */
  lifecycle?: DiscourseConnectLifecycleOptions;
  /** The answers to the forums' sign-in requests. */
  sso?: {
    /**
     * How old, in seconds, a forum's sign-in request remembered before Discord sign-in may be when
     * it is answered. An older one is not answered with its nonce (Discourse's nonce lives 30
     * minutes, 10 in older releases): the person is sent to the forum's `/session/sso` for a fresh
     * one instead. Default 1500 (25 minutes).
     */
    resumeWithinSeconds?: number;
    /** The forums' `min_username_length`, for the usernames the module sends. Default 3. */
    minUsernameLength?: number;
    /** The forums' `max_username_length`, for the usernames the module sends. Default 20. */
    maxUsernameLength?: number;
  };
  /** Per-IP limit on the sign-in and SSO routes; `false` turns it off. Default 30 requests/minute/IP. */
  rateLimit?: DiscourseConnectRateLimitOptions | false;
  /**
   * Security headers (helmet: CSP, no-referrer, nosniff, frame-ancestors none…) on the module's own
   * routes only; host routes are untouched. Default true.
   */
  securityHeaders?: boolean;
  /** Redis for sessions and the sync queue (several instances). Default: none, the database holds both. */
  redis?: DiscourseConnectRedisOptions;
  /** Vanilla forums signed in through jsConnect v3. Default: none. */
  vanilla?: DiscourseConnectVanillaOptions;
  /**
   * Where local users live, for a host with its own users table: a class (the module instantiates
   * it, injecting its constructor dependencies from the module's scope) or an instance. Default: the
   * module's TypeORM table.
   */
  userStore?: Type<UserStore> | UserStore;
  /**
   * The host's own sync queue (a class extending `DiscourseConnectSyncQueue`, which the module
   * instantiates with its dependencies injected and whose lifecycle hooks it runs, or an instance):
   * jobs go there instead of the module's database or Redis queue, and the host's worker delivers
   * each with `DiscourseConnectSyncDelivery`. Default: the module's own queue.
   */
  syncQueue?: Type<DiscourseConnectSyncQueue> | DiscourseConnectSyncQueue;
}
