import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { DataSource, EntityManager, In, Repository } from 'typeorm';
import { DiscourseConnectUserEntity } from './discourse-connect-user.entity';
import { isUniqueViolation } from '../common/database-errors';
import type { LocalUser } from './local-user.interface';
import type { LocalUserData, TransactionalUserStore, UserStore } from './user-store.interface';

/** The default user store, on the module's own TypeORM table. */
@Injectable()
export class TypeOrmUserStore implements TransactionalUserStore {
  constructor(
    @InjectRepository(DiscourseConnectUserEntity)
    protected readonly users: Repository<DiscourseConnectUserEntity>,
  ) {}

  /**
   * One transaction at a time per process: SQLite runs every query of the app on one connection,
   * so two interleaved transactions would corrupt each other.
   */
  private static queue: Promise<unknown> = Promise.resolve();

  transaction<T>(work: (store: UserStore, manager: EntityManager) => Promise<T>): Promise<T> {
    const dataSource: DataSource = this.users.manager.connection;
    const run = () =>
      dataSource.transaction((manager) =>
        work(new TypeOrmUserStore(manager.getRepository(DiscourseConnectUserEntity)), manager),
      );
    const result = TypeOrmUserStore.queue.then(run, run);
    TypeOrmUserStore.queue = result.catch(() => undefined);
    return result;
  }

  findByDiscordId(discordId: string): Promise<LocalUser | null> {
    return this.users.findOneBy({ discordId });
  }

  async create(data: LocalUserData): Promise<LocalUser | null> {
    // The timestamps are given, so the new row is known without reading it back.
    const now = new Date();
    const values = { ...data, createdAt: now, updatedAt: now };
    try {
      // Inside a transaction the insert gets its own savepoint: on PostgreSQL a unique violation
      // (another instance created the user first) would otherwise abort the whole transaction.
      const insert = (users: Repository<DiscourseConnectUserEntity>) =>
        users.createQueryBuilder().insert().values(values).updateEntity(false).execute();
      if (this.users.manager.queryRunner?.isTransactionActive) {
        await this.users.manager.transaction((manager) =>
          insert(manager.getRepository(DiscourseConnectUserEntity)),
        );
      } else {
        await insert(this.users);
      }
    } catch (error) {
      if (isUniqueViolation(error)) return null; // another request created the same user first
      throw error;
    }
    return { ...values, forumUserId: null, forumUsername: null };
  }

  async findByDiscordIds(discordIds: string[]): Promise<LocalUser[]> {
    const found: LocalUser[] = [];
    // Bounded lists of bound parameters (SQLite and PostgreSQL both cap them).
    for (let i = 0; i < discordIds.length; i += 500) {
      found.push(...(await this.users.findBy({ discordId: In(discordIds.slice(i, i + 500)) })));
    }
    return found;
  }

  async listDiscordIds(after: string | null, limit: number): Promise<string[]> {
    const query = this.users
      .createQueryBuilder('u')
      .select('u.discordId', 'id')
      .orderBy('u.discordId', 'ASC')
      .limit(limit);
    if (after !== null) query.where('u.discordId > :after', { after });
    return (await query.getRawMany<{ id: string }>()).map((row) => row.id);
  }

  /** Member lifecycle: removes the user's row (forgetting them). */
  async delete(discordId: string): Promise<boolean> {
    const result = await this.users.delete({ discordId });
    return Boolean(result.affected);
  }

  async linkForumAccount(
    discordId: string,
    forum: { id: number; username: string },
  ): Promise<boolean> {
    const result = await this.users.update(
      { discordId },
      { forumUserId: forum.id, forumUsername: forum.username },
    );
    return Boolean(result.affected);
  }

  async update(data: LocalUserData, current?: LocalUser): Promise<LocalUser> {
    const { discordId, ...fields } = data;
    const updatedAt = new Date();
    await this.users.update({ discordId }, { ...fields, updatedAt });
    // The row is what was read plus what was written: no second read when the caller had it.
    return current ? { ...current, ...data, updatedAt } : this.users.findOneByOrFail({ discordId });
  }
}
