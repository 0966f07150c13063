import { Test } from '@nestjs/testing';
import { DiscourseConnectSettings } from '../config/discourse-connect.settings';
import { hashDiscordMetadata, type DiscordMetadata } from './discord-profile';
import type { LocalUser } from './local-user.interface';
import { UserStore, type LocalUserData } from './user-store.interface';
import { UsersService, type SignInOutcome } from './users.service';
import { discordProfileFixture, migratedSqlite } from '../../test-support/fixtures';
import { DiscourseConnectUserEntity } from './discourse-connect-user.entity';
import { TypeOrmUserStore } from './typeorm-user.store';

const meta = (over: Partial<DiscordMetadata> = {}): DiscordMetadata =>
  discordProfileFixture({ username: 'ava.migrated', ...over });

/** An in-memory store that counts every call. */
class CountingStore implements UserStore {
  readonly rows = new Map<string, LocalUser>();
  calls = { findByDiscordId: 0, create: 0, update: 0 };
  /** Simulates another request inserting the same user between our read and our insert. */
  loseNextCreateRace = false;
  /** A store that refuses the insert for another reason (the row never appears). */
  createAlwaysNull = false;

  async findByDiscordId(discordId: string): Promise<LocalUser | null> {
    this.calls.findByDiscordId++;
    return this.rows.get(discordId) ?? null;
  }

  async create(data: LocalUserData): Promise<LocalUser | null> {
    this.calls.create++;
    if (this.createAlwaysNull) return null;
    if (this.loseNextCreateRace) {
      this.loseNextCreateRace = false;
      this.rows.set(data.discordId, row({ ...data, displayName: 'written by the other request' }));
      return null;
    }
    if (this.rows.has(data.discordId)) return null;
    const user = row(data);
    this.rows.set(data.discordId, user);
    return user;
  }

  async update(data: LocalUserData): Promise<LocalUser> {
    this.calls.update++;
    const user = { ...this.rows.get(data.discordId)!, ...data, updatedAt: new Date() };
    this.rows.set(data.discordId, user);
    return user;
  }

  get writes(): number {
    return this.calls.create + this.calls.update;
  }
}

const row = (data: LocalUserData): LocalUser => ({
  ...data,
  createdAt: new Date(0),
  updatedAt: new Date(0),
});

describe('UsersService', () => {
  let users: UsersService;
  let store: CountingStore;

  beforeEach(async () => {
    store = new CountingStore();
    const moduleRef = await Test.createTestingModule({
      providers: [UsersService, { provide: UserStore, useValue: store }],
    }).compile();
    users = moduleRef.get(UsersService);
  });

  it('creates the user on the first sign-in', async () => {
    const outcome = await users.signInFromDiscord(meta());
    expect(outcome).toMatchObject({ created: true, changed: false });
    expect(outcome.user).toMatchObject({
      discordId: '293847561029384756',
      username: 'ava.migrated',
      displayName: 'Ava',
      email: 'ava@example.com',
      emailVerified: true,
      avatarHash: '4f2c1b9e8d7a6c5b4a3f2e1d0c9b8a7f',
      metadataHash: hashDiscordMetadata(meta()),
    });
    expect(store.calls.create).toBe(1);
    expect(store.calls.update).toBe(0);
  });

  it('uses the username as display name when Discord has no global name', async () => {
    const outcome = await users.signInFromDiscord(meta({ global_name: null }));
    expect(outcome.user.displayName).toBe('ava.migrated');
  });

  it('writes nothing when the metadata hash is unchanged', async () => {
    await users.signInFromDiscord(meta());
    store.calls = { findByDiscordId: 0, create: 0, update: 0 };
    const outcome = await users.signInFromDiscord(meta());
    expect(outcome).toMatchObject({ created: false, changed: false });
    expect(store.writes).toBe(0);
    expect(outcome.previous).toBeUndefined();
  });

  it('calls afterWrite only when something was written', async () => {
    const seen: [boolean, boolean][] = [];
    const afterWrite = async (o: SignInOutcome): Promise<void> => {
      seen.push([o.created, o.changed]);
    };
    await users.signInFromDiscord(meta(), afterWrite);
    await users.signInFromDiscord(meta(), afterWrite);
    await users.signInFromDiscord(meta({ avatar: null }), afterWrite);
    expect(seen).toEqual([
      [true, false],
      [false, true],
    ]);
  });

  it('updates once when Discord data changed, and reports what it was before', async () => {
    await users.signInFromDiscord(meta());
    store.calls = { findByDiscordId: 0, create: 0, update: 0 };
    const outcome = await users.signInFromDiscord(
      meta({ global_name: 'Ava R.', avatar: 'a_0123456789abcdef' }),
    );
    expect(outcome).toMatchObject({ created: false, changed: true });
    expect(outcome.previous).toMatchObject({
      global_name: 'Ava',
      avatar: '4f2c1b9e8d7a6c5b4a3f2e1d0c9b8a7f',
    });
    expect(outcome.user).toMatchObject({ displayName: 'Ava R.', avatarHash: 'a_0123456789abcdef' });
    expect(store.calls.update).toBe(1);
    expect(store.calls.create).toBe(0);
  });

  it('continues as a returning user when a parallel first sign-in created the user first', async () => {
    store.loseNextCreateRace = true;
    const outcome = await users.signInFromDiscord(meta());
    expect(outcome.created).toBe(false);
    expect(store.calls.create).toBe(1);
    // The other request's row had the same hash: nothing more to write.
    expect(outcome).toMatchObject({ changed: false });
    expect(outcome.user.displayName).toBe('written by the other request');
    expect(store.calls.update).toBe(0);
  });

  it('two first sign-ins at once give one user, one created and one returning', async () => {
    const [a, b] = await Promise.all([
      users.signInFromDiscord(meta()),
      users.signInFromDiscord(meta()),
    ]);
    expect([a.created, b.created].sort()).toEqual([false, true]);
    expect(store.rows.size).toBe(1);
    expect(store.calls.create).toBe(2);
    expect(store.calls.update).toBe(0);
  });

  it('fails (instead of looping) when the store refuses the insert and the user never appears', async () => {
    store.createAlwaysNull = true;
    await expect(users.signInFromDiscord(meta())).rejects.toThrow(/could not be created/);
    expect(store.calls.create).toBeLessThanOrEqual(2);
  });

  it('runs the write in the store transaction when it has one', async () => {
    const transaction = jest.fn(<T>(work: (s: UserStore, m: never) => Promise<T>) =>
      work(store, undefined as never),
    );
    Object.assign(store, { transaction });
    await users.signInFromDiscord(meta());
    await users.signInFromDiscord(meta());
    expect(transaction).toHaveBeenCalledTimes(1);
  });

  it('finds users by Discord id through the store', async () => {
    await users.signInFromDiscord(meta());
    expect((await users.findByDiscordId('293847561029384756'))?.username).toBe('ava.migrated');
    expect(await users.findByDiscordId('1')).toBeNull();
  });
});

describe('UsersService.findSignedIn (the per-request read)', () => {
  let store: CountingStore;
  const make = async (readCacheMs?: number): Promise<UsersService> => {
    const settings =
      readCacheMs === undefined
        ? []
        : [{ provide: DiscourseConnectSettings, useValue: { session: { readCacheMs } } }];
    const moduleRef = await Test.createTestingModule({
      providers: [UsersService, { provide: UserStore, useValue: store }, ...settings],
    }).compile();
    return moduleRef.get(UsersService);
  };

  beforeEach(() => {
    store = new CountingStore();
  });

  it('answers the requests right after a sign-in from the member it wrote, without a read', async () => {
    const users = await make();
    await users.signInFromDiscord(meta());
    store.calls.findByDiscordId = 0;
    for (let i = 0; i < 5; i++)
      expect(await users.findSignedIn(meta().id)).toMatchObject({ username: 'ava.migrated' });
    expect(store.calls.findByDiscordId).toBe(0);
  });

  it('reads the store once for a quick succession of requests', async () => {
    const users = await make();
    await users.signInFromDiscord(meta());
    users.forget(meta().id);
    store.calls.findByDiscordId = 0;
    for (let i = 0; i < 5; i++)
      expect(await users.findSignedIn(meta().id)).toMatchObject({ username: 'ava.migrated' });
    expect(store.calls.findByDiscordId).toBe(1);
  });

  it('sees a sign-in that changed the profile at once', async () => {
    const users = await make();
    await users.signInFromDiscord(meta());
    await users.findSignedIn(meta().id);
    await users.signInFromDiscord(meta({ username: 'ava.renamed' }));
    expect(await users.findSignedIn(meta().id)).toMatchObject({ username: 'ava.renamed' });
  });

  it('sees a change made elsewhere once the window ends, and after forget() at once', async () => {
    const users = await make(40);
    await users.signInFromDiscord(meta());
    await users.findSignedIn(meta().id);
    store.rows.set(meta().id, { ...store.rows.get(meta().id)!, username: 'changed.elsewhere' });
    expect(await users.findSignedIn(meta().id)).toMatchObject({ username: 'ava.migrated' });
    await new Promise((r) => setTimeout(r, 60));
    expect(await users.findSignedIn(meta().id)).toMatchObject({ username: 'changed.elsewhere' });
    store.rows.set(meta().id, { ...store.rows.get(meta().id)!, username: 'changed.again' });
    users.forget(meta().id);
    expect(await users.findSignedIn(meta().id)).toMatchObject({ username: 'changed.again' });
  });

  it('reads the store on every request when readCacheMs is 0', async () => {
    const users = await make(0);
    await users.signInFromDiscord(meta());
    store.calls.findByDiscordId = 0;
    await users.findSignedIn(meta().id);
    await users.findSignedIn(meta().id);
    expect(store.calls.findByDiscordId).toBe(2);
  });

  it('hands out copies: a caller changing its user does not change the next request', async () => {
    const users = await make();
    await users.signInFromDiscord(meta());
    const first = (await users.findSignedIn(meta().id))!;
    first.username = 'mutated by a filter';
    first.metadata.username = 'mutated too';
    const second = (await users.findSignedIn(meta().id))!;
    expect(second.username).toBe('ava.migrated');
    expect(second.metadata.username).toBe('ava.migrated');
  });

  it('recentCopy: the member as a committed sign-in wrote them, none once a change is under way or with readCacheMs 0', async () => {
    const users = await make();
    expect(users.recentCopy(meta().id)).toBeNull();
    await users.signInFromDiscord(meta({ username: 'ava.renamed' }));
    store.calls.findByDiscordId = 0;
    expect(users.recentCopy(meta().id)).toMatchObject({ username: 'ava.renamed' });
    expect(store.calls.findByDiscordId).toBe(0);
    users.forget(meta().id);
    expect(users.recentCopy(meta().id)).toBeNull();
    const uncached = await make(0);
    await uncached.signInFromDiscord(meta({ username: 'ava.again' }));
    expect(uncached.recentCopy(meta().id)).toBeNull();
  });

  it('never keeps a user that is not there', async () => {
    const users = await make();
    expect(await users.findSignedIn('123456789012345678')).toBeNull();
    await users.signInFromDiscord(meta({ id: '123456789012345678' }));
    expect(await users.findSignedIn('123456789012345678')).toMatchObject({
      discordId: '123456789012345678',
    });
  });
});

describe('UsersService: two-factor authentication, kept outside the metadata hash (real SQLite)', () => {
  it('stores mfa_enabled without counting it as a profile change; a flip is mfaChanged', async () => {
    const dataSource = await migratedSqlite();
    try {
      const users = new UsersService(
        new TypeOrmUserStore(dataSource.getRepository(DiscourseConnectUserEntity)),
      );
      const created = await users.signInFromDiscord(meta(), undefined, undefined, true);
      expect(created).toMatchObject({ created: true, changed: false });
      expect((await users.findByDiscordId(meta().id))!.mfaEnabled).toBe(true);
      // Same data: nothing written, no change.
      const same = await users.signInFromDiscord(meta(), undefined, undefined, true);
      expect(same).toEqual({ user: expect.anything(), created: false, changed: false });
      // Two-factor turned off: written, `mfaChanged`, and the hash (profile) unchanged.
      const afterWrite = jest.fn(async () => undefined);
      const off = await users.signInFromDiscord(meta(), afterWrite, undefined, false);
      expect(off).toMatchObject({ created: false, changed: false, mfaChanged: true });
      expect(off.user.metadataHash).toBe(created.user.metadataHash);
      expect(afterWrite).toHaveBeenCalledTimes(1);
      expect((await users.findByDiscordId(meta().id))!.mfaEnabled).toBe(false);
    } finally {
      await dataSource.destroy();
    }
  });

  it('a role change Discord reports outside a sign-in keeps the stored two-factor flag', async () => {
    const dataSource = await migratedSqlite();
    try {
      const users = new UsersService(
        new TypeOrmUserStore(dataSource.getRepository(DiscourseConnectUserEntity)),
      );
      const signedIn = await users.signInFromDiscord(
        meta({ roles: ['1'] }),
        undefined,
        undefined,
        true,
      );
      const afterWrite = jest.fn(async () => undefined);
      const update = await users.updateDiscordRoles(signedIn.user, ['1', '2'], afterWrite);
      expect(update).toMatchObject({ created: false, changed: true });
      expect(update.mfaChanged).toBeUndefined();
      expect(afterWrite).toHaveBeenCalledTimes(1);
      users.forget(meta().id);
      const stored = (await users.findByDiscordId(meta().id))!;
      expect(stored.mfaEnabled).toBe(true);
      expect(stored.metadata.roles).toEqual(['1', '2']);
      // The same roles again write nothing, two-factor included.
      const again = await users.updateDiscordRoles(stored, ['2', '1'], afterWrite);
      expect(again).toEqual({ user: expect.anything(), created: false, changed: false });
      // Only a sign-in changes it.
      const off = await users.signInFromDiscord(stored.metadata, undefined, undefined, false);
      expect(off).toMatchObject({ changed: false, mfaChanged: true });
    } finally {
      await dataSource.destroy();
    }
  });

  it('a first recorded value (a member from before the column) is written, and is no change', async () => {
    const dataSource = await migratedSqlite();
    try {
      const repo = dataSource.getRepository(DiscourseConnectUserEntity);
      const users = new UsersService(new TypeOrmUserStore(repo));
      await users.signInFromDiscord(meta());
      await repo.update({ discordId: meta().id }, { mfaEnabled: null });
      const afterWrite = jest.fn(async () => undefined);
      const first = await users.signInFromDiscord(meta(), afterWrite, undefined, true);
      expect(first.changed).toBe(false);
      expect(first.mfaChanged).toBeUndefined();
      expect(afterWrite).not.toHaveBeenCalled();
      expect((await repo.findOneBy({ discordId: meta().id }))!.mfaEnabled).toBe(true);
      // Absent counts as false: a member without two-factor writes nothing.
      await repo.update({ discordId: meta().id }, { mfaEnabled: null });
      const update = jest.spyOn(TypeOrmUserStore.prototype, 'update');
      await users.signInFromDiscord(meta(), undefined, undefined, false);
      expect(update).not.toHaveBeenCalled();
    } finally {
      jest.restoreAllMocks();
      await dataSource.destroy();
    }
  });
});
