import { isSafeRelativePath } from '../common/urls';

/**
 * The one definition of the module's configuration: every option with a rule and a default, and the
 * environment variable that sets it. The env class and its validation, the env → options mapping, the
 * list of accepted variables (and the README's configuration table, checked by a test) and the
 * defaults and rules of `DiscourseConnectSettings` all follow from this table.
 */

/** A Discord snowflake: a server, role or user id. */
export const DISCORD_ID = /^[0-9]{1,20}$/;
/** A forum group name. */
export const FORUM_GROUP = /^[A-Za-z0-9_.-]{1,60}$/;
/** A cookie name express-session and @fastify/session accept. */
const COOKIE_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** What `DISCOURSE_GROUP_MAP` looks like: `123=members,456=moderators`. */
const GROUP_MAP = new RegExp(
  `^\\s*${inner(DISCORD_ID)}\\s*=\\s*${inner(FORUM_GROUP)}\\s*(,\\s*${inner(DISCORD_ID)}\\s*=\\s*${inner(FORUM_GROUP)}\\s*)*$`,
);
/** What `DISCOURSE_ADMIN_ROLES` looks like: `123,456`. */
const ROLE_LIST = new RegExp(`^\\s*${inner(DISCORD_ID)}\\s*(,\\s*${inner(DISCORD_ID)}\\s*)*$`);
/** A Vanilla jsConnect client id. */
const VANILLA_CLIENT_ID = /^[A-Za-z0-9_.:-]{1,100}$/;
/** A Vanilla role name: letters, digits, spaces inside ("Super Moderator") and _ . ' ( ) & + -. */
export const VANILLA_ROLE =
  /^[A-Za-z0-9_.'()&+-](?:[A-Za-z0-9 _.'()&+-]{0,98}[A-Za-z0-9_.'()&+-])?$/;
/** What `VANILLA_ROLE_MAP` looks like: `123=Member,456=Super Moderator`. */
const ROLE_NAME_MAP = new RegExp(
  `^\\s*${inner(DISCORD_ID)}\\s*=\\s*${inner(VANILLA_ROLE)}\\s*(,\\s*${inner(DISCORD_ID)}\\s*=\\s*${inner(VANILLA_ROLE)}\\s*)*$`,
);
/** The window of the per-IP rate limit, in seconds, when only the limit is given. */
const RATE_LIMIT_WINDOW_SECONDS = 60;

/** How a value is checked. Each kind checks an option's value and, unless the env binding has its own rule, a variable's text. */
export type ConfigRule =
  /** An absolute http(s) URL without credentials, query or fragment. */
  | { kind: 'httpUrl' }
  | { kind: 'minLength'; min: number }
  | { kind: 'nonEmpty' }
  | { kind: 'pattern'; pattern: RegExp }
  /** A finite number above zero; in the environment, a whole number. */
  | { kind: 'positive' }
  /** A whole number, 0 or more. */
  | { kind: 'wholeOrZero' }
  /** A whole number, `min` or more. */
  | { kind: 'wholeAtLeast'; min: number }
  | { kind: 'boolean' }
  /** A path on this app, such as `/`. */
  | { kind: 'relativePath' }
  | { kind: 'redisUrl' }
  /** A list of non-empty strings. */
  | { kind: 'stringList' }
  /** Discord role id → forum group name. */
  | { kind: 'roleGroups' }
  /** A list of Discord role ids. */
  | { kind: 'roleIds' }
  /** Discord role id → Vanilla role name. */
  | { kind: 'roleNames' };

/** How an environment variable sets an option. */
export interface EnvBinding {
  /** The variable's name. */
  readonly name: string;
  /** A value that passes, for examples and tests. */
  readonly example: string;
  /** The rule on the variable's text, when it is not the option's rule. */
  readonly rule?: ConfigRule;
  /** The human message for the variable, when it is not the option's: "… it <message>". */
  readonly message?: string;
  /** Read only when this other variable is set (checked all the same). */
  readonly needs?: string;
  /** Where the text goes, when not to the option converted by its type. */
  readonly toOptions?: (text: string) => readonly [path: string, value: unknown];
}

/**
 * How `DISCOURSE_FORUM_<NAME>_<suffix>` sets this option of the forum named `<name>` (the `<NAME>`
 * in lower case). Rule, message and example are the single-forum variable's unless given here.
 */
export interface ForumEnvBinding {
  /** The end of the variable's name, after `DISCOURSE_FORUM_<NAME>_`. */
  readonly suffix: string;
  /** A value that passes, when the entry has no single-forum variable. */
  readonly example?: string;
  readonly rule?: ConfigRule;
  readonly message?: string;
  /** Read only when the forum's variable with this suffix is set. */
  readonly needs?: string;
  /** The option value of the text, when not the text converted by the option's type. */
  readonly toValue?: (text: string) => unknown;
}

/** One option of `DiscourseConnectModuleOptions`, and the variable that sets it, if any. */
export interface ConfigEntry {
  /** Path in the options; `forums[]` is each forum (the environment sets the first one). */
  readonly option: string;
  readonly type: 'string' | 'number' | 'boolean' | 'list' | 'map';
  /** Used when the option is not given. */
  readonly default?: string | number | boolean;
  /** Required in its object (at the top level, or once the optional object it sits in is given). */
  readonly required?: boolean;
  /** Never repeated in a message, never logged. */
  readonly secret?: boolean;
  readonly rule: ConfigRule;
  /** What the value must be, after its name: "<name> <message>". */
  readonly message: string;
  readonly env?: EnvBinding;
  /** The per-forum variable (`forums[]` options only). */
  readonly forumEnv?: ForumEnvBinding;
}

/** Option objects that may be left out; what is required inside them is required only with them. */
export const OPTIONAL_SECTIONS = [
  'forums[].api',
  'groups',
  'redis',
  'sync',
  'rateLimit',
  'vanilla',
  'lifecycle',
  'bot',
] as const;

const POSITIVE = 'must be a positive number';
const BOOLEAN = 'must be true or false';
const APP_PATH = 'must be a path on this app, such as "/"';

/** The configuration table. */
export const DISCOURSE_CONNECT_SCHEMA = [
  {
    option: 'forums[].url',
    type: 'string',
    required: true,
    rule: { kind: 'httpUrl' },
    message: "must be the forum's base URL, e.g. https://forum.example.com",
    env: { name: 'DISCOURSE_URL', example: 'https://forum.example.com' },
    forumEnv: { suffix: 'URL' },
  },
  {
    option: 'forums[].secret',
    type: 'string',
    required: true,
    secret: true,
    rule: { kind: 'minLength', min: 10 },
    message: 'must be at least 10 characters, the same as discourse_connect_secret on the forum',
    env: { name: 'DISCOURSE_CONNECT_SECRET', example: 'forum-secret-0123456789' },
    forumEnv: { suffix: 'SECRET' },
  },
  {
    option: 'forums[].name',
    type: 'string',
    rule: { kind: 'nonEmpty' },
    message: 'must be a non-empty string (it is used in ?forum= on the forum link)',
  },
  {
    option: 'forums[].api.key',
    type: 'string',
    required: true,
    secret: true,
    rule: { kind: 'minLength', min: 8 },
    message: 'must be an admin API key created on the forum (Admin → API → New API Key)',
    env: { name: 'DISCOURSE_API_KEY', example: 'abcdefgh12345678' },
    forumEnv: { suffix: 'API_KEY' },
  },
  {
    option: 'forums[].api.username',
    type: 'string',
    default: 'system',
    rule: { kind: 'nonEmpty' },
    message: 'must be the forum username the API key acts as (usually system)',
    env: { name: 'DISCOURSE_API_USERNAME', example: 'sync-bot', needs: 'DISCOURSE_API_KEY' },
    forumEnv: { suffix: 'API_USERNAME', needs: 'API_KEY' },
  },
  {
    option: 'forums[].api.ratePerMinute',
    type: 'number',
    rule: { kind: 'positive' },
    message: "must be a positive number of requests per minute to this forum's admin API",
    forumEnv: {
      suffix: 'API_RATE_PER_MINUTE',
      example: '240',
      needs: 'API_KEY',
      message: 'must be a whole number of requests per minute, e.g. 60',
    },
  },
  {
    option: 'forums[].api.timeoutMs',
    type: 'number',
    default: 10_000,
    rule: { kind: 'positive' },
    message: POSITIVE,
  },
  {
    option: 'forums[].webhookSecret',
    type: 'string',
    secret: true,
    rule: { kind: 'minLength', min: 12 },
    message: 'must be the secret of the forum webhook, at least 12 characters',
    env: { name: 'DISCOURSE_WEBHOOK_SECRET', example: 'webhook-secret-0123' },
    forumEnv: { suffix: 'WEBHOOK_SECRET' },
  },
  {
    option: 'forums[].groupMap',
    type: 'map',
    rule: { kind: 'roleGroups' },
    message:
      "must map Discord role ids to this forum's groups, e.g. 123=members,456=moderators (needs groups.guildId)",
    forumEnv: {
      suffix: 'GROUP_MAP',
      example: '123=members, 789=staff',
      rule: { kind: 'pattern', pattern: GROUP_MAP },
      message: 'must map Discord role ids to forum groups, e.g. 123=members,456=moderators',
      toValue: parseGroupMap,
    },
  },
  // Staff flags from Discord roles: per forum.
  {
    option: 'forums[].adminRoles',
    type: 'list',
    rule: { kind: 'roleIds' },
    message:
      'must list Discord role ids that grant admin on this forum, e.g. ["123"] (needs groups.guildId)',
    forumEnv: {
      suffix: 'ADMIN_ROLES',
      rule: { kind: 'pattern', pattern: ROLE_LIST },
      message: 'must be Discord role ids separated by commas, e.g. 123,456',
      toValue: parseRoleList,
    },
  },
  {
    option: 'forums[].moderatorRoles',
    type: 'list',
    rule: { kind: 'roleIds' },
    message:
      'must list Discord role ids that grant moderator on this forum, e.g. ["123"] (needs groups.guildId)',
    forumEnv: {
      suffix: 'MODERATOR_ROLES',
      rule: { kind: 'pattern', pattern: ROLE_LIST },
      message: 'must be Discord role ids separated by commas, e.g. 123,456',
      toValue: parseRoleList,
    },
  },
  {
    option: 'discord.clientId',
    type: 'string',
    required: true,
    rule: { kind: 'nonEmpty' },
    message: 'must be the client id of your Discord application',
    env: { name: 'DISCORD_CLIENT_ID', example: '123456789012345678' },
  },
  {
    option: 'discord.clientSecret',
    type: 'string',
    required: true,
    secret: true,
    rule: { kind: 'nonEmpty' },
    message: 'must be the client secret of your Discord application',
    env: { name: 'DISCORD_CLIENT_SECRET', example: 'discord-client-secret' },
  },
  {
    option: 'discord.baseUrl',
    type: 'string',
    default: 'https://discord.com',
    rule: { kind: 'httpUrl' },
    message: 'must be an http(s) URL such as https://discord.com',
    env: { name: 'DISCORD_BASE_URL', example: 'http://127.0.0.1:9000' },
  },
  {
    option: 'discord.callbackUrl',
    type: 'string',
    rule: { kind: 'httpUrl' },
    message: 'must be the redirect URI registered with Discord, an http(s) URL',
  },
  {
    option: 'discord.extraScopes',
    type: 'list',
    rule: { kind: 'stringList' },
    message: 'must be a list of Discord OAuth2 scopes, e.g. ["guilds.members.read"]',
  },
  {
    option: 'discord.timeoutMs',
    type: 'number',
    default: 10_000,
    rule: { kind: 'positive' },
    message: POSITIVE,
  },
  {
    option: 'publicUrl',
    type: 'string',
    required: true,
    rule: { kind: 'httpUrl' },
    message: 'must be where this app is reachable, e.g. http://localhost:3000',
    env: { name: 'PUBLIC_URL', example: 'http://localhost:3000' },
  },
  {
    option: 'session.secret',
    type: 'string',
    required: true,
    secret: true,
    rule: { kind: 'minLength', min: 32 },
    message: 'must be at least 32 random characters (try: openssl rand -hex 32)',
    env: { name: 'SESSION_SECRET', example: 'session-secret-0123456789abcdef0123456789' },
  },
  {
    option: 'session.cookieName',
    type: 'string',
    default: 'dc.sid',
    rule: { kind: 'pattern', pattern: COOKIE_NAME },
    message: "must be a cookie name: letters, digits and !#$%&'*+-.^_`|~ only",
  },
  {
    option: 'session.maxAgeSeconds',
    type: 'number',
    default: 14 * 24 * 3600,
    rule: { kind: 'positive' },
    message: POSITIVE,
  },
  {
    option: 'session.installMiddleware',
    type: 'boolean',
    default: true,
    rule: { kind: 'boolean' },
    message: BOOLEAN,
  },
  {
    option: 'session.readCacheMs',
    type: 'number',
    default: 1000,
    rule: { kind: 'wholeOrZero' },
    message: 'must be a whole number of milliseconds, 0 or more',
  },
  {
    option: 'sync.ratePerMinute',
    type: 'number',
    default: 60,
    rule: { kind: 'positive' },
    message: POSITIVE,
    env: {
      name: 'DISCOURSE_API_RATE_PER_MINUTE',
      example: '120',
      message: 'must be a whole number of requests per minute, e.g. 60',
    },
  },
  {
    option: 'sync.maxAttempts',
    type: 'number',
    default: 10,
    rule: { kind: 'positive' },
    message: POSITIVE,
  },
  {
    option: 'sync.backoffBaseMs',
    type: 'number',
    default: 2000,
    rule: { kind: 'positive' },
    message: POSITIVE,
  },
  {
    option: 'sync.backoffMaxMs',
    type: 'number',
    default: 600_000,
    rule: { kind: 'positive' },
    message: POSITIVE,
  },
  {
    option: 'sync.pollIntervalMs',
    type: 'number',
    default: 500,
    rule: { kind: 'positive' },
    message: POSITIVE,
  },
  {
    option: 'sync.leaseMs',
    type: 'number',
    default: 60_000,
    rule: { kind: 'positive' },
    message: POSITIVE,
  },
  {
    option: 'sync.worker',
    type: 'boolean',
    default: true,
    rule: { kind: 'boolean' },
    message: BOOLEAN,
  },
  {
    option: 'sync.onFirstSignIn',
    type: 'boolean',
    default: false,
    rule: { kind: 'boolean' },
    message: BOOLEAN,
  },
  // Member lifecycle: suspensions, forgetting a member, anonymized forum accounts.
  {
    option: 'lifecycle.suspendReason',
    type: 'string',
    default: 'Suspended by the site.',
    rule: { kind: 'nonEmpty' },
    message: 'must be a non-empty text (the reason the forum shows for a suspension)',
    env: { name: 'DISCOURSE_SUSPEND_REASON', example: 'Banned from the Discord server.' },
  },
  {
    option: 'lifecycle.suspendDays',
    type: 'number',
    default: 365_000,
    rule: { kind: 'positive' },
    message:
      'must be a positive whole number of days (default 365000, which the forum shows as "forever")',
    env: { name: 'DISCOURSE_SUSPEND_DAYS', example: '30' },
  },
  {
    option: 'lifecycle.forgetAction',
    type: 'string',
    default: 'anonymize',
    rule: { kind: 'pattern', pattern: /^(anonymize|delete|none)$/ },
    message:
      'must be anonymize, delete or none (what forgetting a member does to their forum accounts)',
    env: { name: 'DISCOURSE_FORGET_ACTION', example: 'delete' },
  },
  {
    option: 'lifecycle.anonymizedSignIn',
    type: 'string',
    default: 'new-account',
    rule: { kind: 'pattern', pattern: /^(new-account|refuse)$/ },
    message: 'must be new-account or refuse (a sign-in after the forum anonymized the account)',
    env: { name: 'DISCOURSE_ANONYMIZED_SIGN_IN', example: 'refuse' },
  },
  // End of member lifecycle.
  {
    option: 'groups.guildId',
    type: 'string',
    required: true,
    rule: { kind: 'pattern', pattern: DISCORD_ID },
    message: 'must be the id of your Discord server (digits only)',
    env: { name: 'DISCORD_GUILD_ID', example: '223456789012345678' },
  },
  {
    option: 'groups.roleGroups',
    type: 'map',
    rule: { kind: 'roleGroups' },
    message: 'must map Discord role ids to forum groups, e.g. 123=members,456=moderators',
    env: {
      name: 'DISCOURSE_GROUP_MAP',
      example: '123=members, 456=moderators',
      rule: { kind: 'pattern', pattern: GROUP_MAP },
      toOptions: (text) => ['groups.roleGroups', parseGroupMap(text)],
    },
  },
  {
    option: 'groups.fullGroupList',
    type: 'boolean',
    default: false,
    rule: { kind: 'boolean' },
    message: BOOLEAN,
    env: { name: 'DISCOURSE_GROUPS_FULL_LIST', example: 'true', needs: 'DISCORD_GUILD_ID' },
  },
  {
    option: 'groups.requireMembership',
    type: 'boolean',
    default: false,
    rule: { kind: 'boolean' },
    message: BOOLEAN,
    env: {
      name: 'DISCORD_REQUIRE_GUILD_MEMBERSHIP',
      example: 'true',
      needs: 'DISCORD_GUILD_ID',
    },
  },
  // Staff flags from Discord roles: shared by every forum.
  {
    option: 'groups.adminRoles',
    type: 'list',
    rule: { kind: 'roleIds' },
    message: 'must list Discord role ids that grant admin, e.g. ["123"]',
    env: {
      name: 'DISCOURSE_ADMIN_ROLES',
      example: '123, 456',
      rule: { kind: 'pattern', pattern: ROLE_LIST },
      message: 'must be Discord role ids separated by commas, e.g. 123,456',
      toOptions: (text) => ['groups.adminRoles', parseRoleList(text)],
    },
  },
  {
    option: 'groups.moderatorRoles',
    type: 'list',
    rule: { kind: 'roleIds' },
    message: 'must list Discord role ids that grant moderator, e.g. ["123"]',
    env: {
      name: 'DISCOURSE_MODERATOR_ROLES',
      example: '789',
      rule: { kind: 'pattern', pattern: ROLE_LIST },
      message: 'must be Discord role ids separated by commas, e.g. 123,456',
      toOptions: (text) => ['groups.moderatorRoles', parseRoleList(text)],
    },
  },
  {
    option: 'groups.staffRequireMfa',
    type: 'boolean',
    default: true,
    rule: { kind: 'boolean' },
    message: BOOLEAN,
    env: { name: 'DISCOURSE_STAFF_REQUIRE_MFA', example: 'false', needs: 'DISCORD_GUILD_ID' },
  },
  {
    option: 'bot.token',
    type: 'string',
    required: true,
    secret: true,
    rule: { kind: 'minLength', min: 10 },
    message:
      "must be your Discord application's bot token (Developer Portal → your application → Bot → Reset Token)",
    env: { name: 'DISCORD_BOT_TOKEN', example: 'bot-token-0123456789abcdef' },
  },
  {
    option: 'bot.reconcileSeconds',
    type: 'number',
    default: 3600,
    rule: { kind: 'wholeAtLeast', min: 5 },
    message: 'must be a whole number of seconds, 5 or more (default 3600)',
    env: {
      name: 'DISCORD_RECONCILE_SECONDS',
      example: '900',
      needs: 'DISCORD_BOT_TOKEN',
      rule: { kind: 'pattern', pattern: /^([5-9]|[1-9][0-9]{1,6})$/ },
    },
  },
  {
    option: 'bot.leaveAction',
    type: 'string',
    default: 'logout',
    rule: { kind: 'pattern', pattern: /^(groups|logout|suspend)$/ },
    message: 'must be groups, logout or suspend',
    env: { name: 'DISCORD_GUILD_LEAVE_ACTION', example: 'suspend', needs: 'DISCORD_BOT_TOKEN' },
  },
  {
    option: 'bot.gateway',
    type: 'boolean',
    default: true,
    rule: { kind: 'boolean' },
    message: BOOLEAN,
  },
  {
    option: 'bot.leaseMs',
    type: 'number',
    default: 30_000,
    rule: { kind: 'wholeAtLeast', min: 1000 },
    message: 'must be a whole number of milliseconds, 1000 or more (default 30000)',
  },
  {
    option: 'rateLimit.limit',
    type: 'number',
    default: 30,
    rule: { kind: 'positive' },
    message: POSITIVE,
    env: {
      name: 'DISCOURSE_CONNECT_RATE_LIMIT',
      example: '120',
      rule: { kind: 'pattern', pattern: /^(off|[1-9][0-9]{0,5})$/ },
      message: 'must be a whole number of failed requests per minute per IP, e.g. 30, or off',
      toOptions: (text) =>
        text === 'off'
          ? ['rateLimit', false]
          : ['rateLimit', { limit: Number(text), ttlSeconds: RATE_LIMIT_WINDOW_SECONDS }],
    },
  },
  {
    option: 'rateLimit.requestLimit',
    type: 'number',
    default: 200,
    rule: { kind: 'positive' },
    message: POSITIVE,
  },
  {
    option: 'rateLimit.ttlSeconds',
    type: 'number',
    default: RATE_LIMIT_WINDOW_SECONDS,
    rule: { kind: 'positive' },
    message: POSITIVE,
  },
  {
    option: 'securityHeaders',
    type: 'boolean',
    default: true,
    rule: { kind: 'boolean' },
    message: BOOLEAN,
  },
  {
    option: 'sso.resumeWithinSeconds',
    type: 'number',
    default: 25 * 60,
    rule: { kind: 'positive' },
    message: "must be a positive number of seconds, under the forum's nonce lifetime (30 minutes)",
  },
  {
    option: 'sso.minUsernameLength',
    type: 'number',
    default: 3,
    rule: { kind: 'positive' },
    message: "must be the forum's min_username_length, a whole number (default 3)",
  },
  {
    option: 'sso.maxUsernameLength',
    type: 'number',
    default: 20,
    rule: { kind: 'positive' },
    message: "must be the forum's max_username_length, a whole number (default 20)",
  },
  {
    option: 'redis.url',
    type: 'string',
    required: true,
    secret: true,
    rule: { kind: 'redisUrl' },
    message:
      'must be a Redis URL such as redis://localhost:6379 or rediss://user:password@host:6380/0',
    env: {
      name: 'REDIS_URL',
      example: 'redis://:password@cache:6379/2',
      rule: { kind: 'pattern', pattern: /^rediss?:\/\/[^\s/?#]+(\/[0-9]{1,2})?\/?$/ },
    },
  },
  {
    option: 'redis.prefix',
    type: 'string',
    default: 'dc:',
    rule: { kind: 'pattern', pattern: /^[A-Za-z0-9_.:-]{1,64}$/ },
    message: 'must be 1-64 letters, digits or _ . : - (e.g. dc:)',
    env: { name: 'DISCOURSE_CONNECT_REDIS_PREFIX', example: 'site1:', needs: 'REDIS_URL' },
  },
  {
    option: 'afterSignOutPath',
    type: 'string',
    default: '/',
    rule: { kind: 'relativePath' },
    message: APP_PATH,
  },
  {
    option: 'afterSignInPath',
    type: 'string',
    default: '/',
    rule: { kind: 'relativePath' },
    message: APP_PATH,
  },
  // Vanilla forums (jsConnect v3). `VANILLA_FORUM_<NAME>_<suffix>` sets a `vanilla.forums[]` option.
  {
    option: 'vanilla.forums[].url',
    type: 'string',
    required: true,
    rule: { kind: 'httpUrl' },
    message: "must be the Vanilla forum's base URL, e.g. https://community.example.com",
    env: { name: 'VANILLA_URL', example: 'https://vanilla.example.com' },
    forumEnv: { suffix: 'URL' },
  },
  {
    option: 'vanilla.forums[].clientId',
    type: 'string',
    required: true,
    rule: { kind: 'pattern', pattern: VANILLA_CLIENT_ID },
    message:
      "must be the jsConnect connection's client id from Vanilla's dashboard (letters, digits, _ . : -)",
    env: { name: 'VANILLA_CLIENT_ID', example: '1234567890' },
    forumEnv: { suffix: 'CLIENT_ID' },
  },
  {
    option: 'vanilla.forums[].secret',
    type: 'string',
    required: true,
    secret: true,
    rule: { kind: 'minLength', min: 16 },
    message: "must be the jsConnect connection's secret from Vanilla's dashboard, 16+ characters",
    env: { name: 'VANILLA_SECRET', example: 'vanilla-secret-0123456789' },
    forumEnv: { suffix: 'SECRET' },
  },
  {
    option: 'vanilla.forums[].name',
    type: 'string',
    rule: { kind: 'nonEmpty' },
    message: 'must be a non-empty string (it is used in ?forum= on the Vanilla forum link)',
  },
  {
    option: 'vanilla.forums[].roleMap',
    type: 'map',
    rule: { kind: 'roleNames' },
    message:
      'must map Discord role ids to Vanilla role names, e.g. 123=Member,456=Moderator (needs groups.guildId)',
    env: {
      name: 'VANILLA_ROLE_MAP',
      example: '123=Member, 456=Super Moderator',
      rule: { kind: 'pattern', pattern: ROLE_NAME_MAP },
      message: 'must map Discord role ids to Vanilla role names, e.g. 123=Member,456=Moderator',
      needs: 'VANILLA_URL',
      toOptions: (text) => ['vanilla.forums[].roleMap', parseGroupMap(text)],
    },
    forumEnv: {
      suffix: 'ROLE_MAP',
      rule: { kind: 'pattern', pattern: ROLE_NAME_MAP },
      message: 'must map Discord role ids to Vanilla role names, e.g. 123=Member,456=Moderator',
      toValue: parseGroupMap,
    },
  },
  {
    option: 'vanilla.forums[].algorithm',
    type: 'string',
    default: 'HS256',
    rule: { kind: 'pattern', pattern: /^HS(256|384|512)$/ },
    message:
      "must be HS256, HS384 or HS512, the connection's signing algorithm in Vanilla's dashboard",
    env: { name: 'VANILLA_ALGORITHM', example: 'HS512', needs: 'VANILLA_URL' },
    forumEnv: { suffix: 'ALGORITHM' },
  },
  {
    option: 'vanilla.forums[].defaultSignIn',
    type: 'boolean',
    default: true,
    rule: { kind: 'boolean' },
    message: `${BOOLEAN} (true when the connection is the forum's default sign-in method)`,
    env: { name: 'VANILLA_DEFAULT_SIGN_IN', example: 'false', needs: 'VANILLA_URL' },
    forumEnv: { suffix: 'DEFAULT_SIGN_IN' },
  },
  {
    option: 'vanilla.defaultRole',
    type: 'string',
    default: 'Member',
    rule: { kind: 'pattern', pattern: VANILLA_ROLE },
    message: 'must be a Vanilla role name every member gets with a role map, e.g. Member',
    env: { name: 'VANILLA_DEFAULT_ROLE', example: 'Member' },
  },
  {
    option: 'vanilla.guests',
    type: 'boolean',
    default: false,
    rule: { kind: 'boolean' },
    message: `${BOOLEAN} (true answers people not signed in as guests instead of signing them in)`,
    env: { name: 'VANILLA_GUESTS', example: 'true' },
  },
  {
    option: 'vanilla.sendUnverifiedEmail',
    type: 'boolean',
    default: false,
    rule: { kind: 'boolean' },
    message: `${BOOLEAN} (true only with the forum's AutoConnect off)`,
    env: { name: 'VANILLA_SEND_UNVERIFIED_EMAIL', example: 'true' },
  },
  {
    option: 'vanilla.signOutThroughForum',
    type: 'boolean',
    default: false,
    rule: { kind: 'boolean' },
    message: `${BOOLEAN} (true sends people who sign out here through each Vanilla forum's sign-out)`,
    env: { name: 'VANILLA_SIGN_OUT_THROUGH_FORUM', example: 'true' },
  },
] as const satisfies readonly ConfigEntry[];

type Entry = (typeof DISCOURSE_CONNECT_SCHEMA)[number];
type EnvEntry = Extract<Entry, { env: EnvBinding }>;
/** The name of a variable the module reads. */
export type DiscourseConnectEnvName = EnvEntry['env']['name'];
type OptionalSection = (typeof OPTIONAL_SECTIONS)[number];
/** The variables the environment must set (the others may be left out). */
type RequiredEnvName<E = Extract<EnvEntry, { required: true }>> = E extends {
  option: `${OptionalSection}.${string}`;
}
  ? never
  : E extends { env: { name: infer N } }
    ? N
    : never;
/** The module's variables after validation: each one's text, absent when not set. */
export type DiscourseConnectEnvValues = {
  [K in Exclude<DiscourseConnectEnvName, RequiredEnvName>]?: string;
} & { [K in RequiredEnvName]: string };

/**
 * The variables of the features built on Discord roles: setting any of them needs
 * `DISCORD_GUILD_ID`, the server whose roles they name (boot says so). `forumSuffixes` are the
 * per-forum forms (`DISCOURSE_FORUM_<NAME>_<suffix>`). A new role-based variable goes here.
 */
export const ROLE_BASED_VARIABLES: { env: readonly string[]; forumSuffixes: readonly string[] } = {
  env: [
    'DISCOURSE_GROUP_MAP',
    'DISCOURSE_ADMIN_ROLES',
    'DISCOURSE_MODERATOR_ROLES',
    'VANILLA_ROLE_MAP',
    'DISCORD_BOT_TOKEN',
  ],
  forumSuffixes: ['GROUP_MAP', 'ADMIN_ROLES', 'MODERATOR_ROLES'],
};

/** Every entry, typed loosely for code that walks the table. */
export const CONFIG_ENTRIES: readonly ConfigEntry[] = DISCOURSE_CONNECT_SCHEMA;

/** The entries that an environment variable sets. */
export const ENV_ENTRIES = CONFIG_ENTRIES.filter(
  (e): e is ConfigEntry & { env: EnvBinding } => e.env !== undefined,
);

/** The names of the variables the module reads, in the table's order. */
export const ENV_NAMES: readonly string[] = ENV_ENTRIES.map((e) => e.env.name);

/** Where the per-forum variables start: `DISCOURSE_FORUM_<NAME>_<SUFFIX>`. */
export const FORUM_ENV_PREFIX = 'DISCOURSE_FORUM_';
/** A forum's `<NAME>` in its variables; the forum's name is it in lower case. */
export const FORUM_ENV_NAME = /^[A-Z0-9]+$/;
/** The forum the single-forum variables (`DISCOURSE_URL`, …) describe. */
export const DEFAULT_FORUM_NAME = 'default';

/** The entries a per-forum variable sets, with its binding completed from the single-forum one. */
export const FORUM_ENV_ENTRIES = CONFIG_ENTRIES.filter(
  (e): e is ConfigEntry & { forumEnv: ForumEnvBinding } =>
    e.forumEnv !== undefined && e.option.startsWith('forums[]'),
).map((entry) => ({
  entry,
  suffix: entry.forumEnv.suffix,
  example: entry.forumEnv.example ?? entry.env?.example ?? '',
  rule: entry.forumEnv.rule ?? entry.env?.rule ?? entry.rule,
  message: entry.forumEnv.message ?? entry.env?.message ?? entry.message,
  needs: entry.forumEnv.needs,
  /** Required for every forum the variables describe. */
  required: isRequiredInEnv(entry),
}));

/** Where the per-forum variables of Vanilla forums start: `VANILLA_FORUM_<NAME>_<SUFFIX>`. */
export const VANILLA_FORUM_ENV_PREFIX = 'VANILLA_FORUM_';

/** The entries a `VANILLA_FORUM_<NAME>_*` variable sets, completed from the single-forum ones. */
export const VANILLA_FORUM_ENV_ENTRIES = CONFIG_ENTRIES.filter(
  (e): e is ConfigEntry & { forumEnv: ForumEnvBinding } =>
    e.forumEnv !== undefined && e.option.startsWith('vanilla.forums[]'),
).map((entry) => ({
  entry,
  suffix: entry.forumEnv.suffix,
  example: entry.forumEnv.example ?? entry.env?.example ?? '',
  rule: entry.forumEnv.rule ?? entry.env?.rule ?? entry.rule,
  message: entry.forumEnv.message ?? entry.env?.message ?? entry.message,
  needs: entry.forumEnv.needs,
  /** Required for every Vanilla forum the variables describe. */
  required: entry.required === true,
}));

/** The variable of one forum's option: `DISCOURSE_FORUM_<NAME>_<SUFFIX>`. */
export const forumEnvName = (name: string, suffix: string): string =>
  `${FORUM_ENV_PREFIX}${name}_${suffix}`;

/** The option value a per-forum variable's text stands for. */
export function forumOptionFromEnv(entry: ConfigEntry, text: string): unknown {
  if (entry.forumEnv?.toValue) return entry.forumEnv.toValue(text);
  return entry.type === 'number' ? Number(text) : entry.type === 'boolean' ? text === 'true' : text;
}

/** The entry of an option path (`forums[].secret`, `sync.leaseMs`). */
export function configEntry(option: string): ConfigEntry {
  const entry = CONFIG_ENTRIES.find((e) => e.option === option);
  if (!entry) throw new Error(`No configuration entry for ${option}`);
  return entry;
}

/** Whether the environment must set this entry's variable: required, and not inside an optional object. */
export function isRequiredInEnv(entry: ConfigEntry): boolean {
  return (
    entry.required === true &&
    !OPTIONAL_SECTIONS.some((section) => entry.option.startsWith(`${section}.`))
  );
}

/** The option value a variable's text stands for, and where it goes. */
export function optionFromEnv(
  entry: ConfigEntry & { env: EnvBinding },
  text: string,
): readonly [string, unknown] {
  if (entry.env.toOptions) return entry.env.toOptions(text);
  const value =
    entry.type === 'number' ? Number(text) : entry.type === 'boolean' ? text === 'true' : text;
  return [entry.option, value];
}

/**
 * What is wrong with an option value, as the text after its name ("must be …"), or undefined when
 * it follows the entry's rule. A secret entry's value never appears in it.
 */
export function optionProblem(entry: ConfigEntry, value: unknown): string | undefined {
  const rule = entry.rule;
  switch (rule.kind) {
    case 'httpUrl':
      return httpUrlProblem(value);
    case 'minLength':
      return typeof value === 'string' && value.length >= rule.min ? undefined : entry.message;
    case 'nonEmpty':
      return typeof value === 'string' && value.length > 0 ? undefined : entry.message;
    case 'pattern':
      return typeof value === 'string' && rule.pattern.test(value) ? undefined : entry.message;
    case 'positive':
      return typeof value === 'number' && Number.isFinite(value) && value > 0
        ? undefined
        : entry.message;
    case 'wholeOrZero':
      return Number.isInteger(value) && (value as number) >= 0 ? undefined : entry.message;
    case 'wholeAtLeast':
      return Number.isInteger(value) && (value as number) >= rule.min ? undefined : entry.message;
    case 'boolean':
      return typeof value === 'boolean' ? undefined : entry.message;
    case 'relativePath':
      return isSafeRelativePath(value) ? undefined : entry.message;
    case 'stringList':
      return Array.isArray(value) && value.every((x) => typeof x === 'string' && x)
        ? undefined
        : entry.message;
    case 'redisUrl':
      return isRedisUrl(value) ? undefined : entry.message;
    case 'roleGroups':
      return roleGroupsProblem(value, entry.message);
    case 'roleIds':
      return Array.isArray(value) && value.every((x) => typeof x === 'string' && DISCORD_ID.test(x))
        ? undefined
        : entry.message;
    case 'roleNames':
      return roleNamesProblem(value, entry.message);
  }
}

function isRedisUrl(value: unknown): boolean {
  try {
    const parsed = typeof value === 'string' ? new URL(value) : undefined;
    return (
      parsed !== undefined &&
      (parsed.protocol === 'redis:' || parsed.protocol === 'rediss:') &&
      parsed.hostname !== ''
    );
  } catch {
    return false;
  }
}

function roleGroupsProblem(value: unknown, message: string): string | undefined {
  const entries =
    typeof value === 'object' && value !== null ? Object.entries(value as object) : [];
  if (entries.length === 0) return `${message} (at least one)`;
  for (const [role, group] of entries) {
    if (!DISCORD_ID.test(role)) return `${message} ("${role}" is not a Discord role id, digits)`;
    if (typeof group !== 'string' || !FORUM_GROUP.test(group)) {
      return `${message} ("${String(group)}" is not a forum group name: letters, digits, _ . -)`;
    }
  }
  return undefined;
}

function roleNamesProblem(value: unknown, message: string): string | undefined {
  const entries =
    typeof value === 'object' && value !== null ? Object.entries(value as object) : [];
  if (entries.length === 0) return `${message} (at least one)`;
  for (const [role, name] of entries) {
    if (!DISCORD_ID.test(role)) return `${message} ("${role}" is not a Discord role id, digits)`;
    if (typeof name !== 'string' || !VANILLA_ROLE.test(name)) {
      return `${message} ("${String(name)}" is not a Vanilla role name: letters, digits, spaces, _ . ' ( ) & + -)`;
    }
  }
  return undefined;
}

/** An absolute http(s) URL without credentials, query or fragment (URLs here are not secret). */
function httpUrlProblem(value: unknown): string | undefined {
  if (typeof value !== 'string' || !value) return 'is required: an http(s) URL';
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    return `must be an absolute http(s) URL, e.g. https://example.com (got "${value}")`;
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    return `must start with http:// or https:// (got "${parsed.protocol}")`;
  }
  if (parsed.username || parsed.password || parsed.search || parsed.hash) {
    return 'must not contain credentials, a query or a fragment';
  }
  return undefined;
}

/** `123=members, 456=moderators` as a role id → group map. */
function parseGroupMap(text: string): Record<string, string> {
  return Object.fromEntries(
    text.split(',').map((pair) => pair.split('=').map((part) => part.trim())),
  );
}

/** `123, 456` as a list of role ids. */
function parseRoleList(text: string): string[] {
  return [...new Set(text.split(',').map((id) => id.trim()))];
}

/** The source of a pattern without its anchors, to build larger patterns from it. */
function inner(pattern: RegExp): string {
  return pattern.source.replace(/^\^/, '').replace(/\$$/, '');
}
