import { Inject, Injectable, OnModuleDestroy, Optional } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import type { Store } from 'express-session';
import type { Repository } from 'typeorm';
import { DiscourseConnectSettings } from '../config/discourse-connect.settings';
import { DiscourseConnectRedis } from '../redis/discourse-connect-redis';
import { DiscourseConnectSessionEntity } from './discourse-connect-session.entity';
import { SessionCookieSigner } from './session-cookie-signer';
import { TypeOrmSessionStore } from './typeorm-session.store';
import { RedisSessionStore } from './redis-session.store';
import {
  createSessionStore,
  HOST_SESSION_STORE,
  type SessionStoreChoice,
} from './session-store.factory';

/**
 * The session store the module uses on either adapter (express-session on Express, the Fastify
 * glue's @fastify/session take the same object): the host's, Redis, or the module's table. Owns
 * it: the store's timers stop when the module is destroyed.
 */
@Injectable()
export class DiscourseConnectSessions implements OnModuleDestroy {
  private readonly choice: SessionStoreChoice;
  /** Signs and verifies the session cookie (express-session's format), remembering verified cookies. */
  readonly signer: SessionCookieSigner;

  constructor(
    settings: DiscourseConnectSettings,
    @InjectRepository(DiscourseConnectSessionEntity)
    sessions: Repository<DiscourseConnectSessionEntity>,
    @Inject(HOST_SESSION_STORE) hostStore: Store | null,
    @Optional() @Inject(DiscourseConnectRedis) redis?: DiscourseConnectRedis | null,
  ) {
    this.choice = createSessionStore(settings, { sessions, redis, hostStore });
    this.signer = new SessionCookieSigner(settings.session.secret);
  }

  /**
   * The signed-in member's id (passport's `user`) of a session known to this process (the module's table or Redis store, read or written here
   * within `session.readCacheMs`, and with Redis not changed by another instance since), without
   * waiting; undefined when the store must be asked.
   */
  cachedMember(sid: string): string | undefined {
    const store = this.choice.store;
    return store instanceof TypeOrmSessionStore || store instanceof RedisSessionStore
      ? store.cachedMember(sid)
      : undefined;
  }

  /**
   * Ends every session of this member (passport's `user`) at once, on the module's table or Redis
   * (every instance's copy included). Resolves to how many ended, or null with the host's own
   * session store, which cannot be searched by member (its sessions end with the user record).
   */
  async destroyMember(member: string): Promise<number | null> {
    const store = this.choice.store;
    return store instanceof TypeOrmSessionStore || store instanceof RedisSessionStore
      ? store.destroyMember(member)
      : null;
  }

  get store(): Store {
    return this.choice.store;
  }

  /** `host`: the host's `session.store`; `redis`: shared by instances; `database`: the module's table. */
  get kind(): SessionStoreChoice['kind'] {
    return this.choice.kind;
  }

  onModuleDestroy(): void {
    this.choice.close();
  }
}
