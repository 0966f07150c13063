import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { DataSourceOptions } from 'typeorm';
import { DiscourseConnectConfigurationError } from './configuration.error';

/**
 * TypeORM connection options from a database URL, for the module's own DataSource (the `database`
 * option): `sqlite:<file>` (embedded, `better-sqlite3`; `sqlite::memory:` for a throwaway one) or
 * `postgres://user:pass@host/db` (`pg`). The URL can hold a password: it never appears in an error.
 */
export function dataSourceOptionsFromUrl(url: string): DataSourceOptions {
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length);
    if (!path)
      throw new DiscourseConnectConfigurationError(
        'database.url is invalid: use sqlite:<file path>, e.g. sqlite:./data/discourse-connect.sqlite',
      );
    // Sessions and e-mail addresses live here: the directory is the owner's only.
    if (path !== ':memory:') mkdirSync(dirname(resolve(path)), { recursive: true, mode: 0o700 });
    return { type: 'better-sqlite3', database: path, enableWAL: path !== ':memory:' };
  }
  if (/^postgres(ql)?:\/\//.test(url)) return { type: 'postgres', url };
  throw new DiscourseConnectConfigurationError(
    'database.url is invalid: use sqlite:<file path> for an embedded database or postgres://user:pass@host/db.',
  );
}
