import type { DiscourseConnectRequest } from '../http/http-adapter-glue';

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
