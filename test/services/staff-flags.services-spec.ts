import { DataSource } from 'typeorm';
import {
  DISCOURSE_CONNECT_ENTITIES,
  DISCOURSE_CONNECT_MIGRATIONS,
  DiscourseConnectForumLinkEntity,
  DiscourseConnectUserEntity,
  ForumLinks,
  TypeOrmUserStore,
  UsersService,
  pickDiscordMetadata,
} from 'nestjs-discourse-connect/internal';
import { DISCORD_FIXTURES } from 'nestjs-discourse-connect-simulators';
import { createDatabase, describeWithServices } from './support/services';

const { migrated } = DISCORD_FIXTURES;

/**
 * The staff-flag records on a real PostgreSQL: the migration's boolean columns, the conditional
 * grant/take-back updates (one of two racing deliveries reports a change), two-factor storage.
 */
describeWithServices('staff flags on PostgreSQL', () => {
  jest.setTimeout(60_000);
  let db: Awaited<ReturnType<typeof createDatabase>>;
  let dataSource: DataSource;

  beforeAll(async () => {
    db = await createDatabase('staff');
    dataSource = new DataSource({
      type: 'postgres',
      url: db.url,
      entities: DISCOURSE_CONNECT_ENTITIES,
      migrations: DISCOURSE_CONNECT_MIGRATIONS,
      migrationsRun: true,
    });
    await dataSource.initialize();
  });
  afterAll(async () => {
    await dataSource?.destroy();
    await db?.drop();
  });

  it('records a grant and a take-back once each, and keeps the link row', async () => {
    const links = new ForumLinks(dataSource.getRepository(DiscourseConnectForumLinkEntity));
    expect(await links.staffGrants('main', migrated.id)).toEqual({
      admin: false,
      moderator: false,
    });
    expect(await links.changeStaffGrant('main', migrated.id, 'admin', true)).toBe(true);
    expect(await links.changeStaffGrant('main', migrated.id, 'admin', true)).toBe(false);
    expect(await links.staffGrants('main', migrated.id)).toEqual({ admin: true, moderator: false });
    expect(await links.find('main', migrated.id)).toMatchObject({ status: 'linked' });
    // A later lookup's answer leaves the grant alone.
    await links.record('main', migrated.id, {
      status: 'linked',
      account: { id: 7, username: 'ava' },
    });
    expect(await links.changeStaffGrant('main', migrated.id, 'admin', false)).toBe(true);
    expect(await links.changeStaffGrant('main', migrated.id, 'admin', false)).toBe(false);
    expect(await links.changeStaffGrant('main', migrated.id, 'moderator', false)).toBe(false);
    expect(await links.staffGrants('main', migrated.id)).toEqual({
      admin: false,
      moderator: false,
    });
    // "No account there" clears what was granted there.
    await links.changeStaffGrant('main', migrated.id, 'moderator', true);
    await links.record(
      'main',
      migrated.id,
      { status: 'not_found' },
      { askedAt: Date.now() + 1000 },
    );
    expect(await links.staffGrants('main', migrated.id)).toEqual({
      admin: false,
      moderator: false,
    });
  });

  it('stores two-factor authentication beside the metadata, not in its hash', async () => {
    const users = new UsersService(
      new TypeOrmUserStore(dataSource.getRepository(DiscourseConnectUserEntity)),
    );
    const meta = pickDiscordMetadata({ ...migrated });
    const first = await users.signInFromDiscord(meta, undefined, undefined, true);
    const off = await users.signInFromDiscord(meta, undefined, undefined, false);
    expect(off).toMatchObject({ changed: false, mfaChanged: true });
    expect(off.user.metadataHash).toBe(first.user.metadataHash);
    expect((await users.findByDiscordId(migrated.id))!.mfaEnabled).toBe(false);
  });
});
