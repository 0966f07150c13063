import { Redis } from 'ioredis';
import { RedisSessionStore } from 'nestjs-discourse-connect/internal';
import { DISCORD_FIXTURES } from 'nestjs-discourse-connect-simulators';
import { waitFor } from './support/flows';
import { describeWithServices, redisUrl, uniquePrefix } from './support/services';

const { migrated, legacy } = DISCORD_FIXTURES;
const call = <T>(fn: (cb: (err?: unknown, value?: T) => void) => void) =>
  new Promise<T | undefined>((resolve, reject) =>
    fn((err, value) => (err ? reject(err) : resolve(value))),
  );
const session = (user: string) =>
  ({
    cookie: { originalMaxAge: 60_000, expires: new Date(Date.now() + 60_000) },
    passport: { user },
  }) as any;

/**
 * Two instances' session stores on one Redis, each with its in-process copy: a change made on one
 * reaches the other's copy through Redis pub/sub, so the copy never answers with a session another
 * instance changed or signed out (beyond the moment the announcement takes).
 */
describeWithServices('Redis session store: in-process copy kept exact across instances', () => {
  const connections: Redis[] = [];
  const connect = () => {
    const c = new Redis(redisUrl());
    connections.push(c);
    return c;
  };
  afterAll(async () => {
    await Promise.all(connections.map((c) => c.quit()));
  });

  /** An instance: its command connection, its subscriber, its store with a long read cache. */
  async function instance(prefix: string) {
    const redis = connect();
    const subscriber = connect();
    let gets = 0;
    const get = redis.get.bind(redis);
    redis.get = ((key: string) => {
      gets++;
      return get(key);
    }) as typeof redis.get;
    const store = new RedisSessionStore(redis, prefix, 60_000, {
      readCacheMs: 60_000,
      subscriber,
    });
    // Subscribed once a write is remembered.
    await waitFor(async () => {
      await call((cb) => store.set('probe', session('probe'), cb));
      return store.cachedSession('probe') !== undefined;
    }, 'the store to subscribe');
    return { store, subscriber, gets: () => gets };
  }

  it('serves repeated reads from the copy, and drops it when another instance writes or destroys', async () => {
    const prefix = uniquePrefix('sess-cache');
    const a = await instance(prefix);
    const b = await instance(prefix);

    await call((cb) => a.store.set('sid', session(migrated.id), cb));
    // B reads from Redis until its copy is kept (a read that crossed A's announcement is not kept),
    // then from its copy only.
    await waitFor(async () => {
      expect(await call((cb) => b.store.get('sid', cb))).toMatchObject({
        passport: { user: migrated.id },
      });
      return b.store.cachedSession('sid') !== undefined;
    }, 'B to keep a copy');
    const before = b.gets();
    for (let i = 0; i < 3; i++) {
      expect(await call((cb) => b.store.get('sid', cb))).toMatchObject({
        passport: { user: migrated.id },
      });
    }
    expect(b.gets() - before).toBe(0);
    expect(b.store.cachedSession('sid')).toMatchObject({ passport: { user: migrated.id } });
    expect(b.store.cachedMember('sid')).toBe(migrated.id);

    // A changes the session: B's copy goes at once, and B reads the new one.
    await call((cb) => a.store.set('sid', session(legacy.id), cb));
    await waitFor(async () => b.store.cachedSession('sid') === undefined, 'B to drop its copy');
    expect(b.store.cachedMember('sid')).toBeUndefined();
    expect(await call((cb) => b.store.get('sid', cb))).toMatchObject({
      passport: { user: legacy.id },
    });

    // A signs it out: B no longer has it.
    await call((cb) => a.store.destroy('sid', cb));
    await waitFor(async () => b.store.cachedSession('sid') === undefined, 'B to drop it');
    expect(await call((cb) => b.store.get('sid', cb))).toBeNull();
  });

  it('keeps no copy while it cannot hear the other instances', async () => {
    const prefix = uniquePrefix('sess-cache');
    const a = await instance(prefix);
    await call((cb) => a.store.set('sid', session(migrated.id), cb));
    expect(a.store.cachedSession('sid')).toBeDefined();
    a.subscriber.disconnect(true); // drops the connection; ioredis reconnects
    await waitFor(async () => a.store.cachedSession('sid') === undefined, 'A to drop its copies');
    await waitFor(async () => a.subscriber.status === 'ready', 'the subscriber to reconnect');
    // Heard again: copies are kept again, and another instance's change still reaches them.
    await waitFor(async () => {
      await call((cb) => a.store.get('sid', cb));
      return a.store.cachedSession('sid') !== undefined;
    }, 'copies to be kept again');
    const b = await instance(prefix);
    await call((cb) => b.store.destroy('sid', cb));
    await waitFor(async () => a.store.cachedSession('sid') === undefined, 'A to drop its copy');
  });
});
