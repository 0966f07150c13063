import { isSafeRelativePath } from '../common/urls';
import { SESSION_RETURN_TO } from '../discourse-connect.constants';
import type { DiscourseConnectRequest } from './http-adapter-glue';

type ReturnToRequest = Pick<DiscourseConnectRequest, 'session'>;

/** Targets taken off a session whose id is about to be regenerated, until the route takes them. */
const carried = new WeakMap<object, string>();

/**
 * Where to send a person once Discord sign-in is done: the only owner of that state. The SSO
 * endpoint (an anonymous forum request to resume) and the sign-in start (`?returnTo=`) remember
 * it in the session; the callback takes it. Only paths on this site are kept or handed out.
 */
export const ReturnTo = {
  /** Remembers `target` in the session (a path on this site; anything else forgets instead). */
  remember(req: ReturnToRequest, target: unknown): void {
    if (!req.session) return;
    if (isSafeRelativePath(target)) req.session[SESSION_RETURN_TO] = target;
    else delete req.session[SESSION_RETURN_TO];
  },

  /** Forgets any target remembered in the session. */
  forget(req: ReturnToRequest): void {
    if (req.session && SESSION_RETURN_TO in req.session) delete req.session[SESSION_RETURN_TO];
  },

  /**
   * Moves the target off the session onto this request only: call it before log-in, which gives
   * the session a new id and drops its fields. {@link ReturnTo.take} then finds it.
   */
  keepAcrossLogIn(req: ReturnToRequest): void {
    const target = req.session?.[SESSION_RETURN_TO];
    ReturnTo.forget(req);
    if (isSafeRelativePath(target)) carried.set(req, target);
  },

  /** The remembered target (a path on this site) or undefined; forgotten once taken. */
  take(req: ReturnToRequest): string | undefined {
    const kept = carried.get(req);
    carried.delete(req);
    const stored = req.session?.[SESSION_RETURN_TO];
    ReturnTo.forget(req);
    const target = kept ?? stored;
    return isSafeRelativePath(target) ? target : undefined;
  },
};
