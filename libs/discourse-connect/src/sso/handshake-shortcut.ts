import { Injectable } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import type { ApplicationConfig } from '@nestjs/core';
import { encodeLocation } from '../common/urls';
import { DiscourseConnectSettings } from '../config/discourse-connect.settings';
import { DiscourseConnectRoutes } from '../http/discourse-connect-routes';
import type { HandshakeShortcut, HandshakeShortcutRequest } from '../http/http-adapter-glue';
import { DiscourseConnectRateLimitGuard } from '../http/rate-limit.guard';
import { formDecodePairs } from '../protocol/form-encoding';
import { DiscourseConnectSessions } from '../session/sessions';
import { UsersService } from '../users/users.service';
import { SsoService } from './sso.service';

/** The SSO route as the rate limit names it (its controller class and handler). */
const HANDSHAKE_ROUTE = { controller: 'SsoController', handler: 'handshake' };

/** Failures of a handshake started by the shortcut, for the route to answer without doing it again. */
const failures = new WeakMap<object, unknown>();

/**
 * The error the shortcut met building this request's answer (a filter refused, the member has no
 * email…), taken off the request: the route rethrows it rather than asking the filters twice.
 */
export function takeShortcutFailure(req: object): { error: unknown } | undefined {
  const key = (req as { raw?: object }).raw ?? req;
  if (!failures.has(key)) return undefined;
  const error = failures.get(key);
  failures.delete(key);
  return { error };
}

/**
 * The signed-in handshake (`GET /discourse/sso?sso=…&sig=…` from a member with a session) answered
 * from what this process knows exactly: the session cookie verified once (an LRU of verified
 * cookies), the session from the table store's cache (kept exact by this process's own writes), the
 * member from the users cache. The answer is the route's: the same verification, payload, filters,
 * forum link and signed redirect, with the route's headers, and the route's rate limit counted the
 * same way (the same counters, in memory or Redis; a request over a limit goes to the route, which
 * answers 429). Used only where the route would add nothing else: no global guard, interceptor or
 * pipe of the host, no versioning. Anything it cannot answer goes the normal way.
 */
@Injectable()
export class SsoHandshakeShortcut implements HandshakeShortcut {
  readonly route = HANDSHAKE_ROUTE;
  private usable?: boolean;
  private path?: string;

  constructor(
    private readonly settings: DiscourseConnectSettings,
    private readonly sso: SsoService,
    private readonly users: UsersService,
    private readonly sessions: DiscourseConnectSessions,
    private readonly routes: DiscourseConnectRoutes,
    private readonly moduleRef: ModuleRef,
    private readonly rateLimit: DiscourseConnectRateLimitGuard,
  ) {}

  answer(req: HandshakeShortcutRequest, sessionCookie: string | undefined, ip?: string) {
    if (req.method !== 'GET' || sessionCookie === undefined) return undefined;
    const url = req.url ?? '';
    const query = url.indexOf('?');
    if (query === -1) return undefined;
    if (this.usable === undefined) this.decide();
    if (!this.usable || url.slice(0, query) !== this.path) return undefined;
    if (!sessionCookie.startsWith('s:')) return undefined;
    return this.resolve(req, url.slice(query + 1), sessionCookie.slice(2), ip);
  }

  /**
   * Whether {@link answer} may take this request, without waiting: a GET of the SSO route with a
   * query, the cookie of a session this process holds signed in (verified, in the signer's memory
   * once seen). `target`: the request target as sent (path and query).
   */
  mayAnswer(method: string, target: string, sessionCookie: string): boolean {
    if (method !== 'GET' || !sessionCookie.startsWith('s:')) return false;
    const query = target.indexOf('?');
    if (query === -1) return false;
    if (this.usable === undefined) this.decide();
    if (!this.usable || target.slice(0, query) !== this.path) return false;
    const cookie = this.sessions.signer.unsign(sessionCookie.slice(2));
    return (
      cookie.valid &&
      !cookie.renew &&
      cookie.value !== null &&
      this.sessions.cachedMember(cookie.value) !== undefined
    );
  }

  private async resolve(
    req: {
      headers: Record<string, string | string[] | undefined>;
      socket?: { remoteAddress?: string };
    },
    search: string,
    signedSid: string,
    ip?: string,
  ): Promise<string | undefined> {
    let sso: string | undefined;
    let sig: string | undefined;
    for (const [name, value] of formDecodePairs(search)) {
      if (name === 'sso' && sso === undefined) sso = value;
      else if (name === 'sig' && sig === undefined) sig = value;
      else return undefined; // anything else (remembered_at, repeats): the route decides
    }
    if (sso === undefined || sig === undefined) return undefined;
    const cookie = this.sessions.signer.unsign(signedSid);
    if (!cookie.valid || cookie.renew || cookie.value === null) return undefined;
    const discordId = this.sessions.cachedMember(cookie.value);
    if (discordId === undefined) return undefined;
    const user = this.users.recentCopy(discordId) ?? (await this.users.findSignedIn(discordId));
    if (!user) return undefined;
    let request: ReturnType<SsoService['verifyRequest']>;
    try {
      request = this.sso.verifyRequest({ sso, sig });
    } catch {
      return undefined;
    }
    // Counted as the route counts a signed-in handshake; over a limit, the route answers 429.
    if (
      this.settings.rateLimit.enabled &&
      !(await this.rateLimit.admitSignedInHandshake(
        { ip, headers: req.headers, socket: req.socket },
        req,
        HANDSHAKE_ROUTE,
      ))
    )
      return undefined;
    try {
      return encodeLocation(await this.sso.buildResponseUrl(request, user));
    } catch (error) {
      failures.set(req, error);
      return undefined;
    }
  }

  /** Once, at the first request (the routes and the host's global enhancers are known by then). */
  private decide(): void {
    const config = (
      this.moduleRef as unknown as { container?: { applicationConfig?: ApplicationConfig } }
    ).container?.applicationConfig;
    const hostAddsSomething =
      !config ||
      config.getVersioning() !== undefined ||
      config.getGlobalGuards().length > 0 ||
      config.getGlobalInterceptors().length > 0 ||
      config.getGlobalPipes().length > 0 ||
      config.getGlobalRequestGuards().length > 0 ||
      config.getGlobalRequestInterceptors().length > 0 ||
      config.getGlobalRequestPipes().length > 0;
    this.usable = this.settings.session.readCacheMs > 0 && !hostAddsSomething;
    this.path = this.routes.path('sso');
  }
}
