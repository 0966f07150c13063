import type { Request, Response } from 'express';

/**
 * Ends the local session completely: passport's log-out, then the session row itself, then the
 * cookie. A signed-out session id cannot be reused.
 */
export async function endLocalSession(req: Request, res: Response, cookieName: string): Promise<void> {
  await new Promise<void>((resolve, reject) =>
    typeof req.logout === 'function' ? req.logout({ keepSessionInfo: false }, (err) => (err ? reject(err) : resolve())) : resolve(),
  );
  if (req.session) {
    await new Promise<void>((resolve, reject) => req.session.destroy((err) => (err ? reject(err) : resolve())));
  }
  res.clearCookie(cookieName, { path: '/' });
}
