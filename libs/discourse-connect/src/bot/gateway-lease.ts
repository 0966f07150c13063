import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';

/**
 * Who holds the Discord gateway connection (and runs the reconcile): exactly one process of the
 * deployment at a time.
 */
export interface GatewayLease {
  /**
   * Takes the lease when nobody holds it (or extends it when this process still does); resolves to
   * whether this process holds it now.
   */
  acquire(): Promise<boolean>;
  /** Extends the lease this process holds; false when it was lost (expired, taken). */
  renew(): Promise<boolean>;
  /** Gives the lease up (only when this process holds it), so another process takes over at once. */
  release(): Promise<void>;
}

/** Without Redis: the one process always holds it. */
export class LocalGatewayLease implements GatewayLease {
  async acquire(): Promise<boolean> {
    return true;
  }
  async renew(): Promise<boolean> {
    return true;
  }
  async release(): Promise<void> {}
}

/** Sets the key when absent, or extends it when it names this holder already. */
const ACQUIRE = `local v = redis.call('get', KEYS[1])
if v == false then redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
if v == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0`;
/** Extends the key's life only while it still names this holder. */
const RENEW = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;
/** Deletes the key only while it still names this holder. */
const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;

/**
 * A lease in Redis: one key holding the holder's random id, set when absent and renewed (only
 * by its holder) well before it expires. A holder that dies stops renewing; the key expires after
 * `ttlMs` and the next process that asks takes it.
 */
export class RedisGatewayLease implements GatewayLease {
  /** This process's id in the key. */
  readonly holder = randomUUID();

  constructor(
    private readonly redis: Pick<Redis, 'eval'>,
    /** The key, with the module's Redis prefix. */
    readonly key: string,
    readonly ttlMs: number,
  ) {}

  async acquire(): Promise<boolean> {
    return Number(await this.redis.eval(ACQUIRE, 1, this.key, this.holder, this.ttlMs)) === 1;
  }

  async renew(): Promise<boolean> {
    return Number(await this.redis.eval(RENEW, 1, this.key, this.holder, this.ttlMs)) === 1;
  }

  async release(): Promise<void> {
    await this.redis.eval(RELEASE, 1, this.key, this.holder);
  }
}
