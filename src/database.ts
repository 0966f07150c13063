import { closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { TypeOrmModuleOptions } from '@nestjs/typeorm';
import { DISCOURSE_CONNECT_MIGRATIONS } from 'nestjs-discourse-connect';

/** The embedded default: a SQLite file under ./data/. */
export const DEFAULT_DATABASE_URL = 'sqlite:./data/discourse-connect.sqlite';

/**
 * TypeORM options from `DATABASE_URL`: `sqlite:<path>` (or `sqlite::memory:`) for the embedded
 * database, `postgres://…` for a server. Schema comes from migrations, never `synchronize`.
 *
 * @throws Error naming DATABASE_URL when the URL is not one of those.
 */
export function databaseOptions(databaseUrl = DEFAULT_DATABASE_URL): TypeOrmModuleOptions {
  const common = {
    autoLoadEntities: true,
    synchronize: false,
    migrations: DISCOURSE_CONNECT_MIGRATIONS,
    migrationsRun: true,
  } as const;
  if (databaseUrl.startsWith('sqlite:')) {
    const path = databaseUrl.slice('sqlite:'.length);
    if (!path)
      throw new Error(
        'DATABASE_URL is invalid: use sqlite:<file path>, e.g. sqlite:./data/app.sqlite',
      );
    if (path !== ':memory:') createPrivateFile(resolve(path));
    return {
      ...common,
      type: 'better-sqlite3',
      database: path,
      enableWAL: path !== ':memory:',
    } as TypeOrmModuleOptions;
  }
  if (/^postgres(ql)?:\/\//.test(databaseUrl)) {
    return { ...common, type: 'postgres', url: databaseUrl };
  }
  throw new Error(
    'DATABASE_URL is invalid: use sqlite:<file path> for the embedded database or postgres://user:pass@host/db.',
  );
}

/**
 * Creates the SQLite file (and any missing directory) readable by this user only, as the secret
 * files are: the database holds sessions and members' e-mail addresses. SQLite gives its -wal and
 * -shm files the database file's permissions. An existing file or directory is left as it is.
 */
function createPrivateFile(file: string): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  if (existsSync(file)) return;
  try {
    // 'wx': only if it does not exist yet, so a file created meanwhile is not touched.
    closeSync(openSync(file, 'wx', 0o600));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
}
