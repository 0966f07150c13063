import 'reflect-metadata';
import { DataSource, type DataSourceOptions } from 'typeorm';
import { DISCOURSE_CONNECT_ENTITIES } from 'nestjs-discourse-connect';
import { databaseOptions } from './database';
import { loadEnvFile } from './env-file';

/**
 * `npm run migration:run`: applies the module's pending migrations to DATABASE_URL (the embedded
 * SQLite file by default) and exits. Run it once before starting several instances of a new
 * version; the app also applies pending migrations at boot.
 */
async function main(): Promise<void> {
  loadEnvFile();
  let dataSource: DataSource;
  try {
    const {
      autoLoadEntities: _auto,
      migrationsRun: _run,
      ...options
    } = databaseOptions(process.env.DATABASE_URL) as Record<string, unknown>;
    dataSource = new DataSource({
      ...options,
      entities: DISCOURSE_CONNECT_ENTITIES,
      migrationsRun: false,
    } as unknown as DataSourceOptions);
    await dataSource.initialize();
  } catch (error) {
    // Never echo DATABASE_URL: it may hold a password.
    console.error(
      `\nCould not open the database (DATABASE_URL): ${(error as Error).message.replace(/\/\/[^@\s]*@/g, '//***@')}\n`,
    );
    process.exit(1);
  }
  try {
    const applied = await dataSource.runMigrations({ transaction: 'all' });
    console.log(
      applied.length
        ? `Applied ${applied.length} migration(s): ${applied.map((m) => m.name).join(', ')}.`
        : 'The database is up to date.',
    );
  } finally {
    await dataSource.destroy();
  }
}

void main();
