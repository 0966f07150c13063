import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { cloneDiscordUser, DISCORD_FIXTURES, type SimDiscordUser } from './discord-fixtures';
import {
  appendQuery,
  escapeHtml,
  parseCookies,
  randomHex,
  randomToken,
  readBody,
  redirect,
  safeEqual,
  sendHtml,
  sendJson,
  sendText,
  SimulatedServer,
  type SimFailure,
} from './http-helpers';

export interface DiscordSimulatorOptions {
  /** Default `'sandbox-client-id'`. */
  clientId?: string;
  /** Default `'sandbox-client-secret'`. */
  clientSecret?: string;
  /** Registered redirect URIs, matched exactly. Default none; also settable via the property. */
  redirectUris?: string[];
  /** Accounts that exist. Default: every fixture. */
  users?: SimDiscordUser[];
  /** Application name on the consent page. Default `'Sandbox App'`. */
  appName?: string;
  /** Clock in ms, for expiry tests. Default `Date.now`. */
  now?: () => number;
}

export interface DiscordKnobs {
  /** A GET of the authorize page approves at once as this user id (HTTP-only tests). */
  autoApproveAs: string | null;
  /** Every authorization ends in `error=access_denied`. */
  deny: boolean;
  tokenFailure: SimFailure | null;
  userFailure: SimFailure | null;
  /** Failure for the guild-member route only. */
  guildMemberFailure?: SimFailure | null;
  /** Every request: the socket is destroyed (connection reset). */
  down: boolean;
}

export interface DiscordStats {
  authorizeRequests: number;
  /** Requests to the token endpoint (successful or not). */
  tokenExchanges: number;
  /** Requests to `users/@me`, versioned or not. */
  userFetches: number;
  /** Requests to the deprecated unversioned `/api/users/@me` (also counted in userFetches). */
  unversionedUserFetches: number;
  guildMemberFetches: number;
  /** The `User-Agent` of every request, in order ('' when missing); the last 10,000. */
  userAgents: string[];
}

interface AuthCode {
  clientId: string;
  redirectUri: string;
  userId: string;
  scopes: string[];
  codeChallenge: string;
  createdAt: number;
}

interface AccessGrant {
  userId: string;
  clientId: string;
  scopes: string[];
  expiresAt: number;
}

/** Scopes Discord knows; anything else is rejected on the authorize page. */
const KNOWN_SCOPES = new Set([
  'identify',
  'email',
  'connections',
  'guilds',
  'guilds.join',
  'guilds.members.read',
  'gdm.join',
  'openid',
  'role_connections.write',
  'messages.read',
  'rpc',
  'bot',
  'webhook.incoming',
  'applications.commands',
  'activities.read',
  'relationships.read',
  'voice',
  'dm_channels.read',
]);

/** `stats.userAgents` keeps the most recent this many entries. */
const MAX_USER_AGENTS = 10_000;
const BROWSER_COOKIE = '__sim_discord_session';
const CODE_TTL_MS = 10 * 60 * 1000;
const TOKEN_TTL_S = 604800;
const DENIED_DESCRIPTION = 'The resource owner or authorization server denied the request';

const defaultKnobs = (): DiscordKnobs => ({
  autoApproveAs: null,
  deny: false,
  tokenFailure: null,
  userFailure: null,
  guildMemberFailure: null,
  down: false,
});

/**
 * A simulated Discord: the OAuth2 authorize page (with a clickable consent screen), the token endpoint
 * (PKCE S256, single-use codes), `users/@me` and the guild-member route, answering the way Discord does.
 */
export class DiscordSimulator extends SimulatedServer {
  readonly clientId: string;
  readonly clientSecret: string;
  appName: string;
  redirectUris: string[];
  readonly users = new Map<string, SimDiscordUser>();
  knobs: DiscordKnobs = defaultKnobs();
  readonly stats: DiscordStats = {
    authorizeRequests: 0,
    tokenExchanges: 0,
    userFetches: 0,
    unversionedUserFetches: 0,
    guildMemberFetches: 0,
    userAgents: [],
  };
  now: () => number;

  private readonly initialUsers: SimDiscordUser[];
  private readonly codes = new Map<string, AuthCode>();
  private readonly accessTokens = new Map<string, AccessGrant>();
  private readonly refreshTokens = new Map<string, Omit<AccessGrant, 'expiresAt'>>();
  private changeCounter = 0;
  /** Browser cookie → the account that last approved in that browser. */
  private readonly browserSessions = new Map<string, string>();
  /** User id → scopes granted to this application. */
  private readonly grants = new Map<string, Set<string>>();

  constructor(options: DiscordSimulatorOptions = {}) {
    super();
    this.clientId = options.clientId ?? 'sandbox-client-id';
    this.clientSecret = options.clientSecret ?? 'sandbox-client-secret';
    this.appName = options.appName ?? 'Sandbox App';
    this.redirectUris = [...(options.redirectUris ?? [])];
    this.initialUsers = (options.users ?? Object.values(DISCORD_FIXTURES)).map(cloneDiscordUser);
    this.now = options.now ?? Date.now;
    this.restoreUsers();
  }

  /** Changes an account, as if its owner edited the profile on Discord. */
  updateUser(id: string, patch: Partial<SimDiscordUser>): void {
    const user = this.users.get(id);
    if (!user) throw new Error(`DiscordSimulator: no user with id ${id}`);
    Object.assign(user, patch, { id });
  }

  /** Knobs and stats back to defaults, fixtures restored, codes and tokens forgotten. */
  reset(): void {
    Object.assign(this.knobs, defaultKnobs());
    Object.assign(this.stats, {
      authorizeRequests: 0,
      tokenExchanges: 0,
      userFetches: 0,
      unversionedUserFetches: 0,
      guildMemberFetches: 0,
    });
    this.stats.userAgents.length = 0;
    this.codes.clear();
    this.accessTokens.clear();
    this.refreshTokens.clear();
    this.changeCounter = 0;
    this.browserSessions.clear();
    this.grants.clear();
    this.restoreUsers();
  }

  private restoreUsers(): void {
    this.users.clear();
    for (const u of this.initialUsers) this.users.set(u.id, cloneDiscordUser(u));
  }

  protected override intercept(req: IncomingMessage): boolean {
    if (!this.knobs.down) return false;
    req.socket.destroy();
    return true;
  }

  protected override async route(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
  ): Promise<void> {
    const agents = this.stats.userAgents;
    agents.push(String(req.headers['user-agent'] ?? ''));
    if (agents.length > MAX_USER_AGENTS) agents.splice(0, agents.length - MAX_USER_AGENTS);
    const path = url.pathname.replace(/%40/gi, '@').replace(/\/+$/, '') || '/';
    const method = req.method ?? 'GET';

    if (
      path === '/oauth2/authorize' ||
      path === '/api/oauth2/authorize' ||
      path === '/api/v10/oauth2/authorize'
    ) {
      if (method === 'GET') return this.authorizeGet(req, res, url.searchParams);
      if (method === 'POST') return this.authorizePost(req, res);
      return this.notFound(res, 405);
    }
    if (path === '/api/oauth2/token' || path === '/api/v10/oauth2/token') {
      if (method === 'POST') return this.token(req, res);
      return this.notFound(res, 405);
    }
    if (path === '/api/oauth2/token/revoke' || path === '/api/v10/oauth2/token/revoke') {
      if (method === 'POST') return this.revoke(req, res);
      return this.notFound(res, 405);
    }
    const me = /^\/api(\/v10)?\/users\/@me$/.exec(path);
    if (me && method === 'GET') return this.me(req, res, !me[1]);
    const member = /^\/api(?:\/v10)?\/users\/@me\/guilds\/([^/]+)\/member$/.exec(path);
    if (member && method === 'GET') return this.guildMember(req, res, member[1]);
    return this.notFound(res);
  }

  private notFound(res: ServerResponse, status = 404): void {
    if (status === 405) sendJson(res, 405, { message: '405: Method Not Allowed', code: 0 });
    else sendJson(res, 404, { message: '404: Not Found', code: 0 });
  }

  // ---------------------------------------------------------------- authorize

  /** Validates an authorize request; returns an error page's text, or the parsed request. */
  private validateAuthorize(
    params: URLSearchParams,
  ):
    | { error: string }
    | { redirectUri: string; scopes: string[]; state: string | null; codeChallenge: string } {
    if (params.get('client_id') !== this.clientId) return { error: 'Unknown application' };
    const redirectUri = params.get('redirect_uri');
    if (redirectUri === null || !this.redirectUris.includes(redirectUri)) {
      return { error: 'Invalid OAuth2 redirect_uri' };
    }
    if (params.get('response_type') !== 'code')
      return { error: 'Invalid response_type: only "code" is supported' };
    const scopes = (params.get('scope') ?? '').split(' ').filter(Boolean);
    const unknown = scopes.find((s) => !KNOWN_SCOPES.has(s));
    if (unknown !== undefined) return { error: `Invalid scope: ${unknown}` };
    if (!scopes.includes('identify'))
      return { error: 'Invalid scope: the "identify" scope is required' };
    const codeChallenge = params.get('code_challenge');
    if (!codeChallenge || !/^[A-Za-z0-9_-]{43,128}$/.test(codeChallenge)) {
      return { error: 'Invalid code_challenge: PKCE is required' };
    }
    if (params.get('code_challenge_method') !== 'S256') {
      return { error: 'Invalid code_challenge_method: only S256 is supported' };
    }
    const state = params.get('state');
    return {
      redirectUri,
      scopes,
      state: state === null || state === '' ? null : state,
      codeChallenge,
    };
  }

  private errorPage(res: ServerResponse, message: string): void {
    sendHtml(
      res,
      400,
      'Discord',
      `<h1>Simulated Discord</h1><div class="error" role="alert"><h2>${escapeHtml(message)}</h2></div>` +
        '<p class="sim">This is a simulated Discord authorization error.</p>',
    );
  }

  private authorizeGet(req: IncomingMessage, res: ServerResponse, params: URLSearchParams): void {
    this.stats.authorizeRequests++;
    const v = this.validateAuthorize(params);
    if ('error' in v) return this.errorPage(res, v.error);
    if (this.knobs.deny) return this.deny(res, v.redirectUri, v.state);
    if (this.knobs.autoApproveAs !== null) {
      return this.approve(res, { ...v, userId: this.knobs.autoApproveAs });
    }
    // Like Discord: prompt=none skips the screen when this browser's account already granted these scopes.
    const browserUser = this.browserSessions.get(
      parseCookies(req.headers.cookie).get(BROWSER_COOKIE) ?? '',
    );
    if (params.get('prompt') === 'none' && browserUser !== undefined) {
      const granted = this.grants.get(browserUser);
      if (granted && v.scopes.every((s) => granted.has(s)))
        return this.approve(res, { ...v, userId: browserUser });
    }
    return this.consentPage(res, params, v.scopes);
  }

  /** Remembers who approved in this browser and what they granted (for later prompt=none). */
  private rememberApproval(
    req: IncomingMessage,
    res: ServerResponse,
    userId: string,
    scopes: string[],
  ): void {
    let sid = parseCookies(req.headers.cookie).get(BROWSER_COOKIE);
    if (sid === undefined || !this.browserSessions.has(sid)) {
      sid = randomHex(16);
      res.setHeader('Set-Cookie', `${BROWSER_COOKIE}=${sid}; Path=/; HttpOnly; SameSite=Lax`);
    }
    this.browserSessions.set(sid, userId);
    const granted = this.grants.get(userId) ?? new Set<string>();
    for (const s of scopes) granted.add(s);
    this.grants.set(userId, granted);
  }

  private async authorizePost(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.stats.authorizeRequests++;
    const params = new URLSearchParams(await readBody(req));
    const v = this.validateAuthorize(params);
    if ('error' in v) return this.errorPage(res, v.error);
    const userId = params.get('approve_as');
    if (this.knobs.deny || params.has('cancel') || userId === null)
      return this.deny(res, v.redirectUri, v.state);
    if (this.users.has(userId)) this.rememberApproval(req, res, userId, v.scopes);
    return this.approve(res, { ...v, userId });
  }

  private consentPage(res: ServerResponse, params: URLSearchParams, scopes: string[]): void {
    const keep = [
      'client_id',
      'redirect_uri',
      'response_type',
      'scope',
      'state',
      'code_challenge',
      'code_challenge_method',
      'prompt',
    ];
    const hidden = keep
      .filter((k) => params.has(k))
      .map((k) => `<input type="hidden" name="${k}" value="${escapeHtml(params.get(k))}">`)
      .join('');
    const buttons = [...this.users.values()]
      .map((u) => {
        const label = u.global_name ?? u.username;
        const detail =
          `@${u.username}${u.discriminator !== '0' ? '#' + u.discriminator : ''}` +
          (u.email ? `, ${u.email}${u.verified ? '' : ' (unverified)'}` : ', no email');
        return (
          `<li><button type="submit" name="approve_as" value="${escapeHtml(u.id)}" data-user-id="${escapeHtml(u.id)}">` +
          `Sign in as ${escapeHtml(label)}</button> <span class="sim">${escapeHtml(detail)}</span></li>`
        );
      })
      .join('');
    const scopeList = scopes.map((s) => `<li><code>${escapeHtml(s)}</code></li>`).join('');
    sendHtml(
      res,
      200,
      `Simulated Discord — ${this.appName}`,
      `<h1>Simulated Discord — ${escapeHtml(this.appName)} wants to access your account</h1>` +
        `<p>It will be able to use: </p><ul>${scopeList}</ul>` +
        `<form method="post">${hidden}<ul style="list-style:none;padding:0">${buttons}</ul>` +
        '<button type="submit" name="cancel" value="1" id="cancel">Cancel</button></form>' +
        '<p class="sim">Choose an account to continue. This is a simulator, not discord.com.</p>',
    );
  }

  private deny(res: ServerResponse, redirectUri: string, state: string | null): void {
    const q = new URLSearchParams({
      error: 'access_denied',
      error_description: DENIED_DESCRIPTION,
    });
    if (state !== null) q.set('state', state);
    redirect(res, appendQuery(redirectUri, q.toString()));
  }

  private approve(
    res: ServerResponse,
    r: {
      redirectUri: string;
      scopes: string[];
      state: string | null;
      codeChallenge: string;
      userId: string;
    },
  ): void {
    if (!this.users.has(r.userId)) return this.errorPage(res, 'Unknown account');
    const code = randomToken(30);
    this.codes.set(code, {
      clientId: this.clientId,
      redirectUri: r.redirectUri,
      userId: r.userId,
      scopes: r.scopes,
      codeChallenge: r.codeChallenge,
      createdAt: this.now(),
    });
    const q = new URLSearchParams({ code });
    if (r.state !== null) q.set('state', r.state);
    redirect(res, appendQuery(r.redirectUri, q.toString()));
  }

  // ---------------------------------------------------------------- token

  private failure(res: ServerResponse, f: SimFailure): void {
    if (f.status === 429) {
      const retryAfter = f.retryAfter ?? 1;
      const headers = { 'Retry-After': String(Math.ceil(retryAfter)) };
      if (f.plainText) return sendText(res, 429, 'error code: 1015', headers);
      return sendJson(
        res,
        429,
        { message: 'You are being rate limited.', retry_after: retryAfter, global: false },
        {
          ...headers,
          'X-RateLimit-Scope': 'user',
        },
      );
    }
    const headers: Record<string, string> =
      f.retryAfter !== undefined ? { 'Retry-After': String(f.retryAfter) } : {};
    if (f.plainText) return sendText(res, f.status, `${f.status} Service Unavailable`, headers);
    if (f.status >= 500)
      return sendJson(
        res,
        f.status,
        { message: `${f.status}: Internal Server Error`, code: 0 },
        headers,
      );
    return sendJson(res, f.status, { message: `${f.status}: Error`, code: 0 }, headers);
  }

  /** Client authentication by HTTP Basic or body fields; null when it fails. */
  private authenticateClient(req: IncomingMessage, body: URLSearchParams): string | null {
    const auth = req.headers.authorization;
    let id: string | null;
    let secret: string | null;
    if (auth && /^basic /i.test(auth)) {
      const decoded = Buffer.from(auth.slice(6).trim(), 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon === -1) return null;
      try {
        id = decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' '));
        secret = decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, ' '));
      } catch {
        return null;
      }
      const bodyId = body.get('client_id');
      if (bodyId !== null && bodyId !== id) return null;
    } else {
      id = body.get('client_id');
      secret = body.get('client_secret');
    }
    if (id === null || secret === null) return null;
    if (id !== this.clientId || !safeEqual(secret, this.clientSecret)) return null;
    return id;
  }

  private async token(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.stats.tokenExchanges++;
    const raw = await readBody(req);
    if (this.knobs.tokenFailure) return this.failure(res, this.knobs.tokenFailure);
    const contentType = String(req.headers['content-type'] ?? '')
      .split(';')[0]
      .trim()
      .toLowerCase();
    if (contentType !== 'application/x-www-form-urlencoded') {
      return sendJson(res, 400, {
        error: 'invalid_request',
        error_description: 'Invalid content type',
      });
    }
    const body = new URLSearchParams(raw);
    const clientId = this.authenticateClient(req, body);
    if (clientId === null) return sendJson(res, 401, { error: 'invalid_client' });

    const grantType = body.get('grant_type');
    if (grantType === 'refresh_token') return this.refresh(res, clientId, body);
    if (grantType !== 'authorization_code') {
      return sendJson(res, 400, { error: 'unsupported_grant_type' });
    }
    const codeValue = body.get('code');
    if (!codeValue) {
      return sendJson(res, 400, {
        error: 'invalid_request',
        error_description: 'Missing "code" in request.',
      });
    }
    const invalidCode = () =>
      sendJson(res, 400, {
        error: 'invalid_grant',
        error_description: 'Invalid "code" in request.',
      });
    const code = this.codes.get(codeValue);
    if (!code || code.clientId !== clientId) return invalidCode();
    if (this.now() - code.createdAt > CODE_TTL_MS) {
      this.codes.delete(codeValue);
      return invalidCode();
    }
    if (body.get('redirect_uri') !== code.redirectUri) {
      return sendJson(res, 400, {
        error: 'invalid_grant',
        error_description: 'Invalid "redirect_uri" in request.',
      });
    }
    const verifier = body.get('code_verifier');
    if (
      !verifier ||
      !/^[A-Za-z0-9._~-]{43,128}$/.test(verifier) ||
      !safeEqual(s256(verifier), code.codeChallenge)
    ) {
      return sendJson(res, 400, {
        error: 'invalid_grant',
        error_description: 'Invalid "code_verifier" in request.',
      });
    }
    this.codes.delete(codeValue);
    const user = this.users.get(code.userId);
    if (!user) return invalidCode();
    if (user.id === DISCORD_FIXTURES.changing.id) this.changeProfile(user);
    return this.issueTokens(res, { userId: user.id, clientId, scopes: code.scopes });
  }

  private refresh(res: ServerResponse, clientId: string, body: URLSearchParams): void {
    const value = body.get('refresh_token') ?? '';
    const grant = this.refreshTokens.get(value);
    if (!grant || grant.clientId !== clientId) {
      return sendJson(res, 400, {
        error: 'invalid_grant',
        error_description: 'Invalid "refresh_token" in request.',
      });
    }
    this.refreshTokens.delete(value);
    return this.issueTokens(res, grant);
  }

  private issueTokens(res: ServerResponse, grant: Omit<AccessGrant, 'expiresAt'>): void {
    const accessToken = randomToken(30);
    const refreshToken = randomToken(30);
    this.accessTokens.set(accessToken, { ...grant, expiresAt: this.now() + TOKEN_TTL_S * 1000 });
    this.refreshTokens.set(refreshToken, grant);
    sendJson(res, 200, {
      token_type: 'Bearer',
      access_token: accessToken,
      expires_in: TOKEN_TTL_S,
      refresh_token: refreshToken,
      scope: grant.scopes.join(' '),
    });
  }

  private async revoke(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = new URLSearchParams(await readBody(req));
    if (this.authenticateClient(req, body) === null)
      return sendJson(res, 401, { error: 'invalid_client' });
    const token = body.get('token') ?? '';
    this.accessTokens.delete(token);
    this.refreshTokens.delete(token);
    sendJson(res, 200, {});
  }

  private changeProfile(user: SimDiscordUser): void {
    this.changeCounter++;
    user.global_name = `Shapeshifter ${this.changeCounter}`;
    user.avatar = randomHex(16);
  }

  // ---------------------------------------------------------------- API

  private bearer(req: IncomingMessage): AccessGrant | null {
    const m = /^Bearer (\S+)$/i.exec(String(req.headers.authorization ?? ''));
    if (!m) return null;
    const grant = this.accessTokens.get(m[1]);
    if (!grant) return null;
    if (grant.expiresAt <= this.now()) {
      this.accessTokens.delete(m[1]);
      return null;
    }
    return grant;
  }

  private unauthorized(res: ServerResponse): void {
    sendJson(res, 401, { message: '401: Unauthorized', code: 0 });
  }

  /** The public part of a user, as embedded in other objects (no email, verified, mfa, locale). */
  private publicUser(u: SimDiscordUser): Record<string, unknown> {
    return {
      id: u.id,
      username: u.username,
      avatar: u.avatar,
      discriminator: u.discriminator,
      public_flags: u.flags ?? 0,
      flags: u.flags ?? 0,
      banner: null,
      accent_color: null,
      global_name: u.global_name,
      avatar_decoration_data: null,
      collectibles: null,
      banner_color: null,
      clan: null,
      primary_guild: null,
    };
  }

  private me(req: IncomingMessage, res: ServerResponse, unversioned: boolean): void {
    this.stats.userFetches++;
    if (unversioned) this.stats.unversionedUserFetches++;
    if (this.knobs.userFailure) return this.failure(res, this.knobs.userFailure);
    const grant = this.bearer(req);
    const user = grant && this.users.get(grant.userId);
    if (!grant || !user) return this.unauthorized(res);
    const body: Record<string, unknown> = {
      ...this.publicUser(user),
      mfa_enabled: user.mfa_enabled,
      locale: user.locale,
      premium_type: user.premium_type ?? 0,
    };
    if (grant.scopes.includes('email')) {
      body.email = user.email;
      body.verified = user.verified;
    }
    sendJson(res, 200, body, rateLimitHeaders());
  }

  private guildMember(req: IncomingMessage, res: ServerResponse, guildId: string): void {
    this.stats.guildMemberFetches++;
    if (this.knobs.guildMemberFailure) return this.failure(res, this.knobs.guildMemberFailure);
    const grant = this.bearer(req);
    const user = grant && this.users.get(grant.userId);
    if (!grant || !user) return this.unauthorized(res);
    if (!grant.scopes.includes('guilds.members.read')) {
      return sendJson(res, 403, { message: 'Missing Access', code: 50001 });
    }
    const roles = user.guildRoles?.[guildId];
    if (!roles) return sendJson(res, 404, { message: 'Unknown Guild', code: 10004 });
    sendJson(
      res,
      200,
      {
        avatar: null,
        banner: null,
        communication_disabled_until: null,
        flags: 0,
        joined_at: new Date(snowflakeTime(user.id) + 86_400_000)
          .toISOString()
          .replace('Z', '000+00:00'),
        nick: null,
        pending: false,
        premium_since: null,
        roles: [...roles],
        unusual_dm_activity_until: null,
        user: this.publicUser(user),
        mute: false,
        deaf: false,
        bio: '',
      },
      rateLimitHeaders(),
    );
  }
}

/** base64url(sha256(verifier)), the S256 PKCE transform. */
export function s256(verifier: string): string {
  return createHash('sha256').update(verifier, 'ascii').digest('base64url');
}

/** Milliseconds since the epoch encoded in a snowflake. */
function snowflakeTime(id: string): number {
  try {
    return Number((BigInt(id) >> 22n) + 1420070400000n);
  } catch {
    return Date.UTC(2020, 0, 1);
  }
}

function rateLimitHeaders(): Record<string, string> {
  return {
    'X-RateLimit-Limit': '5',
    'X-RateLimit-Remaining': '4',
    'X-RateLimit-Reset': String(Math.ceil(Date.now() / 1000) + 1),
    'X-RateLimit-Reset-After': '1',
    'X-RateLimit-Bucket': 'b4c9e2a1f0d3c8b7a6e5f4d3c2b1a0f9',
  };
}
