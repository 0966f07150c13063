import { Injectable } from '@nestjs/common';
import type {
  DiscourseConnectUser,
  DiscourseConnectUserData,
  DiscourseConnectUserStore,
} from 'nestjs-discourse-connect';

/** A host's own user store: members kept in memory instead of the module's table. */
@Injectable()
export class InMemoryUserStore implements DiscourseConnectUserStore {
  readonly users = new Map<string, DiscourseConnectUser>();

  async findByDiscordId(discordId: string): Promise<DiscourseConnectUser | null> {
    return this.users.get(discordId) ?? null;
  }

  async create(data: DiscourseConnectUserData): Promise<DiscourseConnectUser | null> {
    if (this.users.has(data.discordId)) return null;
    const now = new Date();
    const user: DiscourseConnectUser = { ...data, createdAt: now, updatedAt: now };
    this.users.set(data.discordId, user);
    return user;
  }

  async update(data: DiscourseConnectUserData): Promise<DiscourseConnectUser> {
    const existing = this.users.get(data.discordId);
    if (!existing) throw new Error(`no member ${data.discordId}`);
    const user: DiscourseConnectUser = { ...existing, ...data, updatedAt: new Date() };
    this.users.set(data.discordId, user);
    return user;
  }
}
