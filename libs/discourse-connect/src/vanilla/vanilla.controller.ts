import {
  Controller,
  Get,
  Header,
  Post,
  Query,
  Redirect,
  Req,
  Res,
  UseFilters,
  UseGuards,
} from '@nestjs/common';
import { BadSsoRequestException } from '../common/discourse-connect.exceptions';
import { encodeLocation, isSafeRelativePath } from '../common/urls';
import { DiscourseConnectSettings } from '../config/discourse-connect.settings';
import { DiscourseConnectExceptionFilter } from '../http/discourse-connect-exception.filter';
import { DiscourseConnectHttp } from '../http/discourse-connect-http.service';
import { DISCOURSE_CONNECT_ROUTES, DiscourseConnectRoutes } from '../http/discourse-connect-routes';
import {
  requestPath,
  type DiscourseConnectRequest,
  type DiscourseConnectResponse,
} from '../http/http-adapter-glue';
import { renderPage } from '../http/html-page';
import { DiscourseConnectRateLimitGuard } from '../http/rate-limit.guard';
import { ReturnTo } from '../http/return-to';
import {
  cameFromSiteOrOneOf,
  isTopLevelNavigation,
  SameOriginGuard,
} from '../http/same-origin.guard';
import { DiscourseConnectSignOut } from '../http/sign-out';
import { limitToPreSignInLifetime } from '../session/session-store.factory';
import { VanillaConnectService } from './vanilla.service';

const ROUTES = DISCOURSE_CONNECT_ROUTES;

/** Vanilla sends one parameter (`jwt`); a few more are tolerated, never hundreds. */
const MAX_QUERY_PARAMETERS = 20;

/**
 * Marks the request remembered through Discord sign-in. Not signed: set by hand, it can only send
 * its holder to the configured forum's sign-in start when the request has expired.
 */
const RESUMED_PARAMETER = 'resumed';

/**
 * The Vanilla forums' routes: the jsConnect authenticate URL, the forum link and the target of the
 * forum's sign-out.
 */
@Controller(ROUTES.vanillaConnect.controller)
@UseFilters(DiscourseConnectExceptionFilter)
export class VanillaController {
  constructor(
    private readonly vanilla: VanillaConnectService,
    private readonly settings: DiscourseConnectSettings,
    private readonly http: DiscourseConnectHttp,
    private readonly signOuts: DiscourseConnectSignOut,
    private readonly routes: DiscourseConnectRoutes,
  ) {}

  /**
   * The jsConnect connection's authenticate URL. A signed-in member goes straight back to the
   * forum with a signed answer in the fragment of its `rurl`; an anonymous person signs in with
   * Discord first and then comes back to this same request (or, with `vanilla.guests`, is answered
   * as a guest at once).
   */
  @Get(ROUTES.vanillaConnect.path)
  @UseGuards(DiscourseConnectRateLimitGuard)
  @Redirect()
  @Header('Cache-Control', 'no-store')
  @Header('Referrer-Policy', 'no-referrer')
  async connect(@Req() req: DiscourseConnectRequest, @Query() query: Record<string, unknown>) {
    if (Object.keys(query).length > MAX_QUERY_PARAMETERS) {
      throw new BadSsoRequestException(
        'This sign-in link has too many parameters.',
        'too_many_parameters',
      );
    }
    if (query.jwt !== undefined && typeof query.jwt !== 'string') {
      throw new BadSsoRequestException(
        'The jwt parameter must be given exactly once.',
        'repeated_jwt',
      );
    }
    const request = await this.vanilla.verifyRequest(query, query[RESUMED_PARAMETER] === '1');
    if ('restartUrl' in request)
      return { url: encodeLocation(request.restartUrl), statusCode: 302 };
    if (!req.user) {
      if (this.vanilla.vanilla.guests) {
        return {
          url: encodeLocation(await this.vanilla.guestResponseUrl(request)),
          statusCode: 302,
        };
      }
      const resume = `${requestPath(req)}?${new URLSearchParams({
        jwt: query.jwt as string,
        [RESUMED_PARAMETER]: '1',
      })}`;
      if (!isSafeRelativePath(resume)) {
        throw new BadSsoRequestException('This sign-in link is too long.', 'jwt_too_long');
      }
      ReturnTo.remember(req, resume);
      limitToPreSignInLifetime(req, this.settings);
      return { url: `${this.routes.path('signIn')}?continue=1`, statusCode: 302 };
    }
    return {
      url: encodeLocation(await this.vanilla.memberResponseUrl(request, req.user)),
      statusCode: 302,
    };
  }

  /**
   * A link to a Vanilla forum that arrives signed in: through the forum's `/sso` (or
   * `/entry/jsconnect?client_id=`) when the person is signed in here, straight to the page otherwise.
   */
  @Get(ROUTES.vanillaForumLink.path)
  @Redirect()
  @Header('Cache-Control', 'no-store')
  forum(
    @Req() req: DiscourseConnectRequest,
    @Query('target') target: unknown,
    @Query('forum') name: unknown,
  ) {
    const vanilla = this.vanilla.vanilla;
    const path = target === undefined || target === '' ? '/' : target;
    if (!isSafeRelativePath(path)) {
      throw new BadSsoRequestException(
        'target must be a path on the forum, such as /discussion/1.',
        'bad_target',
      );
    }
    if (name !== undefined && typeof name !== 'string') {
      throw new BadSsoRequestException('forum must be given at most once.', 'repeated_forum');
    }
    const forum = this.settings.vanillaForumByName(name);
    if (!forum || !vanilla) {
      throw new BadSsoRequestException('There is no Vanilla forum by that name.', 'unknown_forum');
    }
    if (!req.user) return { url: encodeLocation(`${forum.url}${path}`), statusCode: 302 };
    return { url: encodeLocation(this.vanilla.signInUrl(forum, path)), statusCode: 302 };
  }

  /**
   * The connection's sign-out URL: Vanilla sends the browser here after signing out there. As
   * `/discourse/logout`: only a top-level navigation from a configured Vanilla forum (or this site)
   * signs out at once; anything else gets a button to confirm.
   */
  @Get(ROUTES.vanillaLogout.path)
  @Header('Cache-Control', 'no-store')
  async logout(
    @Req() req: DiscourseConnectRequest,
    @Res() res: DiscourseConnectResponse,
  ): Promise<void> {
    this.http.setHeader(res, 'Cache-Control', 'no-store');
    if (!req.user) {
      this.http.redirect(res, 303, this.settings.afterSignOutPath);
      return;
    }
    const origins = (this.settings.vanilla?.forums ?? []).map((f) => f.origin);
    if (
      req.method === 'GET' &&
      isTopLevelNavigation(req) &&
      cameFromSiteOrOneOf(req, this.settings.publicUrl, origins)
    ) {
      await this.signOut(req, res);
      return;
    }
    const page = renderPage({
      title: 'Sign out?',
      message: 'You signed out of the forum. Do you want to sign out of this site too?',
      form: { action: requestPath(req), label: 'Sign out' },
      links: [{ href: '/', label: 'Stay signed in' }],
    });
    this.http.send(res, 200, page, {
      'Content-Type': 'text/html; charset=utf-8',
      'Cache-Control': 'no-store',
    });
  }

  /** The confirmation button of the page above. */
  @Post(ROUTES.vanillaLogout.path)
  @UseGuards(SameOriginGuard)
  @Header('Cache-Control', 'no-store')
  async confirmLogout(
    @Req() req: DiscourseConnectRequest,
    @Res() res: DiscourseConnectResponse,
  ): Promise<void> {
    await this.signOut(req, res);
  }

  private async signOut(
    req: DiscourseConnectRequest,
    res: DiscourseConnectResponse,
  ): Promise<void> {
    await this.signOuts.signOut(req, res, 'forum');
    this.http.redirect(res, 303, this.settings.afterSignOutPath);
  }
}
