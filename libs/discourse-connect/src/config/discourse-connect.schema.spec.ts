import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DiscourseConnectConfigurationError } from './configuration.error';
import { discourseConnectOptionsFromEnv, findCutEnvValues } from './discourse-connect.config';
import {
  CONFIG_ENTRIES,
  ENV_ENTRIES,
  ENV_NAMES,
  FORUM_ENV_ENTRIES,
  isRequiredInEnv,
  optionFromEnv,
  optionProblem,
} from './discourse-connect.schema';
import { DiscourseConnectSettings } from './discourse-connect.settings';
import { packageVersion } from './package-version';

/**
 * The rows of a README configuration table (the module's variables, or with `forum variable` the
 * per-forum ones): names and "required".
 */
function readmeConfigurationRows(
  heading = 'variable',
  name = /`([A-Z0-9_]+)`/g,
): { names: string[]; required: string }[] {
  const readme = readFileSync(join(__dirname, '..', '..', '..', '..', 'README.md'), 'utf8');
  const section = readme.split(/^## Configuration$/m)[1].split(/^## /m)[0];
  const table = section
    .split(/\n\s*\n/)
    .find((block) => block.trimStart().startsWith(`| ${heading} `))!
    .trim()
    .split('\n')
    .slice(2);
  return table.map((row) => {
    const [variables, required] = row.split('|').slice(1, 3);
    return { names: [...variables.matchAll(name)].map((m) => m[1]), required };
  });
}

/** Reads `a.b.0.c` from nested objects. */
const at = (object: unknown, path: string): unknown =>
  path
    .split('.')
    .reduce<unknown>((node, step) => (node as Record<string, unknown> | undefined)?.[step], object);

/** Every variable set to its schema example. */
const exampleEnv = (): Record<string, string> =>
  Object.fromEntries(ENV_ENTRIES.map((e) => [e.env.name, e.env.example]));

describe('the configuration schema', () => {
  it('has one README configuration-table row per variable, and no row without one', () => {
    const rows = readmeConfigurationRows();
    const documented = rows.flatMap((row) => row.names);
    expect([...documented].sort()).toEqual([...ENV_NAMES].sort());
    expect(new Set(documented).size).toBe(documented.length);
    for (const entry of ENV_ENTRIES) {
      const row = rows.find((r) => r.names.includes(entry.env.name))!;
      // "yes" exactly for the variables the environment must set.
      expect([entry.env.name, row.required.trim().startsWith('yes')]).toEqual([
        entry.env.name,
        isRequiredInEnv(entry),
      ]);
    }
  });

  it('has one README row per forum variable (DISCOURSE_FORUM_<NAME>_*), and no row without one', () => {
    const rows = readmeConfigurationRows(
      'forum variable',
      /`DISCOURSE_FORUM_<NAME>_([A-Z0-9_]+)`/g,
    );
    expect(rows.flatMap((row) => row.names).sort()).toEqual(
      FORUM_ENV_ENTRIES.map((f) => f.suffix).sort(),
    );
    for (const f of FORUM_ENV_ENTRIES) {
      const row = rows.find((r) => r.names.includes(f.suffix))!;
      expect([f.suffix, row.required.trim().startsWith('yes')]).toEqual([f.suffix, f.required]);
    }
  });

  it('has each option and each variable once, with a human message and an example that passes', () => {
    const options = CONFIG_ENTRIES.map((e) => e.option);
    expect(new Set(options).size).toBe(options.length);
    expect(new Set(ENV_NAMES).size).toBe(ENV_NAMES.length);
    for (const entry of CONFIG_ENTRIES) expect(entry.message).toMatch(/^must /);
    expect(() => discourseConnectOptionsFromEnv(exampleEnv())).not.toThrow();
  });

  it('maps every variable to its option path, converted by the option type', () => {
    const options = discourseConnectOptionsFromEnv(exampleEnv());
    for (const entry of ENV_ENTRIES) {
      const [path, value] = optionFromEnv(entry, entry.env.example);
      expect([entry.env.name, at(options, path.replace('forums[]', 'forums.0'))]).toEqual([
        entry.env.name,
        value,
      ]);
      if (!entry.env.toOptions) expect(path).toBe(entry.option);
    }
    // Nothing else: every option the environment sets comes from a variable of the schema.
    expect(Object.keys(options).sort()).toEqual(
      [
        ...new Set(ENV_ENTRIES.map((e) => optionFromEnv(e, e.env.example)[0].split(/[.[]/)[0])),
      ].sort(),
    );
  });

  it('validates every variable, naming it and never repeating a secret value', () => {
    // A non-empty rule has no bad text: an empty variable is an unset one.
    for (const entry of ENV_ENTRIES.filter((e) => (e.env.rule ?? e.rule).kind !== 'nonEmpty')) {
      const bad = 'Zq9#';
      let message = '';
      try {
        discourseConnectOptionsFromEnv({ ...exampleEnv(), [entry.env.name]: bad });
      } catch (error) {
        expect(error).toBeInstanceOf(DiscourseConnectConfigurationError);
        message = (error as Error).message;
      }
      expect(message).toContain(
        `${entry.env.name} is invalid: it ${entry.env.message ?? entry.message}`,
      );
      expect(message).not.toContain(bad);
    }
  });

  it('gives the settings their defaults', () => {
    const env = exampleEnv();
    for (const entry of ENV_ENTRIES) {
      // Leave out every variable with a default, so the settings fill it in.
      if (entry.default !== undefined) delete env[entry.env.name];
    }
    const options = discourseConnectOptionsFromEnv(env);
    options.forums[0].api = { key: 'abcdefgh12345678' };
    options.groups = { guildId: '1', roleGroups: { 2: 'members' } };
    options.redis = { url: 'redis://cache:6379' };
    const settings = new DiscourseConnectSettings(options);
    for (const entry of CONFIG_ENTRIES.filter((e) => e.default !== undefined)) {
      expect([entry.option, at(settings, entry.option.replace('forums[]', 'forums.0'))]).toEqual([
        entry.option,
        entry.default,
      ]);
    }
  });

  it('stops the settings on each rule, naming the option, without a secret value', () => {
    for (const entry of CONFIG_ENTRIES) {
      if (entry.secret) {
        const secret = entry.rule.kind === 'nonEmpty' ? '' : 'Zq9#';
        expect([entry.option, optionProblem(entry, secret)]).toEqual([
          entry.option,
          expect.any(String),
        ]);
        if (secret) expect(optionProblem(entry, secret)).not.toContain(secret);
      }
      const wrong = entry.type === 'string' ? 42 : 'wrong';
      expect([entry.option, optionProblem(entry, wrong)]).toEqual([
        entry.option,
        expect.any(String),
      ]);
    }
  });

  it('uses the same variable names for the .env check', () => {
    const text = ENV_NAMES.map((name) => `${name}=a#b`).join('\n');
    expect(findCutEnvValues(text)).toHaveLength(ENV_NAMES.length);
  });

  it("puts the package's own version in the default User-Agent", () => {
    const pkg = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as {
      name: string;
      version: string;
    };
    expect(pkg.name).toBe('nestjs-discourse-connect');
    expect(packageVersion()).toBe(pkg.version);
    const settings = new DiscourseConnectSettings(discourseConnectOptionsFromEnv(exampleEnv()));
    expect(settings.discord.userAgent).toBe(
      `nestjs-discourse-connect (http://localhost:3000, ${pkg.version})`,
    );
  });
});
