import { Injectable } from '@nestjs/common';
import { DiscourseConnectActionsService } from '../hooks/actions.service';
import { DiscourseConnectEvents } from '../hooks/discourse-connect.events';
import { DiscourseConnectHttp } from './discourse-connect-http.service';
import type { DiscourseConnectRequest, DiscourseConnectResponse } from './http-adapter-glue';

/**
 * Ends the local session completely: passport's log-out, then the session row itself. The caller
 * expires the cookie (`DiscourseConnectHttp.clearSessionCookie`). A signed-out session id cannot be
 * reused. express-session and @fastify/session both take these callbacks.
 */
export async function endLocalSession(req: DiscourseConnectRequest): Promise<void> {
  await new Promise<void>((resolve, reject) =>
    typeof req.logout === 'function'
      ? req.logout({ keepSessionInfo: false }, (err) => (err ? reject(err) : resolve()))
      : resolve(),
  );
  const session = req.session;
  if (session) {
    await new Promise<void>((resolve, reject) =>
      session.destroy((err) => (err ? reject(err) : resolve())),
    );
  }
}

/**
 * The one sign-out of this site, for both routes that sign out (the local button and the forum's
 * logout redirect): ends the session, expires its cookie, forbids caching the answer and emits
 * `SignedOut` when someone was signed in. The caller answers with its redirect.
 */
@Injectable()
export class DiscourseConnectSignOut {
  constructor(
    private readonly http: DiscourseConnectHttp,
    private readonly actions: DiscourseConnectActionsService,
  ) {}

  async signOut(
    req: DiscourseConnectRequest,
    res: DiscourseConnectResponse,
    via: 'local' | 'forum',
  ): Promise<void> {
    const discordId = req.user?.discordId;
    await endLocalSession(req);
    this.http.setHeader(res, 'Cache-Control', 'no-store');
    this.http.clearSessionCookie(res);
    if (discordId) this.actions.emit(DiscourseConnectEvents.SignedOut, { discordId, via });
  }
}
