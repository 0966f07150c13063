import { CanActivate, ExecutionContext, HttpStatus, Injectable } from '@nestjs/common';
import type { DiscourseConnectRequest } from './http-adapter-glue';
import { DiscourseConnectSettings } from '../config/discourse-connect.settings';
import { DiscourseConnectHttpException } from '../common/discourse-connect.exceptions';

/**
 * Refuses state-changing requests that a third-party page could send: a cross-site `Sec-Fetch-Site`
 * or an `Origin` other than this app's. (The session cookie is SameSite=Lax as well.)
 */
@Injectable()
export class SameOriginGuard implements CanActivate {
  constructor(protected readonly settings: DiscourseConnectSettings) {}

  canActivate(context: ExecutionContext): boolean {
    const req = context.switchToHttp().getRequest<DiscourseConnectRequest>();
    if (!isSameOriginRequest(req, this.settings.publicUrl)) {
      throw new DiscourseConnectHttpException(
        HttpStatus.FORBIDDEN,
        'Request refused',
        'This request came from another website, so it was refused. Use the button on this site instead.',
        'cross_site_request',
      );
    }
    return true;
  }
}

export function isSameOriginRequest(
  req: Pick<DiscourseConnectRequest, 'headers'>,
  publicUrl: string,
): boolean {
  const site = req.headers['sec-fetch-site'];
  if (typeof site === 'string' && site !== 'same-origin' && site !== 'none') return false;
  const origin = req.headers.origin;
  if (typeof origin === 'string' && origin !== new URL(publicUrl).origin) return false;
  return true;
}
