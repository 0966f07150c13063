/**
 * Shared fixtures of the library's unit specs (outside `src/`, so never built into the package).
 */
import { DataSource } from 'typeorm';
import { DISCOURSE_CONNECT_ENTITIES } from '../src/discourse-connect.module';
import { DiscourseConnectFiltersService } from '../src/hooks/filters.service';
import { DISCOURSE_CONNECT_MIGRATIONS } from '../src/migrations';
import type { DiscordMetadata } from '../src/users/discord-profile';
import type { LocalUser } from '../src/users/local-user.interface';
import { DiscourseConnectConfigurationError } from '../src/config/configuration.error';
import { discourseConnectOptionsFromEnv } from '../src/config/discourse-connect.config';
import { DiscourseConnectSettings } from '../src/config/discourse-connect.settings';
import type { DiscourseConnectModuleOptions } from '../src/discourse-connect-options.interface';

/** A member, Nelly, with a verified email; `change` overrides fields, `roles` adds guild roles. */
export function memberFixture(change: Partial<LocalUser> = {}, roles?: string[] | null): LocalUser {
  return {
    discordId: '80351110224678912',
    username: 'nelly',
    displayName: 'Nelly',
    email: 'nelly@example.com',
    emailVerified: true,
    avatarHash: null,
    metadata: {
      id: '80351110224678912',
      username: 'nelly',
      global_name: 'Nelly',
      discriminator: '0',
      avatar: null,
      email: 'nelly@example.com',
      verified: true,
      locale: null,
      ...(roles === undefined ? {} : { roles }),
    },
    metadataHash: 'h',
    createdAt: new Date(0),
    updatedAt: new Date(0),
    ...change,
  };
}

/** Discord's `/users/@me` answer for Ava; `over` overrides or adds fields. */
export function discordProfileFixture(over: Partial<DiscordMetadata> = {}): DiscordMetadata {
  return {
    id: '293847561029384756',
    username: 'ava',
    global_name: 'Ava',
    discriminator: '0',
    avatar: '4f2c1b9e8d7a6c5b4a3f2e1d0c9b8a7f',
    email: 'ava@example.com',
    verified: true,
    locale: 'en-US',
    ...over,
  };
}

/** The real filters service; `add` and `apply` need no discovery. */
export const filtersFixture = (): DiscourseConnectFiltersService =>
  new DiscourseConnectFiltersService(undefined as never, undefined as never, undefined as never);

/** A migrated in-memory SQLite database with the module's tables (not a mock). */
export async function migratedSqlite(
  extra: Partial<{ logging: ['query']; logger: import('typeorm').Logger }> = {},
): Promise<DataSource> {
  const dataSource = new DataSource({
    type: 'better-sqlite3',
    database: ':memory:',
    entities: DISCOURSE_CONNECT_ENTITIES,
    migrations: DISCOURSE_CONNECT_MIGRATIONS,
    migrationsRun: true,
    ...extra,
  });
  await dataSource.initialize();
  return dataSource;
}

/** Settings of one forum with an admin API key; `extra` overrides or adds options. */
export function settingsFixture(
  extra: Partial<DiscourseConnectModuleOptions> = {},
): DiscourseConnectSettings {
  return new DiscourseConnectSettings({
    forums: [
      {
        url: 'https://forum.example.com/',
        secret: 'forum-secret-0123456789',
        api: { key: 'api-key-0123456789' },
      },
    ],
    discord: { clientId: 'client-id', clientSecret: 'client-secret' },
    publicUrl: 'https://app.example.com/',
    session: { secret: 's'.repeat(32) },
    ...extra,
  });
}

/** The app's own environment variables (Discord sign-in, public URL, session), without any forum. */
export const appEnvFixture = (): Record<string, string> => ({
  DISCORD_CLIENT_ID: '123456789012345678',
  DISCORD_CLIENT_SECRET: 'discord-client-secret',
  PUBLIC_URL: 'http://localhost:3000',
  SESSION_SECRET: 'x'.repeat(32),
});

/** The environment of an app with one Discourse forum (`DISCOURSE_URL`). */
export const oneForumEnvFixture = (): Record<string, string> => ({
  DISCOURSE_URL: 'https://forum.example.com',
  DISCOURSE_CONNECT_SECRET: 'forum-secret-0123456789',
  ...appEnvFixture(),
});

/** The settings of an environment, as the module builds them at boot. */
export const settingsFromEnv = (env: Record<string, string>): DiscourseConnectSettings =>
  new DiscourseConnectSettings(discourseConnectOptionsFromEnv(env));

/**
 * The boot error of an environment (the settings as the module builds them), checked to be a
 * configuration error that shows none of `secrets`.
 */
export function envBootError(env: Record<string, string>, secrets: string[]): string {
  try {
    settingsFromEnv(env);
  } catch (error) {
    expect(error).toBeInstanceOf(DiscourseConnectConfigurationError);
    const message = (error as Error).message;
    for (const secret of secrets) expect(message).not.toContain(secret);
    return message;
  }
  throw new Error('expected the boot to stop');
}
