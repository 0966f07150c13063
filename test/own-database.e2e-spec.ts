import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import Database from 'better-sqlite3';
import { DiscourseConnectModule } from 'nestjs-discourse-connect';
import {
  DISCORD_FIXTURES,
  DiscordSimulator,
  DiscourseSimulator,
} from 'nestjs-discourse-connect-simulators';
import { createHttpAdapter } from '../src/http-adapter';
import { TestBrowser } from './support/browser';
import { FORUM_SECRET, HTTP_ADAPTERS, SESSION_SECRET, freePort } from './support/harness';

/**
 * A host with no TypeORM connection of its own (an app on Prisma or Mongoose): the `database`
 * option gives the module a DataSource of its own, migrated at boot, and the whole flow runs on it.
 */
describe.each(HTTP_ADAPTERS)('the module on its own database (%s)', (adapter) => {
  const { migrated } = DISCORD_FIXTURES;
  const discord = new DiscordSimulator();
  const forum = new DiscourseSimulator({ secret: FORUM_SECRET });
  let app: INestApplication;
  let dir: string;
  let file: string;

  beforeAll(async () => {
    const discordUrl = await discord.listen(0);
    const forumUrl = await forum.listen(0);
    const port = await freePort();
    const appUrl = `http://127.0.0.1:${port}`;
    discord.redirectUris = [`${appUrl}/auth/discord/callback`];
    forum.connectUrl = `${appUrl}/discourse/sso`;
    dir = mkdtempSync(join(tmpdir(), 'dc-own-db-'));
    file = join(dir, 'nested', 'discourse-connect.sqlite');
    const moduleRef = await Test.createTestingModule({
      // No TypeOrmModule in the host at all.
      imports: [
        DiscourseConnectModule.forRoot({
          forums: [{ url: forumUrl, secret: FORUM_SECRET }],
          discord: {
            clientId: 'sandbox-client-id',
            clientSecret: 'sandbox-client-secret',
            baseUrl: discordUrl,
          },
          publicUrl: appUrl,
          session: { secret: SESSION_SECRET },
          rateLimit: false,
          database: { url: `sqlite:${file}` },
        }),
      ],
    }).compile();
    app = moduleRef.createNestApplication(createHttpAdapter(adapter, { trustProxy: false }), {
      rawBody: true,
      logger: false,
    });
    await app.listen(port, '127.0.0.1');
  });

  afterAll(async () => {
    await app?.close();
    await Promise.all([discord.close(), forum.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates and migrates its database, and signs a member in on the forum through it', async () => {
    expect(existsSync(file)).toBe(true);
    discord.knobs.autoApproveAs = migrated.id;
    const page = await new TestBrowser().visit(
      `${forum.baseUrl}/session/sso?return_path=%2Ft%2Fwelcome%2F1`,
    );
    expect({ status: page.status, url: page.url }).toEqual({
      status: 200,
      url: `${forum.baseUrl}/t/welcome/1`,
    });
    expect(forum.findByExternalId(migrated.id)).toMatchObject({ email: migrated.email });
    const db = new Database(file, { readonly: true });
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
    const res = await fetch(`${await app.getUrl()}/health`.replace('[::1]', '127.0.0.1'));
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'ok', checks: { database: 'up' } });
  });
});
