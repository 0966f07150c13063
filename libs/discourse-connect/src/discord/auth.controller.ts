import {
  Controller,
  Get,
  Header,
  Post,
  Redirect,
  Req,
  Res,
  UseFilters,
  UseGuards,
} from '@nestjs/common';
import type { DiscourseConnectRequest, DiscourseConnectResponse } from '../http/http-adapter-glue';
import { DiscourseConnectExceptionFilter } from '../http/discourse-connect-exception.filter';
import { DiscourseConnectRateLimitGuard } from '../http/rate-limit.guard';
import { SameOriginGuard } from '../http/same-origin.guard';
import { DiscourseConnectSettings } from '../config/discourse-connect.settings';
import { ReturnTo } from '../http/return-to';
import { DiscourseConnectSignOut } from '../http/sign-out';
import { DiscordAuthGuard, DiscordCallbackGuard } from './discord-auth.guard';
import { LogOutOfDiscourse } from '../sync/discourse-lifecycle.interceptor';
import { encodeLocation } from '../common/urls';
import { DISCOURSE_CONNECT_ROUTES as ROUTES } from '../http/discourse-connect-routes';

/** Discord sign-in and local sign-out. */
@Controller(ROUTES.signIn.controller)
@UseFilters(DiscourseConnectExceptionFilter)
export class AuthController {
  constructor(
    private readonly settings: DiscourseConnectSettings,
    private readonly signOut: DiscourseConnectSignOut,
  ) {}

  /**
   * Redirects to Discord (the guard does it, with a fresh state); `?returnTo=/path` says where to go
   * afterwards. Only starts sign-in: Discord's answer (code, state) goes to the callback below.
   */
  @Get(ROUTES.signIn.path)
  @UseGuards(DiscourseConnectRateLimitGuard, DiscordAuthGuard)
  @Header('Cache-Control', 'no-store')
  start(): void {
    /* the guard has redirected to Discord */
  }

  /** Discord's redirect URI. */
  @Get(ROUTES.callback.path)
  @UseGuards(DiscourseConnectRateLimitGuard, DiscordCallbackGuard)
  @Redirect()
  @Header('Cache-Control', 'no-store')
  @Header('Referrer-Policy', 'no-referrer')
  callback(@Req() req: DiscourseConnectRequest) {
    return {
      url: encodeLocation(ReturnTo.take(req) ?? this.settings.afterSignInPath),
      statusCode: 302,
    };
  }

  /** Signs out locally, then out of the forum (through the sync queue). Refuses other sites. */
  @Post(ROUTES.signOut.path)
  @UseGuards(DiscourseConnectRateLimitGuard, SameOriginGuard)
  @LogOutOfDiscourse()
  @Redirect()
  @Header('Cache-Control', 'no-store')
  async logout(
    @Req() req: DiscourseConnectRequest,
    @Res({ passthrough: true }) res: DiscourseConnectResponse,
  ) {
    await this.signOut.signOut(req, res, 'local');
    return { url: this.settings.afterLocalSignOutUrl, statusCode: 303 };
  }
}
