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

/**
 * A top-level navigation, as the Fetch Metadata headers say: `Sec-Fetch-Mode: navigate` and
 * `Sec-Fetch-Dest: document`. False without them (a browser too old to send them), so such a
 * request is never taken for one.
 */
export function isTopLevelNavigation(req: Pick<DiscourseConnectRequest, 'headers'>): boolean {
  return (
    req.headers['sec-fetch-mode'] === 'navigate' && req.headers['sec-fetch-dest'] === 'document'
  );
}

/**
 * Whether the request came from this site (`Sec-Fetch-Site: same-origin`) or, by its `Referer`,
 * from one of `origins` (the configured forums).
 */
export function cameFromSiteOrOneOf(
  req: Pick<DiscourseConnectRequest, 'headers'>,
  publicUrl: string,
  origins: readonly string[],
): boolean {
  const site = req.headers['sec-fetch-site'];
  if (site === 'same-origin' && isSameOriginRequest(req, publicUrl)) return true;
  const referer = req.headers.referer;
  if (typeof referer !== 'string') return false;
  try {
    return origins.includes(new URL(referer).origin);
  } catch {
    return false;
  }
}
