import {
  CanActivate,
  ExecutionContext,
  HttpStatus,
  Inject,
  Injectable,
  Logger,
} from '@nestjs/common';
import type { DiscourseConnectRequest, DiscourseConnectResponse } from '../http/http-adapter-glue';
import type { AuthenticateOptions, PassportStatic } from 'passport';
import { DISCOURSE_CONNECT_PASSPORT } from '../session/discourse-connect-passport';
import { limitToPreSignInLifetime, startSignedInLifetime } from '../session/session-store.factory';
import { regenerateForLogIn } from '../session/typeorm-session.store';
import { DiscourseConnectSettings } from '../config/discourse-connect.settings';
import { DiscourseConnectHttp } from '../http/discourse-connect-http.service';
import { boundForLog } from '../common/log-text';
import {
  BadSsoRequestException,
  DiscordSignInException,
  DiscourseConnectHttpException,
} from '../common/discourse-connect.exceptions';
import { isSafeRelativePath } from '../common/urls';
import { ReturnTo } from '../http/return-to';
import { InvalidDiscordProfileError, SignInRefusedError } from './sign-in.errors';
import { AuthorizationError, InternalOAuthError, TokenError } from 'passport-oauth2';
import { DiscordApiError } from './discord-api.error';
import { DiscordStrategy } from './discord.strategy';
import { DiscourseConnectRoutes } from '../http/discourse-connect-routes';
import { filterFailedPage } from '../http/discourse-connect-exception.filter';
import { FilterFailedError } from '../hooks/filter-failed.error';

/** The "try again" link of a sign-in error page: the sign-in route where the app mounts it. */
function tryAgain(routes: DiscourseConnectRoutes): { href: string; label: string }[] {
  return [{ href: routes.path('signIn'), label: 'Sign in with Discord again' }];
}

/**
 * Runs this module's Discord strategy through this module's passport instance — not the
 * process-wide registry, where another app in the same process could have replaced a strategy
 * named "discord". Same hooks as `@nestjs/passport`'s AuthGuard: `getAuthenticateOptions` and
 * `handleRequest`.
 */
export abstract class DiscordPassportGuard implements CanActivate {
  constructor(
    @Inject(DISCOURSE_CONNECT_PASSPORT) protected readonly passport: PassportStatic,
    protected readonly strategy: DiscordStrategy,
    protected readonly routes: DiscourseConnectRoutes,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const http = context.switchToHttp();
    const req = http.getRequest<DiscourseConnectRequest>();
    // On Fastify, the glue gave the reply the two Node methods passport's redirect calls.
    const res = http.getResponse<DiscourseConnectResponse>();
    const options: AuthenticateOptions & Record<string, unknown> = {
      ...this.getAuthenticateOptions(),
      // passport-oauth2 sends this redirect URI both to Discord's authorize page and with the code
      // exchange: the callback route where the app mounts it (or discord.callbackUrl).
      callbackURL: this.routes.discordCallbackUrl,
      session: false,
    };
    const user = await new Promise<unknown>((resolve, reject) => {
      const authenticate = this.passport.authenticate(
        this.strategy as never,
        options,
        (err: unknown, u: unknown, info: unknown) => {
          try {
            resolve(this.handleRequest(err, u, info, req));
          } catch (error) {
            reject(error);
          }
        },
      );
      authenticate(req, res, (err?: unknown) => (err ? reject(err) : resolve(undefined)));
    });
    req.user = user as DiscourseConnectRequest['user'];
    return true;
  }

  /** Options for passport's `authenticate()`. */
  protected getAuthenticateOptions(): AuthenticateOptions & Record<string, unknown> {
    return {};
  }

  /** Turns passport's outcome into the user, or throws a readable error. */
  protected handleRequest<TUser>(
    err: unknown,
    user: TUser,
    _info: unknown,
    req?: DiscourseConnectRequest,
  ): TUser {
    return handleDiscordResult(err, user, req, tryAgain(this.routes));
  }

  /** Starts the session for `req.user` (passport's log-in; it regenerates the session id). */
  protected logIn(req: DiscourseConnectRequest): Promise<void> {
    return new Promise((resolve, reject) => {
      if (!req.logIn) return reject(new Error('DiscourseConnect needs passport before its routes'));
      regenerateForLogIn(req);
      req.logIn(req.user, (err) => (err ? reject(err) : resolve()));
    });
  }
}

/** Parameters only Discord's redirect to the callback carries: never accepted where sign-in starts. */
const CALLBACK_PARAMETERS = ['code', 'state', 'error', 'error_description', 'error_uri'];

/**
 * Starts Discord sign-in. `?returnTo=/path` (a path on this app only) says where to go afterwards;
 * the SSO endpoint sets it through the session and adds `?continue=1`. Only starts: a request that
 * carries the callback's parameters (code, state, error…) is refused with a 400 page, so the start
 * never exchanges a code. The answer is never cached (it sets the session cookie), and the session
 * holding the OAuth state gets the short pre-sign-in lifetime.
 */
@Injectable()
export class DiscordAuthGuard extends DiscordPassportGuard {
  constructor(
    @Inject(DISCOURSE_CONNECT_PASSPORT) passport: PassportStatic,
    strategy: DiscordStrategy,
    private readonly settings: DiscourseConnectSettings,
    private readonly http: DiscourseConnectHttp,
    routes: DiscourseConnectRoutes,
  ) {
    super(passport, strategy, routes);
  }

  override async canActivate(context: ExecutionContext): Promise<boolean> {
    const req = context.switchToHttp().getRequest<DiscourseConnectRequest>();
    // Set before passport redirects (the route's own headers apply only after the guards).
    this.http.setHeader(context.switchToHttp().getResponse(), 'Cache-Control', 'no-store');
    if (!req.session)
      throw new Error('DiscourseConnect needs session middleware before its routes');
    const query = (req.query ?? {}) as Record<string, unknown>;
    if (CALLBACK_PARAMETERS.some((name) => Object.prototype.hasOwnProperty.call(query, name))) {
      throw new DiscordSignInException(
        HttpStatus.BAD_REQUEST,
        'This sign-in link is not valid',
        'This address starts signing in with Discord; it does not accept a code from Discord. Start from the sign-in button instead.',
        'start_with_callback_parameters',
        tryAgain(this.routes),
      );
    }
    const { returnTo, continue: resume } = query;
    if (returnTo !== undefined && !isSafeRelativePath(returnTo)) {
      throw new BadSsoRequestException(
        'returnTo must be a path on this site, such as /account.',
        'bad_return_to',
      );
    }
    // `continue=1`: resuming what the SSO endpoint remembered.
    if (resume !== '1') ReturnTo.remember(req, returnTo);
    limitToPreSignInLifetime(req, this.settings);
    return (await super.canActivate(context)) as boolean;
  }

  protected override getAuthenticateOptions(): AuthenticateOptions & Record<string, unknown> {
    // Returning users who already granted access skip Discord's consent screen.
    return { prompt: 'none' };
  }
}

/**
 * Discord's redirect URI: exchanges the code, signs the user in with a fresh session id (no
 * fixation). Where to go next stays with {@link ReturnTo}: the callback route takes it.
 */
@Injectable()
export class DiscordCallbackGuard extends DiscordPassportGuard {
  constructor(
    @Inject(DISCOURSE_CONNECT_PASSPORT) passport: PassportStatic,
    strategy: DiscordStrategy,
    private readonly settings: DiscourseConnectSettings,
    routes: DiscourseConnectRoutes,
  ) {
    super(passport, strategy, routes);
  }

  override async canActivate(context: ExecutionContext): Promise<boolean> {
    const req = context.switchToHttp().getRequest<DiscourseConnectRequest>();
    if (!req.session)
      throw new Error('DiscourseConnect needs session middleware before its routes');
    const { code, error } = req.query as Record<string, unknown>;
    // An empty code must not fall through to passport, which would start a new authorization.
    const given = (v: unknown) => typeof v === 'string' && v !== '';
    if (!given(code) && !given(error)) {
      throw new BadSsoRequestException(
        'This address is only for Discord to send you back after signing in. Start from the sign-in button instead.',
        'callback_without_code',
      );
    }
    await super.canActivate(context);
    // passport regenerates the session id at log-in, so the destination is taken off it before.
    ReturnTo.keepAcrossLogIn(req);
    await this.logIn(req);
    await startSignedInLifetime(req, this.settings);
    return true;
  }
}

const logger = new Logger('DiscourseConnect');

/** Turns every way Discord sign-in can fail into a readable page; never a stack trace. */
function handleDiscordResult<TUser>(
  err: unknown,
  user: TUser,
  req: DiscourseConnectRequest | undefined,
  tryAgainLinks: { href: string; label: string }[],
): TUser {
  if (err) throw toSignInException(err, tryAgainLinks);
  if (!user) {
    // passport-oauth2 fails without an error in two cases only: Discord's `error=access_denied`
    // (the person cancelled), checked before anything else, and a state that does not verify.
    const query = (req?.query ?? {}) as Record<string, unknown>;
    if (query.error === 'access_denied') {
      throw new DiscordSignInException(
        HttpStatus.FORBIDDEN,
        'Sign-in cancelled',
        'You cancelled signing in with Discord, so you are not signed in. Nothing was changed.',
        'discord_access_denied',
        tryAgainLinks,
      );
    }
    throw new DiscordSignInException(
      HttpStatus.FORBIDDEN,
      'Sign-in expired',
      'This sign-in attempt expired or was started in another browser. Please start again.',
      'oauth_state_mismatch',
      tryAgainLinks,
    );
  }
  return user;
}

function toSignInException(
  err: unknown,
  tryAgainLinks: { href: string; label: string }[],
): DiscourseConnectHttpException {
  if (err instanceof DiscourseConnectHttpException) return err;
  if (err instanceof FilterFailedError) return filterFailedPage(err);
  if (err instanceof SignInRefusedError) {
    return new DiscordSignInException(
      HttpStatus.FORBIDDEN,
      err.code === 'not_a_guild_member' ? 'Server membership needed' : 'Sign-in not allowed',
      err.message,
      err.code,
    );
  }
  if (err instanceof TokenError) {
    return new DiscordSignInException(
      HttpStatus.BAD_REQUEST,
      'Sign-in link expired',
      'Discord did not accept this sign-in code: it expired or was already used. Please sign in again.',
      `discord_token_error:${boundForLog(err.code ?? 'unknown')}`,
      tryAgainLinks,
    );
  }
  if (err instanceof AuthorizationError) {
    return new DiscordSignInException(
      HttpStatus.BAD_REQUEST,
      'Discord refused the sign-in',
      'Discord could not authorise this sign-in. Please try again.',
      `discord_authorization_error:${boundForLog(err.code ?? 'unknown')}`,
      tryAgainLinks,
    );
  }
  if (err instanceof InvalidDiscordProfileError) {
    logger.warn(boundForLog(err.message, 300));
    return new DiscordSignInException(
      HttpStatus.BAD_GATEWAY,
      'Discord sent an unusable answer',
      'Discord answered with an account this site cannot read. Nothing was changed; please try again later.',
      err.code,
      tryAgainLinks,
    );
  }
  const oauthError =
    err instanceof InternalOAuthError
      ? (err.oauthError as { statusCode?: number; data?: unknown } | undefined)
      : undefined;
  const status = err instanceof DiscordApiError ? err.status : (oauthError?.statusCode ?? 0);
  if (status === 429) {
    const retry =
      err instanceof DiscordApiError ? err.retryAfterSeconds : retryAfterFromOauth(oauthError);
    return new DiscordSignInException(
      HttpStatus.SERVICE_UNAVAILABLE,
      'Discord is busy',
      'Discord asked us to slow down. Please wait a moment and sign in again.',
      'discord_rate_limited',
      tryAgainLinks,
      retry ?? 5,
    );
  }
  if (status >= 400 && status < 500) {
    return new DiscordSignInException(
      HttpStatus.BAD_REQUEST,
      'Discord refused the sign-in',
      'Discord did not accept this sign-in. Please sign in again.',
      `discord_answered_${status}`,
      tryAgainLinks,
    );
  }
  return new DiscordSignInException(
    HttpStatus.BAD_GATEWAY,
    'Discord is unavailable',
    'Discord could not be reached or had a problem. Nothing was changed; please try again in a moment.',
    status ? `discord_answered_${status}` : 'discord_unreachable',
    tryAgainLinks,
  );
}

function retryAfterFromOauth(oauthError: { data?: unknown } | undefined): number | undefined {
  try {
    const parsed = JSON.parse(String(oauthError?.data ?? '')) as { retry_after?: number };
    return typeof parsed.retry_after === 'number' ? Math.ceil(parsed.retry_after) : undefined;
  } catch {
    return undefined;
  }
}
