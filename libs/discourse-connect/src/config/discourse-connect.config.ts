import { registerAs } from '@nestjs/config';
import { plainToInstance } from 'class-transformer';
import {
  IsIn,
  IsNotEmpty,
  IsOptional,
  IsString,
  IsUrl,
  Matches,
  MinLength,
  validateSync,
  type ValidationOptions,
} from 'class-validator';
import type { DiscourseConnectModuleOptions } from '../discourse-connect-options.interface';
import { DiscourseConnectConfigurationError } from './configuration.error';
import {
  ENV_ENTRIES,
  ENV_NAMES,
  isRequiredInEnv,
  optionFromEnv,
  type ConfigEntry,
  type ConfigRule,
  type DiscourseConnectEnvValues,
  type EnvBinding,
} from './discourse-connect.schema';

const URL_RULES = { require_tld: false, require_protocol: true, protocols: ['http', 'https'] };

const EnvironmentValues = class {} as new () => DiscourseConnectEnvValues;

/**
 * The environment variables the module reads, with the rule each must follow: one property per
 * variable of the configuration schema (`discourse-connect.schema.ts`), its class-validator rules
 * applied from there.
 */
export class DiscourseConnectEnvironment extends EnvironmentValues {}

/** The class-validator rules of a variable, from its schema entry. */
function envDecorators(entry: ConfigEntry & { env: EnvBinding }): PropertyDecorator[] {
  const rule: ConfigRule = entry.env.rule ?? entry.rule;
  const options: ValidationOptions = { message: entry.env.message ?? entry.message };
  const rules = ((): PropertyDecorator[] => {
    switch (rule.kind) {
      case 'httpUrl':
        return [IsUrl(URL_RULES, options)];
      case 'minLength':
        return [IsString(), MinLength(rule.min, options)];
      case 'nonEmpty':
        return [IsString(), IsNotEmpty(options)];
      case 'pattern':
        return [Matches(rule.pattern, options)];
      case 'positive':
        return [Matches(/^[1-9][0-9]{0,5}$/, options)];
      case 'boolean':
        return [IsIn(['true', 'false'], options)];
      default:
        // A variable for an option whose rule has no text form needs its own rule in the schema.
        throw new Error(`${entry.env.name} needs an env rule in the configuration schema`);
    }
  })();
  return isRequiredInEnv(entry) ? rules : [IsOptional(), ...rules];
}

for (const entry of ENV_ENTRIES) {
  for (const decorate of envDecorators(entry)) {
    decorate(DiscourseConnectEnvironment.prototype, entry.env.name);
  }
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
    ENV_NAMES.map((k) => [k, env[k] === '' ? undefined : env[k]]),
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
    if (!m || !ENV_NAMES.includes(m[1])) continue;
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

/** Module options from a validated environment: each variable set goes to its option in the schema. */
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
  const values = v as unknown as Record<string, string | undefined>;
  const options: Record<string, unknown> = {};
  for (const entry of ENV_ENTRIES) {
    const text = values[entry.env.name];
    if (text === undefined || (entry.env.needs && values[entry.env.needs] === undefined)) continue;
    const [path, value] = optionFromEnv(entry, text);
    // The environment describes one forum: the first.
    setPath(options, path.replace('forums[]', 'forums.0'), value);
  }
  return options as unknown as DiscourseConnectModuleOptions;
}

/** Sets `a.b.0.c` in nested objects, creating them (an array for a numeric step). */
function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const steps = path.split('.');
  let node = target;
  steps.slice(0, -1).forEach((step, i) => {
    node[step] ??= /^[0-9]+$/.test(steps[i + 1]) ? [] : {};
    node = node[step] as Record<string, unknown>;
  });
  node[steps[steps.length - 1]] = value;
}

/**
 * Env-backed options for `DiscourseConnectModule.forRootAsync(discourseConnectConfig.asProvider())`.
 * Read when the app boots; a bad variable stops it with a message naming the variable.
 */
export const discourseConnectConfig = registerAs('discourseConnect', () =>
  discourseConnectOptionsFromEnv(process.env),
);
