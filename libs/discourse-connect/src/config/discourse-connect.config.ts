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
  DEFAULT_FORUM_NAME,
  ENV_ENTRIES,
  ENV_NAMES,
  FORUM_ENV_ENTRIES,
  FORUM_ENV_NAME,
  FORUM_ENV_PREFIX,
  forumEnvName,
  forumOptionFromEnv,
  isRequiredInEnv,
  optionFromEnv,
  ROLE_BASED_VARIABLES,
  VANILLA_FORUM_ENV_ENTRIES,
  VANILLA_FORUM_ENV_PREFIX,
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
  return variableDecorators(
    entry.env.name,
    entry.env.rule ?? entry.rule,
    entry.env.message ?? entry.message,
    isRequiredInEnv(entry),
  );
}

/** The class-validator rules of a variable with this rule and message. */
function variableDecorators(
  name: string,
  rule: ConfigRule,
  message: string,
  required: boolean,
): PropertyDecorator[] {
  const options: ValidationOptions = { message };
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
        throw new Error(`${name} needs an env rule in the configuration schema`);
    }
  })();
  return required ? rules : [IsOptional(), ...rules];
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
  return validateEnv(env).values;
}

/** The single-forum variables: the ones that set a `forums[]` option. */
const SINGLE_FORUM_NAMES = ENV_ENTRIES.filter((e) => e.option.startsWith('forums[]')).map(
  (e) => e.env.name,
);
const FORUM_SUFFIXES = FORUM_ENV_ENTRIES.map((f) => f.suffix);
/** The accepted per-forum variables, for messages. */
const FORUM_FORMAT = FORUM_SUFFIXES.map((suffix) => forumEnvName('<NAME>', suffix)).join(', ');

/**
 * The per-forum variables of an environment: each forum's `<NAME>` in the order first seen, and
 * the variables starting `DISCOURSE_FORUM_` that are none of them.
 */
function forumVariables(
  env: Record<string, unknown>,
  prefix = FORUM_ENV_PREFIX,
  suffixes = FORUM_SUFFIXES,
): { names: string[]; unknown: string[] } {
  const names: string[] = [];
  const unknown: string[] = [];
  for (const key of Object.keys(env)) {
    if (!key.startsWith(prefix)) continue;
    const rest = key.slice(prefix.length);
    const cut = rest.indexOf('_');
    const name = rest.slice(0, cut);
    if (cut < 0 || !FORUM_ENV_NAME.test(name) || !suffixes.includes(rest.slice(cut + 1))) {
      unknown.push(key);
    } else if (env[key] !== undefined && env[key] !== '' && !names.includes(name)) {
      names.push(name);
    }
  }
  return { names: names.sort(), unknown: unknown.sort() };
}

interface ValidatedEnv {
  values: DiscourseConnectEnvironment;
  /** The single-forum variables are set. */
  single: boolean;
  /** Each `DISCOURSE_FORUM_<NAME>_*` forum: its `<NAME>` and its variables' texts by suffix. */
  forums: { name: string; texts: Record<string, string | undefined> }[];
  /** The Vanilla forums' variables (`VANILLA_URL`…, `VANILLA_FORUM_<NAME>_*`). */
  vanilla: VanillaEnv;
}

function validateEnv(env: Record<string, unknown>): ValidatedEnv {
  const text = (k: string): unknown => (env[k] === '' ? undefined : env[k]);
  const relevant = Object.fromEntries(ENV_NAMES.map((k) => [k, text(k)]));
  const parsed = plainToInstance(DiscourseConnectEnvironment, relevant);
  const found = forumVariables(env);
  const vanilla = vanillaForumVariables(env, text);
  const single = SINGLE_FORUM_NAMES.some((k) => text(k) !== undefined);
  // With DISCOURSE_FORUM_<NAME>_* forums, or Vanilla forums only, the single-forum variables may be
  // left out altogether.
  const singleOptional =
    (found.names.length > 0 || vanilla.single || vanilla.forums.length > 0) && !single;
  const errors = validateSync(parsed, { skipMissingProperties: false }).filter(
    (e) => !(singleOptional && SINGLE_FORUM_NAMES.includes(e.property)),
  );

  // Each forum's variables, checked by the rules of the schema's forum entries.
  const ForumEnvironment = class {};
  const forumTexts: Record<string, unknown> = {};
  for (const name of found.names) {
    for (const f of FORUM_ENV_ENTRIES) {
      const variable = forumEnvName(name, f.suffix);
      forumTexts[variable] = text(variable);
      for (const decorate of variableDecorators(variable, f.rule, f.message, f.required)) {
        decorate(ForumEnvironment.prototype, variable);
      }
    }
  }
  if (found.names.length > 0) {
    errors.push(
      ...validateSync(plainToInstance(ForumEnvironment, forumTexts), {
        skipMissingProperties: false,
      }),
    );
  }

  errors.push(...vanilla.errors);

  const problems = [
    ...vanilla.problems,
    ...found.unknown.map(
      (k) =>
        `  - ${k} is not a variable of this module: a forum's variables are ${FORUM_FORMAT}, ` +
        "with <NAME> in capital letters and digits only (the forum's name in lower case)",
    ),
    ...(single && found.names.includes(DEFAULT_FORUM_NAME.toUpperCase())
      ? [
          `  - ${FORUM_ENV_PREFIX}${DEFAULT_FORUM_NAME.toUpperCase()}_* and the single-forum variables ` +
            `(${SINGLE_FORUM_NAMES.join(', ')}) both describe the forum named ${DEFAULT_FORUM_NAME}: ` +
            'keep one of the two sets',
        ]
      : []),
  ];
  if (errors.length > 0 || problems.length > 0) {
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
      `Invalid configuration. Set these environment variables (or put them in .env):\n${[...lines, ...problems].join('\n')}`,
    );
  }
  const forums = found.names.map((name) => ({
    name,
    texts: Object.fromEntries(
      FORUM_SUFFIXES.map((suffix) => [suffix, text(forumEnvName(name, suffix)) as string]),
    ),
  }));
  return { values: parsed, single, forums, vanilla };
}

// ---------------------------------------------------------------- Vanilla forums (jsConnect v3)

const VANILLA_SUFFIXES = VANILLA_FORUM_ENV_ENTRIES.map((f) => f.suffix);
/** The single Vanilla forum's variables that describe the connection; they go together. */
const VANILLA_CONNECTION = ['VANILLA_URL', 'VANILLA_CLIENT_ID', 'VANILLA_SECRET'];
/** The Vanilla variables that apply to every Vanilla forum. */
const VANILLA_GLOBALS = ENV_ENTRIES.filter(
  (e) => e.option.startsWith('vanilla.') && !e.option.startsWith('vanilla.forums[]'),
).map((e) => e.env.name);

interface VanillaEnv {
  errors: ReturnType<typeof validateSync>;
  problems: string[];
  /** `VANILLA_URL`… are set. */
  single: boolean;
  forums: { name: string; texts: Record<string, string | undefined> }[];
}

/** The `VANILLA_FORUM_<NAME>_*` forums checked by their schema rules, and the single forum's rules. */
function vanillaForumVariables(
  env: Record<string, unknown>,
  text: (k: string) => unknown,
): VanillaEnv {
  const found = forumVariables(env, VANILLA_FORUM_ENV_PREFIX, VANILLA_SUFFIXES);
  const name = (forum: string, suffix: string) => `${VANILLA_FORUM_ENV_PREFIX}${forum}_${suffix}`;
  const VanillaForumEnvironment = class {};
  const texts: Record<string, unknown> = {};
  for (const forum of found.names) {
    for (const f of VANILLA_FORUM_ENV_ENTRIES) {
      const variable = name(forum, f.suffix);
      texts[variable] = text(variable);
      for (const decorate of variableDecorators(variable, f.rule, f.message, f.required)) {
        decorate(VanillaForumEnvironment.prototype, variable);
      }
    }
  }
  const errors =
    found.names.length > 0
      ? validateSync(plainToInstance(VanillaForumEnvironment, texts), {
          skipMissingProperties: false,
        })
      : [];
  const set = VANILLA_CONNECTION.filter((k) => text(k) !== undefined);
  const single = set.length > 0;
  const problems = [
    ...found.unknown.map(
      (k) =>
        `  - ${k} is not a variable of this module: a Vanilla forum's variables are ` +
        `${VANILLA_SUFFIXES.map((suffix) => name('<NAME>', suffix)).join(', ')}, ` +
        "with <NAME> in capital letters and digits only (the forum's name in lower case)",
    ),
    ...(single && set.length < VANILLA_CONNECTION.length
      ? [
          `  - ${VANILLA_CONNECTION.filter((k) => !set.includes(k)).join(', ')} is not set: ` +
            `${VANILLA_CONNECTION.join(', ')} go together (the forum and its jsConnect connection)`,
        ]
      : []),
    ...(single && found.names.includes(DEFAULT_FORUM_NAME.toUpperCase())
      ? [
          `  - ${VANILLA_FORUM_ENV_PREFIX}${DEFAULT_FORUM_NAME.toUpperCase()}_* and ` +
            `${VANILLA_CONNECTION.join(', ')} both describe the Vanilla forum named ` +
            `${DEFAULT_FORUM_NAME}: keep one of the two sets`,
        ]
      : []),
    ...(!single && found.names.length === 0
      ? VANILLA_GLOBALS.filter((k) => text(k) !== undefined).map(
          (k) => `  - ${k} is set but no Vanilla forum is: set VANILLA_URL (or remove ${k})`,
        )
      : []),
  ];
  const forums = found.names.map((forum) => ({
    name: forum,
    texts: Object.fromEntries(
      VANILLA_SUFFIXES.map((suffix) => [suffix, text(name(forum, suffix)) as string]),
    ),
  }));
  return { errors, problems, single, forums };
}

/**
 * Puts the `VANILLA_FORUM_<NAME>_*` forums into the options after the single Vanilla forum (named
 * `default` next to them), and stops on a role map without the Discord server it needs.
 *
 * @throws DiscourseConnectConfigurationError
 */
function vanillaOptionsFromEnv(
  vanilla: VanillaEnv,
  values: Record<string, string | undefined>,
  options: Record<string, unknown>,
): void {
  const mapped =
    (vanilla.single && values.VANILLA_ROLE_MAP !== undefined ? 'VANILLA_ROLE_MAP' : undefined) ??
    vanilla.forums
      .filter((f) => f.texts.ROLE_MAP !== undefined)
      .map((f) => `${VANILLA_FORUM_ENV_PREFIX}${f.name}_ROLE_MAP`)[0];
  if (mapped && !values.DISCORD_GUILD_ID) {
    throw new DiscourseConnectConfigurationError(
      `Invalid configuration: ${mapped} needs DISCORD_GUILD_ID (the Discord server whose roles map to Vanilla roles).`,
    );
  }
  if (vanilla.single && vanilla.forums.length > 0) {
    setPath(options, 'vanilla.forums.0.name', DEFAULT_FORUM_NAME);
  }
  const first = vanilla.single ? 1 : 0;
  vanilla.forums.forEach((forum, i) => {
    setPath(options, `vanilla.forums.${first + i}.name`, forum.name.toLowerCase());
    for (const f of VANILLA_FORUM_ENV_ENTRIES) {
      const text = forum.texts[f.suffix];
      if (text === undefined) continue;
      setPath(
        options,
        f.entry.option.replace('vanilla.forums[]', `vanilla.forums.${first + i}`),
        forumOptionFromEnv(f.entry, text),
      );
    }
  });
}

/** Forum pages people paste instead of the forum's base URL. */
const FORUM_PAGES =
  /\/(latest|categories|top|login|session(\/sso(_login)?)?|admin(\/.*)?|t\/.*|c\/.*|u\/.*)\/?$/i;

/** Vanilla forum pages people paste instead of the forum's base URL (or its `/index.php?p=` form). */
const VANILLA_PAGES =
  /\/(discussions?(\/.*)?|categories(\/.*)?|entry(\/.*)?|profile(\/.*)?|dashboard(\/.*)?|sso|activity|index\.php)\/?$/i;

const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * The URL mistakes forum admins actually make, each with the fix, naming the variable.
 *
 * @throws DiscourseConnectConfigurationError
 */
function checkUrlMistakes(
  v: DiscourseConnectEnvironment,
  forumUrls: readonly (readonly [variable: string, url: string])[],
  vanillaUrls: readonly (readonly [variable: string, url: string])[] = [],
): void {
  const fail = (message: string): never => {
    throw new DiscourseConnectConfigurationError(`Invalid configuration: ${message}`);
  };
  const pub = new URL(v.PUBLIC_URL);
  for (const [variable, url] of vanillaUrls) {
    const forum = new URL(url);
    if (VANILLA_PAGES.test(forum.pathname)) {
      fail(
        `${variable} points at a Vanilla forum page (${forum.pathname}); use the forum's base URL, e.g. ${forum.origin} ` +
          '(a subfolder install such as https://example.com/forum is fine).',
      );
    }
  }
  for (const [variable, url] of forumUrls) {
    const forum = new URL(url);
    if (forum.search || forum.hash || forum.username || forum.password) {
      fail(
        `${variable} must be the forum's base URL without a query, fragment or credentials (got "${forum.origin}${forum.pathname}…").`,
      );
    }
    if (FORUM_PAGES.test(forum.pathname)) {
      fail(
        `${variable} points at a forum page (${forum.pathname}); use the forum's base URL, e.g. ${forum.origin} ` +
          '(a subfolder install such as https://example.com/forum is fine).',
      );
    }
    if (pub.protocol === 'http:' && forum.protocol === 'https:' && !LOCAL_HOSTS.has(pub.hostname)) {
      fail(
        `PUBLIC_URL is http:// but the forum is https://. Serve this app over https and set PUBLIC_URL=https://${pub.host} ` +
          '(with a TLS-terminating proxy in front, also set TRUST_PROXY=true).',
      );
    }
  }
  if (pub.pathname !== '/' || pub.search || pub.hash) {
    fail(`PUBLIC_URL must be where this app is reachable, without a path (e.g. ${pub.origin}).`);
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
    if (!m || !(ENV_NAMES.includes(m[1]) || m[1].startsWith(FORUM_ENV_PREFIX))) continue;
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
  const { values: v, single, forums, vanilla } = validateEnv(env);
  checkUrlMistakes(
    v,
    [
      ...(single ? [['DISCOURSE_URL', v.DISCOURSE_URL] as const] : []),
      ...forums.map((f) => [forumEnvName(f.name, 'URL'), f.texts.URL!] as const),
    ],
    [
      ...(vanilla.single && v.VANILLA_URL ? [['VANILLA_URL', v.VANILLA_URL] as const] : []),
      ...vanilla.forums
        .filter((f) => f.texts.URL !== undefined)
        .map((f) => [`${VANILLA_FORUM_ENV_PREFIX}${f.name}_URL`, f.texts.URL!] as const),
    ],
  );
  const values = v as unknown as Record<string, string | undefined>;
  checkRoleBasedVariables(values, forums);
  const options: Record<string, unknown> = {};
  for (const entry of ENV_ENTRIES) {
    const text = values[entry.env.name];
    if (text === undefined || (entry.env.needs && values[entry.env.needs] === undefined)) continue;
    const [path, value] = optionFromEnv(entry, text);
    // The single-forum variables describe the first forum.
    setPath(options, path.replace('forums[]', 'forums.0'), value);
  }
  // Next to DISCOURSE_FORUM_<NAME>_* forums, the single-forum variables' forum is named `default`;
  // alone, it keeps the name it always had (its host name).
  if (single && forums.length > 0) setPath(options, 'forums.0.name', DEFAULT_FORUM_NAME);
  const first = single ? 1 : 0;
  forums.forEach((forum, i) => {
    setPath(options, `forums.${first + i}.name`, forum.name.toLowerCase());
    for (const f of FORUM_ENV_ENTRIES) {
      const text = forum.texts[f.suffix];
      if (text === undefined || (f.needs && forum.texts[f.needs] === undefined)) continue;
      setPath(
        options,
        f.entry.option.replace('forums[]', `forums.${first + i}`),
        forumOptionFromEnv(f.entry, text),
      );
    }
  });
  vanillaOptionsFromEnv(vanilla, values, options);
  // Vanilla forums only: no Discourse forum.
  options.forums ??= [];
  return options as unknown as DiscourseConnectModuleOptions;
}

/**
 * Every role-based variable (`ROLE_BASED_VARIABLES`: group maps, staff roles, …) names roles of one
 * Discord server: any of them set needs `DISCORD_GUILD_ID`.
 *
 * @throws DiscourseConnectConfigurationError
 */
function checkRoleBasedVariables(
  values: Record<string, string | undefined>,
  forums: ValidatedEnv['forums'],
): void {
  if (values.DISCORD_GUILD_ID !== undefined) return;
  const set = [
    ...ROLE_BASED_VARIABLES.env.filter((name) => values[name] !== undefined),
    ...forums.flatMap((f) =>
      ROLE_BASED_VARIABLES.forumSuffixes
        .filter((suffix) => f.texts[suffix] !== undefined)
        .map((suffix) => forumEnvName(f.name, suffix)),
    ),
  ];
  if (set.length === 0) return;
  throw new DiscourseConnectConfigurationError(
    `Invalid configuration: ${set.join(', ')} ${set.length === 1 ? 'needs' : 'need'} DISCORD_GUILD_ID ` +
      '(the id of the Discord server whose roles they name).',
  );
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
