import { DiscourseConnectConfigurationError } from './configuration.error';
import type {
  DiscordGuildLeaveAction,
  DiscourseConnectGroupsOptions,
  DiscourseConnectLifecycleOptions,
  DiscourseConnectModuleOptions,
  DiscourseConnectSyncOptions,
  VanillaJsConnectAlgorithm,
} from '../discourse-connect-options.interface';
import { ForumBase, parseForumBase } from '../common/urls';
import { configEntry, optionProblem } from './discourse-connect.schema';
import { packageVersion } from './package-version';

/** A forum with its URL parsed once. */
export interface ResolvedForum extends ForumBase {
  name: string;
  /** Base URL without a trailing slash. */
  url: string;
  secret: string;
  /** Admin API access, when a key is configured; `ratePerMinute` is this forum's own budget. */
  api?: { key: string; username: string; timeoutMs: number; ratePerMinute: number };
  webhookSecret?: string;
  /** This forum's own role → group map and the groups it manages, when it has one (else `groups`'). */
  groups?: { roleGroups: Record<string, string>; managed: string[] };
  /** Discord role ids granting `admin` / `moderator` here: the forum's own lists, else `groups`'. */
  staffRoles: { admin: string[]; moderator: string[] };
}

/** A Vanilla forum with its URL parsed once. */
export interface ResolvedVanillaForum extends ForumBase {
  name: string;
  /** Base URL without a trailing slash. */
  url: string;
  clientId: string;
  secret: string;
  algorithm: VanillaJsConnectAlgorithm;
  /** Discord role id → Vanilla role name, when roles are sent to this forum. */
  roleMap?: Record<string, string>;
  defaultSignIn: boolean;
}

/**
 * The module's options checked and completed with their defaults; what every part of the module
 * reads. Built once at boot: a bad option stops the app with a message that says how to fix it.
 */
export class DiscourseConnectSettings {
  readonly forums: readonly ResolvedForum[];
  readonly publicUrl: string;
  readonly secureCookies: boolean;
  readonly discord: {
    clientId: string;
    clientSecret: string;
    baseUrl: string;
    authorizationUrl: string;
    tokenUrl: string;
    apiUrl: string;
    /**
     * The redirect URI registered with Discord, when configured. Unset: the module's callback route
     * where the app mounts it (`DiscourseConnectRoutes.discordCallbackUrl`).
     */
    callbackUrl?: string;
    scopes: string[];
    userAgent: string;
    timeoutMs: number;
  };
  readonly session: {
    secret: string;
    cookieName: string;
    maxAgeSeconds: number;
    installMiddleware: boolean;
    readCacheMs: number;
  };
  readonly afterSignOutPath: string;
  readonly afterSignInPath: string;
  readonly sync: Required<DiscourseConnectSyncOptions>;
  readonly groups?: Required<DiscourseConnectGroupsOptions> & { managed: string[] };
  /** Member lifecycle: suspensions, forgetting a member, anonymized forum accounts. */
  readonly lifecycle: Required<DiscourseConnectLifecycleOptions>;
  /** Per-IP limit on the sign-in and SSO routes; `enabled: false` when turned off. */
  readonly rateLimit: {
    enabled: boolean;
    /** Failed requests (answered 4xx) per client IP and window, all limited routes together. */
    limit: number;
    /** Requests per client IP, route (signed in or not, on the SSO route) and window. */
    requestLimit: number;
    ttlSeconds: number;
  };
  readonly securityHeaders: boolean;
  /** The answers to sign-in requests: how old a resumed request may be, the forums' username lengths. */
  readonly sso: {
    resumeWithinSeconds: number;
    minUsernameLength: number;
    maxUsernameLength: number;
  };
  /** Redis for sessions and the BullMQ sync queue; undefined when not configured. */
  readonly redis?: { url: string; prefix: string };
  /** The Discord bot connection; undefined when not configured. `guildId` is `groups.guildId`. */
  readonly bot?: {
    token: string;
    guildId: string;
    reconcileSeconds: number;
    leaveAction: DiscordGuildLeaveAction;
    gateway: boolean;
    leaseMs: number;
  };
  /** Vanilla forums through jsConnect v3; undefined when none is configured. */
  readonly vanilla?: {
    forums: readonly ResolvedVanillaForum[];
    defaultRole: string;
    guests: boolean;
    sendUnverifiedEmail: boolean;
    signOutThroughForum: boolean;
  };

  constructor(options: DiscourseConnectModuleOptions) {
    const fail = (message: string): never => {
      throw new DiscourseConnectConfigurationError(message);
    };
    if (!options)
      fail('DiscourseConnectModule needs options: forums, discord, publicUrl and session.');
    /** The option's value, or its default; checked by its rule in the schema. */
    const read = <T>(option: string, value: unknown, forum?: number): T =>
      readOption<T>(option, value, fail, forum);

    const publicUrl = read<string>('publicUrl', options.publicUrl);
    if (new URL(publicUrl).pathname !== '/') {
      fail(`publicUrl must be an origin without a path (got a path in "${publicUrl}").`);
    }
    this.publicUrl = publicUrl.replace(/\/+$/, '');
    this.secureCookies = this.publicUrl.startsWith('https:');

    const sync = options.sync ?? {};
    this.sync = {
      ratePerMinute: read('sync.ratePerMinute', sync.ratePerMinute),
      maxAttempts: read('sync.maxAttempts', sync.maxAttempts),
      backoffBaseMs: read('sync.backoffBaseMs', sync.backoffBaseMs),
      backoffMaxMs: read('sync.backoffMaxMs', sync.backoffMaxMs),
      pollIntervalMs: read('sync.pollIntervalMs', sync.pollIntervalMs),
      leaseMs: read('sync.leaseMs', sync.leaseMs),
      worker: read('sync.worker', sync.worker),
      onFirstSignIn: read('sync.onFirstSignIn', sync.onFirstSignIn),
    };

    const lifecycle = options.lifecycle ?? {};
    this.lifecycle = {
      suspendReason: read('lifecycle.suspendReason', lifecycle.suspendReason),
      suspendDays: read('lifecycle.suspendDays', lifecycle.suspendDays),
      forgetAction: read('lifecycle.forgetAction', lifecycle.forgetAction),
      anonymizedSignIn: read('lifecycle.anonymizedSignIn', lifecycle.anonymizedSignIn),
    };

    // A site with only Vanilla forums has no Discourse forum: `forums` may then be empty.
    const vanillaOnly =
      options.vanilla !== undefined &&
      (options.forums === undefined || (Array.isArray(options.forums) && !options.forums.length));
    if (!vanillaOnly && (!Array.isArray(options.forums) || options.forums.length === 0)) {
      fail(
        'forums must list at least one Discourse forum ({ url, secret }), unless vanilla lists Vanilla forums.',
      );
    }
    const names = new Set<string>();
    const ownStaffRoles: { admin?: string[]; moderator?: string[] }[] = [];
    this.forums = (options.forums ?? []).map((forum, i) => {
      const url = read<string>('forums[].url', forum?.url, i).replace(/\/+$/, '');
      const secret = read<string>('forums[].secret', forum.secret, i);
      const name =
        read<string | undefined>('forums[].name', forum.name, i) ?? new URL(url).hostname;
      if (names.has(name))
        fail(`forums[${i}].name "${name}" is used twice; give each forum its own name.`);
      names.add(name);
      const api: ResolvedForum['api'] = forum.api
        ? {
            key: read('forums[].api.key', forum.api.key, i),
            username: read('forums[].api.username', forum.api.username || undefined, i),
            timeoutMs: read('forums[].api.timeoutMs', forum.api.timeoutMs, i),
            ratePerMinute:
              read<number | undefined>('forums[].api.ratePerMinute', forum.api.ratePerMinute, i) ??
              this.sync.ratePerMinute,
          }
        : undefined;
      const groupMap = read<Record<string, string> | undefined>(
        'forums[].groupMap',
        forum.groupMap,
        i,
      );
      if (groupMap && !options.groups) {
        fail(
          `forums[${i}].groupMap needs groups: { guildId } (the Discord server whose roles map to groups).`,
        );
      }
      const adminRoles = read<string[] | undefined>('forums[].adminRoles', forum.adminRoles, i);
      const moderatorRoles = read<string[] | undefined>(
        'forums[].moderatorRoles',
        forum.moderatorRoles,
        i,
      );
      if ((adminRoles || moderatorRoles) && !options.groups) {
        fail(
          `forums[${i}].adminRoles and moderatorRoles need groups: { guildId } (the Discord server whose roles grant staff flags).`,
        );
      }
      // The shared lists (read below, with groups) fill what the forum does not set.
      ownStaffRoles.push({ admin: adminRoles, moderator: moderatorRoles });
      return {
        ...parseForumBase(url),
        url,
        name,
        secret,
        api,
        webhookSecret: read<string | undefined>('forums[].webhookSecret', forum.webhookSecret, i),
        groups: groupMap
          ? { roleGroups: { ...groupMap }, managed: [...new Set(Object.values(groupMap))].sort() }
          : undefined,
        staffRoles: { admin: [], moderator: [] },
      };
    });
    checkDistinctForums(this.forums, fail);

    const d = options.discord;
    const clientId = read<string>('discord.clientId', d?.clientId);
    const clientSecret = read<string>('discord.clientSecret', d.clientSecret);
    const baseUrl = read<string>('discord.baseUrl', d.baseUrl).replace(/\/+$/, '');
    const extraScopes = read<string[] | undefined>('discord.extraScopes', d.extraScopes) ?? [];
    this.discord = {
      clientId,
      clientSecret,
      baseUrl,
      authorizationUrl: `${baseUrl}/oauth2/authorize`,
      tokenUrl: `${baseUrl}/api/oauth2/token`,
      apiUrl: `${baseUrl}/api/v10`,
      callbackUrl: read('discord.callbackUrl', d.callbackUrl || undefined),
      scopes: [
        ...new Set([
          'identify',
          'email',
          ...(options.groups ? ['guilds.members.read'] : []),
          ...extraScopes,
        ]),
      ],
      userAgent: d.userAgent ?? `nestjs-discourse-connect (${this.publicUrl}, ${packageVersion()})`,
      timeoutMs: read('discord.timeoutMs', d.timeoutMs),
    };

    const s = options.session;
    this.session = {
      secret: read('session.secret', s?.secret),
      cookieName: read('session.cookieName', s.cookieName),
      maxAgeSeconds: read('session.maxAgeSeconds', s.maxAgeSeconds),
      installMiddleware: read('session.installMiddleware', s.installMiddleware),
      readCacheMs: read('session.readCacheMs', s.readCacheMs),
    };

    if (options.groups) {
      const g = options.groups;
      const roleGroups =
        g.roleGroups === undefined
          ? {}
          : read<Record<string, string>>('groups.roleGroups', g.roleGroups);
      this.groups = {
        guildId: read('groups.guildId', g.guildId),
        roleGroups: { ...roleGroups },
        fullGroupList: read('groups.fullGroupList', g.fullGroupList),
        requireMembership: read('groups.requireMembership', g.requireMembership),
        adminRoles: [...(read<string[] | undefined>('groups.adminRoles', g.adminRoles) ?? [])],
        moderatorRoles: [
          ...(read<string[] | undefined>('groups.moderatorRoles', g.moderatorRoles) ?? []),
        ],
        staffRequireMfa: read('groups.staffRequireMfa', g.staffRequireMfa),
        managed: [...new Set(Object.values(roleGroups))].sort(),
      };
      const shared = this.groups;
      this.forums.forEach((forum, i) => {
        forum.staffRoles = {
          admin: [...(ownStaffRoles[i].admin ?? shared.adminRoles)],
          moderator: [...(ownStaffRoles[i].moderator ?? shared.moderatorRoles)],
        };
      });
    }

    const rateLimit = options.rateLimit;
    if (
      rateLimit !== undefined &&
      rateLimit !== false &&
      (typeof rateLimit !== 'object' || rateLimit === null)
    ) {
      fail('rateLimit must be false or { limit, requestLimit, ttlSeconds }.');
    }
    this.rateLimit = {
      enabled: rateLimit !== false,
      limit: read('rateLimit.limit', (rateLimit || {}).limit),
      requestLimit: read('rateLimit.requestLimit', (rateLimit || {}).requestLimit),
      ttlSeconds: read('rateLimit.ttlSeconds', (rateLimit || {}).ttlSeconds),
    };
    this.securityHeaders = read('securityHeaders', options.securityHeaders);

    const sso = options.sso ?? {};
    this.sso = {
      resumeWithinSeconds: read('sso.resumeWithinSeconds', sso.resumeWithinSeconds),
      minUsernameLength: read('sso.minUsernameLength', sso.minUsernameLength),
      maxUsernameLength: read('sso.maxUsernameLength', sso.maxUsernameLength),
    };
    const { minUsernameLength: min, maxUsernameLength: max } = this.sso;
    if (!Number.isInteger(min) || !Number.isInteger(max) || min > max || max > 60) {
      fail(
        `sso.minUsernameLength and sso.maxUsernameLength must be whole numbers with min ≤ max ≤ 60, as on the forum (got ${min} and ${max}).`,
      );
    }

    if (options.redis !== undefined) {
      const r = options.redis;
      // The URL may carry a password: the schema marks it secret, it never appears in a message.
      this.redis = { url: read('redis.url', r?.url), prefix: read('redis.prefix', r.prefix) };
    }

    if (options.bot !== undefined) {
      const b = options.bot;
      const token = read<string>('bot.token', b?.token);
      if (!this.groups) {
        fail(
          'bot needs groups: { guildId } (the Discord server whose members the bot watches; set DISCORD_GUILD_ID).',
        );
      }
      this.bot = {
        token,
        guildId: this.groups!.guildId,
        reconcileSeconds: read('bot.reconcileSeconds', b.reconcileSeconds),
        leaveAction: read('bot.leaveAction', b.leaveAction),
        gateway: read('bot.gateway', b.gateway),
        leaseMs: read('bot.leaseMs', b.leaseMs),
      };
    }

    this.afterSignOutPath = read('afterSignOutPath', options.afterSignOutPath);
    this.afterSignInPath = read('afterSignInPath', options.afterSignInPath);
    if (options.vanilla !== undefined) this.vanilla = vanillaSettings(options, read, fail);
  }

  /**
   * Where `POST /auth/logout` sends a person: `afterSignOutPath`, or with
   * `vanilla.signOutThroughForum` through each Vanilla forum's `/entry/signout?target=` first.
   */
  get afterLocalSignOutUrl(): string {
    if (!this.vanilla?.signOutThroughForum) return this.afterSignOutPath;
    return this.vanilla.forums.reduceRight(
      (next, forum) => `${forum.url}/entry/signout?${new URLSearchParams({ target: next })}`,
      `${this.publicUrl}${this.afterSignOutPath}`,
    );
  }

  /** The Vanilla forum chosen by `?forum=<name>`, or the first one. */
  vanillaForumByName(name?: string): ResolvedVanillaForum | undefined {
    const forums = this.vanilla?.forums ?? [];
    return name ? forums.find((f) => f.name === name) : forums[0];
  }

  /** Forums with an admin API key: the ones the sync queue works for. */
  get apiForums(): ResolvedForum[] {
    return this.forums.filter((f) => f.api);
  }

  /** The forum chosen by `?forum=<name>`, or the first one. */
  forumByName(name?: string): ResolvedForum | undefined {
    return name ? this.forums.find((f) => f.name === name) : this.forums[0];
  }
}

/** The `vanilla` options checked and completed with their defaults. */
function vanillaSettings(
  options: DiscourseConnectModuleOptions,
  read: <T>(option: string, value: unknown, forum?: number) => T,
  fail: (m: string) => never,
): NonNullable<DiscourseConnectSettings['vanilla']> {
  const v = options.vanilla!;
  if (typeof v !== 'object' || v === null || !Array.isArray(v.forums) || v.forums.length === 0) {
    fail('vanilla.forums must list at least one Vanilla forum ({ url, clientId, secret }).');
  }
  const forums = v.forums.map((forum, i): ResolvedVanillaForum => {
    const vf = <T>(option: string, value: unknown): T =>
      read<T>(`vanilla.forums[].${option}`, value, i);
    const url = vf<string>('url', forum?.url).replace(/\/+$/, '');
    const roleMap = vf<Record<string, string> | undefined>('roleMap', forum.roleMap);
    if (roleMap && !options.groups) {
      fail(
        `vanilla.forums[${i}].roleMap needs groups: { guildId } (the Discord server whose roles map to Vanilla roles).`,
      );
    }
    return {
      ...parseForumBase(url),
      url,
      name: vf<string | undefined>('name', forum.name) ?? new URL(url).hostname,
      clientId: vf('clientId', forum.clientId),
      secret: vf('secret', forum.secret),
      algorithm: vf('algorithm', forum.algorithm),
      roleMap: roleMap ? { ...roleMap } : undefined,
      defaultSignIn: vf('defaultSignIn', forum.defaultSignIn),
    };
  });
  forums.forEach((a, i) => {
    for (const b of forums.slice(i + 1)) {
      if (a.name === b.name) {
        fail(
          `vanilla.forums name "${a.name}" is used twice; give each Vanilla forum its own name.`,
        );
      }
      if (a.clientId === b.clientId) {
        fail(
          `Vanilla forums "${a.name}" and "${b.name}" have the same client id: each jsConnect connection needs its own.`,
        );
      }
      if (urlsOverlap(a.url, b.url)) {
        fail(
          `Vanilla forums "${a.name}" (${a.url}) and "${b.name}" (${b.url}) overlap: one URL is inside the other. ` +
            'Give each forum its own base URL.',
        );
      }
    }
  });
  return {
    forums,
    defaultRole: read('vanilla.defaultRole', v.defaultRole),
    guests: read('vanilla.guests', v.guests),
    sendUnverifiedEmail: read('vanilla.sendUnverifiedEmail', v.sendUnverifiedEmail),
    signOutThroughForum: read('vanilla.signOutThroughForum', v.signOutThroughForum),
  };
}

/**
 * Two forums with the same secret, or with URLs one inside the other, cannot be told apart: the
 * first would answer every sign-in, and the other's sign-ins would be refused.
 */
function checkDistinctForums(forums: readonly ResolvedForum[], fail: (m: string) => never): void {
  forums.forEach((a, i) => {
    for (const b of forums.slice(i + 1)) {
      if (a.secret === b.secret) {
        fail(
          `forums "${a.name}" and "${b.name}" have the same secret: give each forum its own ` +
            "discourse_connect_secret (set a new one in the forum's settings and in its secret option or variable).",
        );
      }
      if (urlsOverlap(a.url, b.url)) {
        fail(
          `forums "${a.name}" (${a.url}) and "${b.name}" (${b.url}) overlap: one URL is inside the other, ` +
            'so a sign-in could not tell them apart. Give each forum its own base URL (another host, or ' +
            'sibling subfolders such as https://example.com/one and https://example.com/two).',
        );
      }
    }
  });
}

/** Same origin, and one path a prefix path of the other (`/forum` and `/forum/x`, not `/forum2`). */
function urlsOverlap(a: string, b: string): boolean {
  const x = new URL(a);
  const y = new URL(b);
  if (x.origin !== y.origin) return false;
  const p = x.pathname.replace(/\/+$/, '') + '/';
  const q = y.pathname.replace(/\/+$/, '') + '/';
  return p.startsWith(q) || q.startsWith(p);
}

/**
 * An option's value checked by its schema entry, or the entry's default when it is not given.
 * `forum` is the index of the forum, for the `forums[]` options.
 */
function readOption<T>(
  option: string,
  value: unknown,
  fail: (m: string) => never,
  forum?: number,
): T {
  const entry = configEntry(option);
  const name = forum === undefined ? option : option.replace('forums[]', `forums[${forum}]`);
  if (value === undefined) {
    if (entry.required) fail(`${name} is required: it ${entry.message}.`);
    return entry.default as T;
  }
  const problem = optionProblem(entry, value);
  if (problem !== undefined) fail(`${name} ${problem}.`);
  return value as T;
}
