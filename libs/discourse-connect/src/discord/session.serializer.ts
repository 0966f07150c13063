import { Injectable } from '@nestjs/common';
import { PassportSerializer } from '@nestjs/passport';
import type { LocalUser } from '../users/local-user.interface';
import { UsersService } from '../users/users.service';

/** Keeps only the Discord id in the session and loads the user from the store on each request. */
@Injectable()
export class DiscourseConnectSessionSerializer extends PassportSerializer {
  constructor(private readonly users: UsersService) {
    super();
  }

  serializeUser(user: LocalUser, done: (err: unknown, id?: string) => void): void {
    done(null, user.discordId);
  }

  deserializeUser(discordId: unknown, done: (err: unknown, user?: LocalUser | false) => void): void {
    if (typeof discordId !== 'string') return done(null, false);
    this.users.findByDiscordId(discordId).then(
      (user) => done(null, user ?? false),
      (error) => done(error),
    );
  }
}
