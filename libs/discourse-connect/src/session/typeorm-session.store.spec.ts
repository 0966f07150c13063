import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SessionData } from 'express-session';
import { DataSource, type Repository } from 'typeorm';
import { DISCOURSE_CONNECT_MIGRATIONS } from '../migrations';
import { DiscourseConnectSessionEntity } from './discourse-connect-session.entity';
import {
  regenerateForLogIn,
  TypeOrmSessionStore,
  type TypeOrmSessionStoreOptions,
} from './typeorm-session.store';

const DAY = 86_400_000;
const session = (extra: Record<string, unknown> = {}): SessionData =>
  ({
    cookie: { originalMaxAge: DAY, expires: new Date(Date.now() + DAY) },
    ...extra,
  }) as unknown as SessionData;

const promised = {
  get: (store: TypeOrmSessionStore, sid: string) =>
    new Promise<SessionData | null | undefined>((resolve, reject) =>
      store.get(sid, (err, s) => (err ? reject(err) : resolve(s))),
    ),
  set: (store: TypeOrmSessionStore, sid: string, s: SessionData) =>
    new Promise<void>((resolve, reject) =>
      store.set(sid, s, (err) => (err ? reject(err) : resolve())),
    ),
  destroy: (store: TypeOrmSessionStore, sid: string) =>
    new Promise<void>((resolve, reject) =>
      store.destroy(sid, (err) => (err ? reject(err) : resolve())),
    ),
};

/** The module's session store on a real SQLite file, as two processes on one database would see it. */
describe('TypeOrmSessionStore', () => {
  let dir: string;
  let dataSource: DataSource;
  let rows: Repository<DiscourseConnectSessionEntity>;
  const stores: TypeOrmSessionStore[] = [];
  const newStore = (options: Partial<TypeOrmSessionStoreOptions> = {}) => {
    const store = new TypeOrmSessionStore(rows, { defaultTtlMs: DAY, ...options });
    stores.push(store);
    return store;
  };
  let reads: number;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dc-session-store-'));
    dataSource = new DataSource({
      type: 'better-sqlite3',
      database: join(dir, 'sessions.sqlite'),
      entities: [DiscourseConnectSessionEntity],
      migrations: DISCOURSE_CONNECT_MIGRATIONS,
      migrationsRun: true,
    });
    await dataSource.initialize();
    rows = dataSource.getRepository(DiscourseConnectSessionEntity);
    reads = 0;
    const findOneBy = rows.findOneBy.bind(rows);
    rows.findOneBy = (where) => {
      reads++;
      return findOneBy(where);
    };
  });

  afterEach(async () => {
    for (const store of stores.splice(0)) store.close();
    await dataSource.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('stores, reads back and destroys a session', async () => {
    const store = newStore();
    await promised.set(store, 'sid-1', session({ passport: { user: '42' } }));
    expect(await promised.get(store, 'sid-1')).toMatchObject({ passport: { user: '42' } });
    expect(await rows.countBy({ sid: 'sid-1' })).toBe(1);
    await promised.destroy(store, 'sid-1');
    expect(await promised.get(store, 'sid-1')).toBeNull();
    expect(await rows.countBy({ sid: 'sid-1' })).toBe(0);
  });

  it('answers a quick succession of reads with one database read, each with its own copy', async () => {
    const store = newStore();
    await promised.set(newStore(), 'sid-1', session({ n: 1 }));
    const first = (await promised.get(store, 'sid-1')) as unknown as Record<string, unknown>;
    first.n = 'changed by the request';
    for (let i = 0; i < 5; i++) expect(await promised.get(store, 'sid-1')).toMatchObject({ n: 1 });
    expect(reads).toBe(1);
  });

  it('sees its own writes and destroys at once', async () => {
    const store = newStore();
    await promised.set(store, 'sid-1', session({ n: 1 }));
    await promised.get(store, 'sid-1');
    await promised.set(store, 'sid-1', session({ n: 2 }));
    expect(await promised.get(store, 'sid-1')).toMatchObject({ n: 2 });
    await promised.destroy(store, 'sid-1');
    expect(await promised.get(store, 'sid-1')).toBeNull();
  });

  it('sees a sign-out made by another instance once its read window ends', async () => {
    const here = newStore({ readCacheMs: 50 });
    const there = newStore({ readCacheMs: 50 });
    await promised.set(there, 'sid-1', session({ passport: { user: '42' } }));
    expect(await promised.get(here, 'sid-1')).toMatchObject({ passport: { user: '42' } });
    await promised.destroy(there, 'sid-1');
    await new Promise((r) => setTimeout(r, 80));
    expect(await promised.get(here, 'sid-1')).toBeNull();
  });

  it('does not cache what a read saw while a write of the same session was on its way (a pool of connections)', async () => {
    const store = newStore();
    await promised.set(store, 'sid-1', session({ n: 1 }));
    // As on PostgreSQL with several connections: the read runs first but answers last.
    const upsert = rows.upsert.bind(rows);
    rows.upsert = (async (...args: Parameters<typeof rows.upsert>) => {
      await new Promise((r) => setTimeout(r, 10));
      return upsert(...args);
    }) as typeof rows.upsert;
    const findOneBy = rows.findOneBy.bind(rows);
    rows.findOneBy = (async (where: Parameters<typeof rows.findOneBy>[0]) => {
      const row = await findOneBy(where);
      await new Promise((r) => setTimeout(r, 30));
      return row;
    }) as typeof rows.findOneBy;
    store.close(); // drop what the first set cached, so the next get goes to the database
    const write = promised.set(store, 'sid-1', session({ n: 2 }));
    const staleRead = promised.get(store, 'sid-1');
    await write;
    expect(await staleRead).toMatchObject({ n: 1 });
    expect(await promised.get(store, 'sid-1')).toMatchObject({ n: 2 });
  });

  it('reads the database every time when readCacheMs is 0', async () => {
    const here = newStore({ readCacheMs: 0 });
    const there = newStore({ readCacheMs: 0 });
    await promised.set(there, 'sid-1', session());
    expect(await promised.get(here, 'sid-1')).not.toBeNull();
    await promised.destroy(there, 'sid-1');
    expect(await promised.get(here, 'sid-1')).toBeNull();
    expect(reads).toBe(2);
  });

  it('treats an expired session as absent and sweeps it', async () => {
    const store = newStore();
    const past = {
      cookie: { originalMaxAge: 1, expires: new Date(Date.now() - 1000) },
    } as unknown as SessionData;
    await promised.set(store, 'old', past);
    await promised.set(store, 'new', session());
    expect(await promised.get(store, 'old')).toBeNull();
    expect(await store.sweep()).toBe(1);
    expect(await rows.countBy({})).toBe(1);
  });

  it('keeps at most readCacheSize sessions in memory', async () => {
    const store = newStore({ readCacheSize: 2 });
    for (const sid of ['a', 'b', 'c']) await promised.set(store, sid, session({ sid }));
    reads = 0;
    await promised.get(store, 'c');
    await promised.get(store, 'b');
    expect(reads).toBe(0);
    await promised.get(store, 'a'); // evicted first
    expect(reads).toBe(1);
  });

  it('takes a row’s expiry from the cookie: a one-hour pre-sign-in session is not kept for the default lifetime', async () => {
    const store = newStore({ defaultTtlMs: 14 * DAY });
    const hour = {
      cookie: { originalMaxAge: 3_600_000, expires: new Date(Date.now() + 3_600_000) },
    } as unknown as SessionData;
    await promised.set(store, 'pre', hour);
    const row = await rows.findOneByOrFail({ sid: 'pre' });
    expect(row.expiresAt).toBeLessThanOrEqual(Date.now() + 3_600_000);
    expect(row.expiresAt).toBeGreaterThan(Date.now() + 3_600_000 - 5_000);
  });
  it('does not write again a session it just wrote unchanged (only its expiry moved by moments)', async () => {
    const store = newStore();
    let writes = 0;
    const upsert = rows.upsert.bind(rows);
    rows.upsert = ((...args: Parameters<typeof upsert>) => {
      writes++;
      return upsert(...args);
    }) as typeof rows.upsert;
    const first = session({ passport: { user: '42' } });
    await promised.set(store, 'sid-a', first);
    const again = session({ passport: { user: '42' } });
    (again.cookie as unknown as { expires: Date }).expires = new Date(
      new Date(first.cookie.expires as Date).getTime() + 2,
    );
    await promised.set(store, 'sid-a', again);
    expect(writes).toBe(1);
    // A real change is written.
    await promised.set(store, 'sid-a', session({ passport: { user: '43' } }));
    expect(writes).toBe(2);
    expect(((await promised.get(newStore({ readCacheMs: 0 }), 'sid-a')) as any).passport).toEqual({
      user: '43',
    });
  });

  it('cachedSession answers only a fresh, unexpired copy this process holds', async () => {
    const store = newStore({ readCacheMs: 60_000 });
    expect(store.cachedSession('sid-b')).toBeUndefined();
    await promised.set(store, 'sid-b', session({ passport: { user: '7' } }));
    expect((store.cachedSession('sid-b') as any).passport).toEqual({ user: '7' });
    await promised.destroy(store, 'sid-b');
    expect(store.cachedSession('sid-b')).toBeUndefined();
    const expired = session();
    (expired.cookie as unknown as { expires: Date }).expires = new Date(Date.now() - 1000);
    await promised.set(store, 'sid-c', expired);
    expect(store.cachedSession('sid-c')).toBeUndefined();
    const off = newStore({ readCacheMs: 0 });
    await promised.set(off, 'sid-d', session());
    expect(off.cachedSession('sid-d')).toBeUndefined();
    // The member id of a cached session; none for a session nobody signed in to.
    await promised.set(store, 'sid-e', session({ passport: { user: '9' } }));
    expect(store.cachedMember('sid-e')).toBe('9');
    expect(store.cachedMember('sid-e')).toBe('9');
    await promised.set(store, 'sid-e', session({ passport: { user: '10' } }));
    expect(store.cachedMember('sid-e')).toBe('10');
    await promised.set(store, 'sid-f', session({ oauth: 'state' }));
    expect(store.cachedMember('sid-f')).toBeUndefined();
    expect(off.cachedMember('sid-d')).toBeUndefined();
  });

  it('at log-in, renames the old session row to the new id in one statement; other regenerations delete first', async () => {
    const store = newStore({ readCacheMs: 60_000 });
    const other = newStore({ readCacheMs: 0 });
    // express-session gives the store its `generate` (a new id and session on the request).
    let next = 0;
    (store as unknown as { generate(req: Record<string, unknown>): void }).generate = (req) => {
      req.sessionID = `new-${++next}`;
      req.session = {};
    };
    const regenerate = (req: Record<string, unknown>) =>
      new Promise<void>((resolve, reject) =>
        store.regenerate(req as never, (err) => (err ? reject(err) : resolve())),
      );
    // The store's writes, by repository method.
    const statements: string[] = [];
    for (const method of ['update', 'upsert', 'delete', 'insert', 'save'] as const) {
      const original = (rows[method] as (...a: unknown[]) => unknown).bind(rows);
      (rows as unknown as Record<string, unknown>)[method] = (...args: unknown[]) => {
        statements.push(method);
        return original(...args);
      };
    }

    await promised.set(store, 'old-1', session({ oauth: 'state' }));
    const req: Record<string, unknown> = { sessionID: 'old-1' };
    regenerateForLogIn(req);
    await regenerate(req);
    expect(req.sessionID).toBe('new-1');
    // Until the new session is saved, the old row is as it was (nothing is written yet).
    expect(await rows.countBy({ sid: 'old-1' })).toBe(1);
    statements.length = 0;
    await promised.set(store, 'new-1', session({ passport: { user: '42' } }));
    expect(statements).toEqual(['update']);
    expect(await rows.countBy({ sid: 'old-1' })).toBe(0);
    expect(await promised.get(other, 'old-1')).toBeNull();
    expect(await promised.get(other, 'new-1')).toMatchObject({ passport: { user: '42' } });
    expect(await promised.get(store, 'old-1')).toBeNull();
    // Saved again unchanged at the end of the request: not written twice.
    statements.length = 0;
    await promised.set(store, 'new-1', session({ passport: { user: '42' } }));
    expect(statements).toEqual([]);

    // The old row gone meanwhile (swept): the new session is written all the same.
    const gone: Record<string, unknown> = { sessionID: 'old-2' };
    regenerateForLogIn(gone);
    await regenerate(gone);
    await promised.set(store, 'new-2', session({ passport: { user: '7' } }));
    expect(await promised.get(other, 'new-2')).toMatchObject({ passport: { user: '7' } });

    // Not a log-in: the old row is deleted before the new id exists, as express-session does.
    await promised.set(store, 'old-3', session({ passport: { user: '42' } }));
    const plain: Record<string, unknown> = { sessionID: 'old-3' };
    await regenerate(plain);
    expect(await rows.countBy({ sid: 'old-3' })).toBe(0);
    expect(await promised.get(other, 'new-3')).toBeNull();
  });
});
