import { randomBytes } from 'node:crypto';
import { pgClient } from './servers';

/**
 * Helpers for tests of the `services` project (see global-setup.ts): the shared PostgreSQL and
 * Redis started for this run, a fresh database per test file, a fresh Redis key prefix per use.
 */

/** Why the services tests are skipped, or null when the servers run. */
export const servicesMissing: string | null = process.env.DC_TEST_SERVICES_MISSING ?? null;

/** `describe` when PostgreSQL and Redis run, `describe.skip` otherwise (globalSetup said why, once). */
export const describeWithServices: jest.Describe = (
  servicesMissing ? describe.skip : describe
) as jest.Describe;

export function postgresServerUrl(): string {
  const url = process.env.DC_TEST_POSTGRES_URL;
  if (!url)
    throw new Error(
      'No test PostgreSQL: run this file through the jest project "services" (npx jest --selectProjects services).',
    );
  return url;
}

export function redisUrl(): string {
  const url = process.env.DC_TEST_REDIS_URL;
  if (!url)
    throw new Error(
      'No test Redis: run this file through the jest project "services" (npx jest --selectProjects services).',
    );
  return url;
}

/** A unique Redis key prefix, so test files and instances sharing one Redis never see each other's keys. */
export function uniquePrefix(name = 'test'): string {
  return `dc-${name}-${randomBytes(4).toString('hex')}:`;
}

/** Creates an empty database on the test server; `drop()` removes it (closing leftover sessions). */
export async function createDatabase(name = 'dc'): Promise<{ url: string; drop(): Promise<void> }> {
  const server = postgresServerUrl();
  const db = `${name}_${randomBytes(5).toString('hex')}`.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  const admin = pgClient({ connectionString: server });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${db}"`);
  } finally {
    await admin.end();
  }
  const url = new URL(server);
  url.pathname = `/${db}`;
  return {
    url: url.toString(),
    drop: async () => {
      const c = pgClient({ connectionString: server });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}
