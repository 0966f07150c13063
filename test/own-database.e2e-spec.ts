import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import { DISCORD_FIXTURES } from 'nestjs-discourse-connect-simulators';
import { TestBrowser } from './support/browser';
import { HTTP_ADAPTERS, startHarness, type Harness } from './support/harness';

/**
 * A host with no TypeORM connection of its own (an app on Prisma or Mongoose): the `database`
 * option gives the module a DataSource of its own, migrated at boot, and the whole flow runs on it.
 */
describe.each(HTTP_ADAPTERS)('the module on its own database (%s)', (adapter) => {
  const { migrated } = DISCORD_FIXTURES;
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness('forRoot', { adapter, ownDatabase: true });
  });

  afterAll(() => h?.close());

  it('creates and migrates its database, and signs a member in on the forum through it', async () => {
    expect(existsSync(h.databaseFile)).toBe(true);
    h.discord.knobs.autoApproveAs = migrated.id;
    const page = await new TestBrowser().visit(
      `${h.forum.baseUrl}/session/sso?return_path=%2Ft%2Fwelcome%2F1`,
    );
    expect({ status: page.status, url: page.url }).toEqual({
      status: 200,
      url: `${h.forum.baseUrl}/t/welcome/1`,
    });
    expect(h.forum.findByExternalId(migrated.id)).toMatchObject({ email: migrated.email });
    const db = new Database(h.databaseFile, { readonly: true });
    try {
      const users = db.prepare('SELECT discord_id FROM discourse_connect_users').all();
      const sessions = db.prepare('SELECT COUNT(*) AS n FROM discourse_connect_sessions').get() as {
        n: number;
      };
      expect(users).toEqual([{ discord_id: migrated.id }]);
      expect(sessions.n).toBeGreaterThan(0);
    } finally {
      db.close();
    }
  });

  it('answers /health from its own database', async () => {
    const res = await fetch(`${h.appUrl}/health`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'ok', checks: { database: 'up' } });
  });
});
