import { DiscourseConnectConfigurationError } from './configuration.error';
import type {
  DiscourseConnectGroupsOptions,
  DiscourseConnectModuleOptions,
  DiscourseConnectSyncOptions,
} from '../discourse-connect-options.interface';
import { ForumBase, isSafeRelativePath, parseForumBase } from '../common/urls';

/** A forum with its URL parsed once. */
export interface ResolvedForum extends ForumBase {
  name: string;
  /** Base URL without a trailing slash. */
  url: string;
  secret: string;
  /** Admin API access, when a key is configured. */
  api?: { key: string; username: string; timeoutMs: number };
  webhookSecret?: string;
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
  /** Per-IP limit on the sign-in and SSO routes; `enabled: false` when turned off. */
  readonly rateLimit: { enabled: boolean; limit: number; ttlSeconds: number };
  readonly securityHeaders: boolean;
  /** Redis for sessions and the BullMQ sync queue; undefined when not configured. */
  readonly redis?: { url: string; prefix: string };

  constructor(options: DiscourseConnectModuleOptions) {
    const fail = (message: string): never => {
      throw new DiscourseConnectConfigurationError(message);
    };
    if (!options)
      fail('DiscourseConnectModule needs options: forums, discord, publicUrl and session.');
    const publicUrl = httpUrl(options.publicUrl, 'publicUrl', fail);
    if (new URL(publicUrl).pathname !== '/') {
      fail(`publicUrl must be an origin without a path (got a path in "${publicUrl}").`);
    }
    this.publicUrl = publicUrl.replace(/\/+$/, '');
    this.secureCookies = this.publicUrl.startsWith('https:');

    if (!Array.isArray(options.forums) || options.forums.length === 0) {
      fail('forums must list at least one Discourse forum ({ url, secret }).');
    }
    const names = new Set<string>();
    this.forums = options.forums.map((forum, i) => {
      const url = httpUrl(forum?.url, `forums[${i}].url`, fail).replace(/\/+$/, '');
      if (typeof forum.secret !== 'string' || forum.secret.length < 10) {
        fail(
          `forums[${i}].secret must be at least 10 characters (Discourse refuses shorter secrets).`,
        );
      }
      if (forum.name !== undefined && (typeof forum.name !== 'string' || !forum.name)) {
        fail(
          `forums[${i}].name must be a non-empty string (it is used in ?forum= on the forum link).`,
        );
      }
      const name = forum.name ?? new URL(url).hostname;
      if (names.has(name))
        fail(`forums[${i}].name "${name}" is used twice; give each forum its own name.`);
      names.add(name);
      let api: ResolvedForum['api'];
      if (forum.api) {
        if (typeof forum.api.key !== 'string' || forum.api.key.length < 8) {
          fail(`forums[${i}].api.key must be an admin API key from the forum (Admin → API).`);
        }
        const timeoutMs = positive(
          forum.api.timeoutMs ?? 10_000,
          `forums[${i}].api.timeoutMs`,
          fail,
        );
        api = { key: forum.api.key, username: forum.api.username || 'system', timeoutMs };
      }
      if (
        forum.webhookSecret !== undefined &&
        (typeof forum.webhookSecret !== 'string' || forum.webhookSecret.length < 12)
      ) {
        fail(
          `forums[${i}].webhookSecret must be at least 12 characters (the secret of the forum's webhook).`,
        );
      }
      return {
        ...parseForumBase(url),
        url,
        name,
        secret: forum.secret,
        api,
        webhookSecret: forum.webhookSecret,
      };
    });

    const d = options.discord;
    if (!d?.clientId) fail("discord.clientId is required (the Discord application's client id).");
    if (!d.clientSecret)
      fail("discord.clientSecret is required (the Discord application's client secret).");
    const baseUrl = httpUrl(d.baseUrl ?? 'https://discord.com', 'discord.baseUrl', fail).replace(
      /\/+$/,
      '',
    );
    if (
      d.extraScopes !== undefined &&
      !(Array.isArray(d.extraScopes) && d.extraScopes.every((x) => typeof x === 'string' && x))
    ) {
      fail(
        'discord.extraScopes must be a list of Discord OAuth2 scopes, e.g. ["guilds.members.read"].',
      );
    }
    const callbackUrl = d.callbackUrl
      ? httpUrl(d.callbackUrl, 'discord.callbackUrl', fail)
      : undefined;
    this.discord = {
      clientId: d.clientId,
      clientSecret: d.clientSecret,
      baseUrl,
      authorizationUrl: `${baseUrl}/oauth2/authorize`,
      tokenUrl: `${baseUrl}/api/oauth2/token`,
      apiUrl: `${baseUrl}/api/v10`,
      callbackUrl,
      scopes: [
        ...new Set([
          'identify',
          'email',
          ...(options.groups ? ['guilds.members.read'] : []),
          ...(d.extraScopes ?? []),
        ]),
      ],
      userAgent: d.userAgent ?? `nestjs-discourse-connect (${this.publicUrl}, 0.1.0)`,
      timeoutMs: positive(d.timeoutMs ?? 10_000, 'discord.timeoutMs', fail),
    };

    const s = options.session;
    if (!s?.secret || s.secret.length < 32) {
      fail('session.secret must be at least 32 characters (it signs the session cookie).');
    }
    this.session = {
      secret: s.secret,
      cookieName: s.cookieName ?? 'dc.sid',
      maxAgeSeconds: positive(s.maxAgeSeconds ?? 14 * 24 * 3600, 'session.maxAgeSeconds', fail),
      installMiddleware: s.installMiddleware ?? true,
      readCacheMs: s.readCacheMs ?? 1000,
    };
    if (!Number.isInteger(this.session.readCacheMs) || this.session.readCacheMs < 0) {
      fail('session.readCacheMs must be a whole number of milliseconds, 0 or more.');
    }

    // express-session would otherwise throw on every response that sets the cookie.
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(this.session.cookieName)) {
      fail("session.cookieName must be a cookie name: letters, digits and !#$%&'*+-.^_`|~ only.");
    }

    const sync = options.sync ?? {};
    this.sync = {
      ratePerMinute: sync.ratePerMinute ?? 60,
      maxAttempts: sync.maxAttempts ?? 10,
      backoffBaseMs: sync.backoffBaseMs ?? 2000,
      backoffMaxMs: sync.backoffMaxMs ?? 600_000,
      pollIntervalMs: sync.pollIntervalMs ?? 500,
      leaseMs: sync.leaseMs ?? 60_000,
      worker: sync.worker ?? true,
      onFirstSignIn: sync.onFirstSignIn ?? false,
    };
    for (const key of [
      'ratePerMinute',
      'maxAttempts',
      'backoffBaseMs',
      'backoffMaxMs',
      'pollIntervalMs',
      'leaseMs',
    ] as const) {
      if (!(Number.isFinite(this.sync[key]) && this.sync[key] > 0))
        fail(`sync.${key} must be a positive number.`);
    }

    if (options.groups) {
      const g = options.groups;
      if (!/^[0-9]{1,20}$/.test(g.guildId ?? ''))
        fail('groups.guildId must be a Discord server id (digits).');
      const entries = Object.entries(g.roleGroups ?? {});
      if (entries.length === 0)
        fail('groups.roleGroups must map at least one Discord role id to a forum group.');
      for (const [role, group] of entries) {
        if (!/^[0-9]{1,20}$/.test(role))
          fail(`groups.roleGroups: "${role}" is not a Discord role id (digits).`);
        if (!/^[A-Za-z0-9_.-]{1,60}$/.test(group)) {
          fail(
            `groups.roleGroups: "${group}" is not a valid forum group name (letters, digits, _ . -).`,
          );
        }
      }
      this.groups = {
        guildId: g.guildId,
        roleGroups: { ...g.roleGroups },
        fullGroupList: g.fullGroupList ?? false,
        requireMembership: g.requireMembership ?? false,
        managed: [...new Set(entries.map(([, group]) => group))].sort(),
      };
    }

    const rateLimit = options.rateLimit;
    if (
      rateLimit !== undefined &&
      rateLimit !== false &&
      (typeof rateLimit !== 'object' || rateLimit === null)
    ) {
      fail('rateLimit must be false or { limit, ttlSeconds }.');
    }
    this.rateLimit = {
      enabled: rateLimit !== false,
      limit: positive((rateLimit || {}).limit ?? 30, 'rateLimit.limit', fail),
      ttlSeconds: positive((rateLimit || {}).ttlSeconds ?? 60, 'rateLimit.ttlSeconds', fail),
    };
    if (options.securityHeaders !== undefined && typeof options.securityHeaders !== 'boolean') {
      fail('securityHeaders must be true or false.');
    }
    this.securityHeaders = options.securityHeaders ?? true;

    if (options.redis !== undefined) {
      const r = options.redis;
      // The URL may carry a password: never put it in a message.
      let parsed: URL | undefined;
      try {
        parsed = typeof r?.url === 'string' ? new URL(r.url) : undefined;
      } catch {
        parsed = undefined;
      }
      if (
        !parsed ||
        (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') ||
        !parsed.hostname
      ) {
        fail('redis.url must be a Redis URL such as redis://localhost:6379 (rediss:// for TLS).');
      }
      if (
        r.prefix !== undefined &&
        (typeof r.prefix !== 'string' || !/^[A-Za-z0-9_.:-]{1,64}$/.test(r.prefix))
      ) {
        fail('redis.prefix must be 1-64 letters, digits or _ . : - (e.g. "dc:").');
      }
      this.redis = { url: r.url, prefix: r.prefix ?? 'dc:' };
    }

    this.afterSignOutPath = options.afterSignOutPath ?? '/';
    this.afterSignInPath = options.afterSignInPath ?? '/';
    for (const [key, value] of [
      ['afterSignOutPath', this.afterSignOutPath],
      ['afterSignInPath', this.afterSignInPath],
    ] as const) {
      if (!isSafeRelativePath(value)) fail(`${key} must be a path on this app, such as "/".`);
    }
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

/** A finite number above zero (a timeout, a lifetime). */
function positive(value: unknown, key: string, fail: (m: string) => never): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0)
    fail(`${key} must be a positive number.`);
  return value as number;
}

function httpUrl(value: unknown, key: string, fail: (m: string) => never): string {
  if (typeof value !== 'string' || !value) return fail(`${key} is required: an http(s) URL.`);
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    return fail(
      `${key} must be an absolute http(s) URL, e.g. https://example.com (got "${value}").`,
    );
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    fail(`${key} must start with http:// or https:// (got "${parsed.protocol}").`);
  }
  if (parsed.username || parsed.password || parsed.search || parsed.hash) {
    fail(`${key} must not contain credentials, a query or a fragment.`);
  }
  return value;
}
