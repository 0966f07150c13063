import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { DiscourseConnectUserEntity } from './discourse-connect-user.entity';
import type { LocalUser } from './local-user.interface';
import type { LocalUserData, UserStore } from './user-store.interface';

/** The default user store, on the module's own TypeORM table. */
@Injectable()
export class TypeOrmUserStore implements UserStore {
  constructor(
    @InjectRepository(DiscourseConnectUserEntity)
    protected readonly users: Repository<DiscourseConnectUserEntity>,
  ) {}

  findByDiscordId(discordId: string): Promise<LocalUser | null> {
    return this.users.findOneBy({ discordId });
  }

  async create(data: LocalUserData): Promise<LocalUser | null> {
    try {
      await this.users.insert(data);
    } catch (error) {
      if (isUniqueViolation(error)) return null; // another request created the same user first
      throw error;
    }
    return this.users.findOneByOrFail({ discordId: data.discordId });
  }

  async update(data: LocalUserData): Promise<LocalUser> {
    const { discordId, ...fields } = data;
    await this.users.update({ discordId }, fields);
    return this.users.findOneByOrFail({ discordId });
  }
}

function isUniqueViolation(error: unknown): boolean {
  const driver = (error as { driverError?: { code?: string } })?.driverError;
  const code = driver?.code ?? (error as { code?: string })?.code ?? '';
  return code === '23505' || code.startsWith('SQLITE_CONSTRAINT') || code === 'ER_DUP_ENTRY';
}
