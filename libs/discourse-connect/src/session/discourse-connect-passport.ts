import { Passport, type PassportStatic } from 'passport';
import type { LocalUser } from '../users/local-user.interface';
import type { UsersService } from '../users/users.service';

/**
 * The module's own passport instance: it keeps only the Discord id in the session and loads the
 * user on each request (`UsersService.findSignedIn`). Not the process-wide instance, so several
 * apps in one process (tests, restarts) never share serializers.
 */
export const DISCOURSE_CONNECT_PASSPORT = Symbol('DiscourseConnectPassport');

export function createDiscourseConnectPassport(users: UsersService): PassportStatic {
  const passport = new Passport() as unknown as PassportStatic;
  passport.serializeUser((user, done) => done(null, (user as LocalUser).discordId));
  passport.deserializeUser((discordId: unknown, done) => {
    if (typeof discordId !== 'string') return done(null, false);
    users.findSignedIn(discordId).then(
      (user) => done(null, user ?? false),
      (error) => done(error),
    );
  });
  return passport;
}
