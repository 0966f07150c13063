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
import { DiscourseConnectHttp } from '../http/discourse-connect-http.service';
import {
  requestPath,
  type DiscourseConnectRequest,
  type DiscourseConnectResponse,
} from '../http/http-adapter-glue';
import { DiscourseConnectExceptionFilter } from '../http/discourse-connect-exception.filter';
import { BadSsoRequestException } from '../common/discourse-connect.exceptions';
import { renderPage } from '../http/html-page';
import { DiscourseConnectRateLimitGuard } from '../http/rate-limit.guard';
import {
  cameFromSiteOrOneOf,
  isTopLevelNavigation,
  SameOriginGuard,
} from '../http/same-origin.guard';
import { encodeLocation, isSafeRelativePath } from '../common/urls';
import { DiscourseConnectSettings } from '../config/discourse-connect.settings';
import { ReturnTo } from '../http/return-to';
import { DiscourseConnectSignOut } from '../http/sign-out';
import { limitToPreSignInLifetime } from '../session/session-store.factory';
import { SsoService } from './sso.service';
import { takeShortcutFailure } from './handshake-shortcut';
import { DISCOURSE_CONNECT_ROUTES, DiscourseConnectRoutes } from '../http/discourse-connect-routes';

const ROUTES = DISCOURSE_CONNECT_ROUTES;

/**
 * Discourse sends two parameters. Counted on the raw query, because the adapters' parsers differ
 * beyond this: Express keeps the first 1,000 and drops the rest, Fastify keeps them all.
 */
const MAX_QUERY_PARAMETERS = 100;

function queryParameterCount(req: DiscourseConnectRequest): number {
  const target = req.originalUrl ?? req.url;
  const start = target.indexOf('?');
  return start === -1
    ? 0
    : target
        .slice(start + 1)
        .split('&')
        .filter(Boolean).length;
}

type UserRequest = DiscourseConnectRequest & {
  session: NonNullable<DiscourseConnectRequest['session']>;
};

/** The forum-facing routes: the DiscourseConnect endpoint, the forum link and the logout target. */
@Controller(ROUTES.sso.controller)
@UseFilters(DiscourseConnectExceptionFilter)
export class SsoController {
  constructor(
    private readonly sso: SsoService,
    private readonly settings: DiscourseConnectSettings,
    private readonly http: DiscourseConnectHttp,
    private readonly signOuts: DiscourseConnectSignOut,
    private readonly routes: DiscourseConnectRoutes,
  ) {}

  /**
   * Discourse's `discourse_connect_url`. A signed-in user goes straight back to the forum with a
   * signed payload; an anonymous one signs in with Discord first and then resumes this request,
   * unless that took longer than `sso.resumeWithinSeconds`: then the forum starts over with a fresh
   * nonce (see `SsoService.restartUrl`).
   */
  @Get(ROUTES.sso.path)
  @UseGuards(DiscourseConnectRateLimitGuard)
  @Redirect()
  @Header('Cache-Control', 'no-store')
  @Header('Referrer-Policy', 'no-referrer')
  async handshake(@Req() req: UserRequest, @Query() query: Record<string, unknown>) {
    if (queryParameterCount(req) > MAX_QUERY_PARAMETERS) {
      throw new BadSsoRequestException(
        'This sign-in link has too many parameters.',
        'too_many_parameters',
      );
    }
    const request = this.sso.verifyRequest(query);
    if (!req.user) {
      ReturnTo.remember(req, this.sso.resumeTarget(requestPath(req), query));
      limitToPreSignInLifetime(req, this.settings);
      return { url: `${this.routes.path('signIn')}?continue=1`, statusCode: 302 };
    }
    // A request remembered before Discord sign-in too long ago: its nonce may have died meanwhile.
    const restart = this.sso.restartUrl(request, query);
    if (restart) return { url: encodeLocation(restart), statusCode: 302 };
    // The early answer already built this and failed (e.g. a filter refused): the same answer,
    // without asking the filters twice.
    const failed = takeShortcutFailure(req);
    if (failed) throw failed.error;
    return {
      url: encodeLocation(await this.sso.buildResponseUrl(request, req.user)),
      statusCode: 302,
    };
  }

  /**
   * A link to the forum that arrives signed in: through the forum's `/session/sso` when the person
   * is signed in here, straight to the page otherwise.
   */
  @Get(ROUTES.forumLink.path)
  @Redirect()
  @Header('Cache-Control', 'no-store')
  forum(
    @Req() req: UserRequest,
    @Query('return_path') returnPath: unknown,
    @Query('forum') name: unknown,
  ) {
    const path = returnPath === undefined || returnPath === '' ? '/' : returnPath;
    if (!isSafeRelativePath(path)) {
      throw new BadSsoRequestException(
        'return_path must be a path on the forum, such as /t/welcome/1.',
        'bad_return_path',
      );
    }
    if (name !== undefined && typeof name !== 'string') {
      throw new BadSsoRequestException('forum must be given at most once.', 'repeated_forum');
    }
    const forum = this.settings.forumByName(name);
    if (!forum)
      throw new BadSsoRequestException('There is no forum by that name.', 'unknown_forum');
    if (!req.user) return { url: encodeLocation(`${forum.url}${path}`), statusCode: 302 };
    return {
      url: `${forum.url}/session/sso?${new URLSearchParams({ return_path: path })}`,
      statusCode: 302,
    };
  }

  /**
   * Discourse's `logout_redirect`: the forum sends the browser here after signing out there.
   * Only a top-level navigation (GET with `Sec-Fetch-Mode: navigate` and `Sec-Fetch-Dest: document`)
   * arriving from a configured forum (or this site) signs out at once. Anything else gets a button
   * to confirm: a third-party page, and also an image, script, frame or fetch on the forum itself
   * (a post can embed an image pointing here), a HEAD request, and a browser that sends no
   * `Sec-Fetch-*` headers (which cannot tell a navigation from an image; see SECURITY.md).
   */
  @Get(ROUTES.forumLogout.path)
  @Header('Cache-Control', 'no-store')
  async forumLogout(@Req() req: UserRequest, @Res() res: DiscourseConnectResponse): Promise<void> {
    this.http.setHeader(res, 'Cache-Control', 'no-store');
    if (!req.user) {
      this.http.redirect(res, 303, this.settings.afterSignOutPath);
      return;
    }
    if (req.method === 'GET' && isTopLevelNavigation(req) && this.cameFromForumOrHere(req)) {
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
  @Post(ROUTES.forumLogout.path)
  @UseGuards(SameOriginGuard)
  @Header('Cache-Control', 'no-store')
  async confirmForumLogout(
    @Req() req: UserRequest,
    @Res() res: DiscourseConnectResponse,
  ): Promise<void> {
    await this.signOut(req, res);
  }

  private async signOut(req: UserRequest, res: DiscourseConnectResponse): Promise<void> {
    await this.signOuts.signOut(req, res, 'forum');
    this.http.redirect(res, 303, this.settings.afterSignOutPath);
  }

  private cameFromForumOrHere(req: DiscourseConnectRequest): boolean {
    return cameFromSiteOrOneOf(
      req,
      this.settings.publicUrl,
      this.settings.forums.map((f) => f.origin),
    );
  }
}
