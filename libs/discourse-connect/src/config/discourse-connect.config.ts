import { registerAs } from '@nestjs/config';
import { plainToInstance } from 'class-transformer';
import {
  IsNotEmpty,
  IsOptional,
  IsString,
  IsUrl,
  Matches,
  MinLength,
  validateSync,
} from 'class-validator';
import type { DiscourseConnectModuleOptions } from '../discourse-connect-options.interface';
import { DiscourseConnectConfigurationError } from './configuration.error';

const URL_RULES = { require_tld: false, require_protocol: true, protocols: ['http', 'https'] };

/** The environment variables the module reads, with the rule each must follow. */
export class DiscourseConnectEnvironment {
  /** Forum base URL, e.g. https://forum.example.com. */
  @IsUrl(URL_RULES, { message: "must be the forum's base URL, e.g. https://forum.example.com" })
  DISCOURSE_URL!: string;

  /** The forum's discourse_connect_secret. */
  @IsString()
  @MinLength(10, {
    message: 'must be at least 10 characters, the same as discourse_connect_secret on the forum',
  })
  DISCOURSE_CONNECT_SECRET!: string;

  @IsString()
  @IsNotEmpty({ message: 'must be the client id of your Discord application' })
  DISCORD_CLIENT_ID!: string;

  @IsString()
  @IsNotEmpty({ message: 'must be the client secret of your Discord application' })
  DISCORD_CLIENT_SECRET!: string;

  @IsOptional()
  @IsUrl(URL_RULES, { message: 'must be an http(s) URL such as https://discord.com' })
  DISCORD_BASE_URL?: string;

  @IsUrl(URL_RULES, { message: 'must be where this app is reachable, e.g. http://localhost:3000' })
  PUBLIC_URL!: string;

  @IsString()
  @MinLength(32, { message: 'must be at least 32 random characters (try: openssl rand -hex 32)' })
  SESSION_SECRET!: string;

  @IsOptional()
  @IsString()
  @MinLength(8, {
    message: 'must be an admin API key created on the forum (Admin → API → New API Key)',
  })
  DISCOURSE_API_KEY?: string;

  @IsOptional()
  @IsString()
  @IsNotEmpty({ message: 'must be the forum username the API key acts as (usually system)' })
  DISCOURSE_API_USERNAME?: string;

  @IsOptional()
  @Matches(/^[1-9][0-9]{0,5}$/, {
    message: 'must be a whole number of requests per minute, e.g. 60',
  })
  DISCOURSE_API_RATE_PER_MINUTE?: string;

  @IsOptional()
  @IsString()
  @MinLength(12, { message: 'must be the secret of the forum webhook, at least 12 characters' })
  DISCOURSE_WEBHOOK_SECRET?: string;

  @IsOptional()
  @Matches(/^[0-9]{1,20}$/, { message: 'must be the id of your Discord server (digits only)' })
  DISCORD_GUILD_ID?: string;

  @IsOptional()
  @Matches(
    /^\s*[0-9]{1,20}\s*=\s*[A-Za-z0-9_.-]{1,60}\s*(,\s*[0-9]{1,20}\s*=\s*[A-Za-z0-9_.-]{1,60}\s*)*$/,
    {
      message: 'must map Discord role ids to forum groups, e.g. 123=members,456=moderators',
    },
  )
  DISCOURSE_GROUP_MAP?: string;

  /** Requests per minute per client IP on the sign-in and SSO routes; `off` turns the limit off. */
  @IsOptional()
  @Matches(/^(off|[1-9][0-9]{0,5})$/, {
    message: 'must be a whole number of requests per minute per IP, e.g. 30, or off',
  })
  DISCOURSE_CONNECT_RATE_LIMIT?: string;

  /** Sessions and the sync queue in Redis, for several instances. The value is never echoed (it may hold a password). */
  @IsOptional()
  @Matches(/^rediss?:\/\/[^\s/?#]+(\/[0-9]{1,2})?\/?$/, {
    message:
      'must be a Redis URL such as redis://localhost:6379 or rediss://user:password@host:6380/0',
  })
  REDIS_URL?: string;

  /** Prefix of the module's Redis keys, so apps can share one Redis. */
  @IsOptional()
  @Matches(/^[A-Za-z0-9_.:-]{1,64}$/, {
    message: 'must be 1-64 letters, digits or _ . : - (e.g. dc:)',
  })
  DISCOURSE_CONNECT_REDIS_PREFIX?: string;
}

/**
 * Checks the environment and names every bad or missing variable in one message.
 *
 * @throws DiscourseConnectConfigurationError
 */
export function validateDiscourseConnectEnv(
  env: Record<string, unknown>,
): DiscourseConnectEnvironment {
  const relevant = Object.fromEntries(
    Object.keys(new DiscourseConnectEnvironmentKeys()).map((k) => [
      k,
      env[k] === '' ? undefined : env[k],
    ]),
  );
  const parsed = plainToInstance(DiscourseConnectEnvironment, relevant);
  const errors = validateSync(parsed, { skipMissingProperties: false });
  if (errors.length > 0) {
    const lines = errors.map((e) => {
      const missing = e.value === undefined;
      const why = missing ? 'is not set' : 'is invalid';
      // Prefer the rule's own hint over class-validator's generic default ("X must be a string").
      const messages = Object.values(e.constraints ?? {});
      const hint = messages.filter((m) => !m.startsWith(`${e.property} `)).pop() ?? messages.pop();
      const how = (hint ?? 'must be set').replace(`${e.property} `, '');
      return `  - ${e.property} ${why}: it ${how}`;
    });
    throw new DiscourseConnectConfigurationError(
      `Invalid configuration. Set these environment variables (or put them in .env):\n${lines.join('\n')}`,
    );
  }
  return parsed;
}

/** Every variable name, so only those are read from the environment. */
class DiscourseConnectEnvironmentKeys {
  DISCOURSE_URL = 1;
  DISCOURSE_CONNECT_SECRET = 1;
  DISCORD_CLIENT_ID = 1;
  DISCORD_CLIENT_SECRET = 1;
  DISCORD_BASE_URL = 1;
  PUBLIC_URL = 1;
  SESSION_SECRET = 1;
  DISCOURSE_API_KEY = 1;
  DISCOURSE_API_USERNAME = 1;
  DISCORD_GUILD_ID = 1;
  DISCOURSE_GROUP_MAP = 1;
  DISCOURSE_WEBHOOK_SECRET = 1;
  DISCOURSE_API_RATE_PER_MINUTE = 1;
  DISCOURSE_CONNECT_RATE_LIMIT = 1;
  REDIS_URL = 1;
  DISCOURSE_CONNECT_REDIS_PREFIX = 1;
}

/** Forum pages people paste instead of the forum's base URL. */
const FORUM_PAGES =
  /\/(latest|categories|top|login|session(\/sso(_login)?)?|admin(\/.*)?|t\/.*|c\/.*|u\/.*)\/?$/i;

const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * The URL mistakes forum admins actually make, each with the fix, naming the variable.
 *
 * @throws DiscourseConnectConfigurationError
 */
function checkUrlMistakes(v: DiscourseConnectEnvironment): void {
  const fail = (message: string): never => {
    throw new DiscourseConnectConfigurationError(`Invalid configuration: ${message}`);
  };
  const forum = new URL(v.DISCOURSE_URL);
  if (forum.search || forum.hash || forum.username || forum.password) {
    fail(
      `DISCOURSE_URL must be the forum's base URL without a query, fragment or credentials (got "${forum.origin}${forum.pathname}…").`,
    );
  }
  if (FORUM_PAGES.test(forum.pathname)) {
    fail(
      `DISCOURSE_URL points at a forum page (${forum.pathname}); use the forum's base URL, e.g. ${forum.origin} ` +
        '(a subfolder install such as https://example.com/forum is fine).',
    );
  }
  const pub = new URL(v.PUBLIC_URL);
  if (pub.pathname !== '/' || pub.search || pub.hash) {
    fail(`PUBLIC_URL must be where this app is reachable, without a path (e.g. ${pub.origin}).`);
  }
  if (pub.protocol === 'http:' && forum.protocol === 'https:' && !LOCAL_HOSTS.has(pub.hostname)) {
    fail(
      `PUBLIC_URL is http:// but the forum is https://. Serve this app over https and set PUBLIC_URL=https://${pub.host} ` +
        '(with a TLS-terminating proxy in front, also set TRUST_PROXY=true).',
    );
  }
}

/**
 * Finds values a `.env` parser would cut at `#` (an unquoted `#` starts a comment) for the
 * module's secrets, and says how to fix it. Returns the messages (empty when fine).
 */
export function findCutEnvValues(envFileText: string): string[] {
  const problems: string[] = [];
  for (const line of envFileText.split(/\r?\n/)) {
    const m = /^\s*(?:export\s+)?([A-Z0-9_]+)\s*=\s*(.*)$/.exec(line);
    if (!m || !(m[1] in new DiscourseConnectEnvironmentKeys())) continue;
    const raw = m[2];
    if (/^["'`]/.test(raw)) continue; // quoted: # is part of the value
    const hash = raw.indexOf('#');
    if (hash > 0 && !/\s/.test(raw[hash - 1])) {
      problems.push(
        `${m[1]} in .env contains "#", which .env files read as the start of a comment, so the value is cut there. ` +
          `Put the value in double quotes: ${m[1]}="…".`,
      );
    }
  }
  return problems;
}

/** Module options from a validated environment. */
export function discourseConnectOptionsFromEnv(
  env: Record<string, unknown>,
): DiscourseConnectModuleOptions {
  const v = validateDiscourseConnectEnv(env);
  checkUrlMistakes(v);
  if (Boolean(v.DISCORD_GUILD_ID) !== Boolean(v.DISCOURSE_GROUP_MAP)) {
    throw new DiscourseConnectConfigurationError(
      'Invalid configuration: DISCORD_GUILD_ID and DISCOURSE_GROUP_MAP go together (set both to map roles to groups, or neither).',
    );
  }
  const groups = v.DISCORD_GUILD_ID
    ? {
        guildId: v.DISCORD_GUILD_ID,
        roleGroups: Object.fromEntries(
          v
            .DISCOURSE_GROUP_MAP!.split(',')
            .map((pair) => pair.split('=').map((part) => part.trim()) as [string, string]),
        ),
        fullGroupList: env.DISCOURSE_GROUPS_FULL_LIST === 'true',
        requireMembership: env.DISCORD_REQUIRE_GUILD_MEMBERSHIP === 'true',
      }
    : undefined;
  const rateLimit = v.DISCOURSE_CONNECT_RATE_LIMIT;
  return {
    groups,
    rateLimit:
      rateLimit === 'off'
        ? false
        : rateLimit
          ? { limit: Number(rateLimit), ttlSeconds: 60 }
          : undefined,
    sync: v.DISCOURSE_API_RATE_PER_MINUTE
      ? { ratePerMinute: Number(v.DISCOURSE_API_RATE_PER_MINUTE) }
      : undefined,
    forums: [
      {
        url: v.DISCOURSE_URL,
        secret: v.DISCOURSE_CONNECT_SECRET,
        api: v.DISCOURSE_API_KEY
          ? { key: v.DISCOURSE_API_KEY, username: v.DISCOURSE_API_USERNAME }
          : undefined,
        webhookSecret: v.DISCOURSE_WEBHOOK_SECRET,
      },
    ],
    discord: {
      clientId: v.DISCORD_CLIENT_ID,
      clientSecret: v.DISCORD_CLIENT_SECRET,
      baseUrl: v.DISCORD_BASE_URL,
    },
    publicUrl: v.PUBLIC_URL,
    session: { secret: v.SESSION_SECRET },
    ...(v.REDIS_URL
      ? { redis: { url: v.REDIS_URL, prefix: v.DISCOURSE_CONNECT_REDIS_PREFIX } }
      : {}),
  };
}

/**
 * Env-backed options for `DiscourseConnectModule.forRootAsync(discourseConnectConfig.asProvider())`.
 * Read when the app boots; a bad variable stops it with a message naming the variable.
 */
export const discourseConnectConfig = registerAs('discourseConnect', () =>
  discourseConnectOptionsFromEnv(process.env),
);
