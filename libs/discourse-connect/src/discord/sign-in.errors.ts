/** Why a sign-in was refused by this app (not by Discord). */
export type SignInRefusal = 'not_a_guild_member' | 'sign_in_refused_by_filter';

/**
 * Sign-in refused by this app's rules: the server membership requirement or the `user.canSignIn`
 * filter. Carries no HTTP status; the sign-in routes turn it into a readable page. `message` is
 * safe to show to the person.
 */
export class SignInRefusedError extends Error {
  override readonly name = 'SignInRefusedError';

  constructor(
    readonly code: SignInRefusal,
    message: string,
  ) {
    super(message);
  }
}

/** Thrown by `pickDiscordMetadata` (users/); kept here too so the sign-in flow's errors are in one place. */
export { InvalidDiscordProfileError } from '../users/discord-profile';
