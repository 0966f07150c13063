import { Controller, Get, Req } from '@nestjs/common';
import type { DiscourseConnectUser } from 'nestjs-discourse-connect';
import { InMemoryUserStore } from './in-memory-user.store';

/** What the test reads back: who is signed in, and what the in-memory store holds. */
@Controller('me')
export class MeController {
  constructor(private readonly memory: InMemoryUserStore) {}

  @Get()
  me(@Req() req: { user?: DiscourseConnectUser }): {
    discordId: string | null;
    inMemoryStore: string[];
  } {
    return { discordId: req.user?.discordId ?? null, inMemoryStore: [...this.memory.users.keys()] };
  }
}
