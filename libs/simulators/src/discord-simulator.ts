import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  cloneDiscordUser,
  DISCORD_FIXTURES,
  SIM_BOT_USER_ID,
  type SimDiscordUser,
} from './discord-fixtures';
import { SimulatedGateway } from './discord-gateway';
import {
  discordTimestamp,
  publicUserObject,
  SIM_GATEWAY_INTENTS,
  SimulatedGuild,
  snowflakeTime,
} from './discord-guild';
import { membersPage, membersPagePost, MEMBERS_PAGE_PATH } from './discord-members-page';
import {
  defaultRateLimits,
  DiscordRateLimiter,
  type DiscordBotRoute,
  type DiscordForcedRateLimit,
  type DiscordRateLimitSettings,
} from './discord-rate-limits';
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
  /** The bot's token (`Authorization: Bot <token>`, gateway Identify). Default `'sandbox-bot-token'`. */
  botToken?: string;
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
  /**
   * The privileged Server Members intent is on for the application. Off: listing members answers 403
   * (50001 Missing Access) and an Identify asking for GUILD_MEMBERS is closed with 4014. Default true.
   */
  serverMembersIntent: boolean;
  /** The privileged Presence intent (GUILD_PRESENCES). Default false. */
  presenceIntent: boolean;
  /** The privileged Message Content intent. Default false. */
  messageContentIntent: boolean;
  /** Forces the next answers of the bot routes to be 429 (see `forceRateLimit`). */
  botRateLimit: DiscordForcedRateLimit | null;
  /** Every bot-route request fails this way (e.g. a 502 from Cloudflare), after being counted. */
  botFailure: SimFailure | null;
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
  /** Requests to each bot route (any answer, 401 and 429 included). `resetBotCalls()` zeroes them. */
  botCalls: Partial<Record<DiscordBotRoute, number>>;
  /** Bot-route answers that were 429 (forced or earned). */
  botRateLimited: number;
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
  serverMembersIntent: true,
  presenceIntent: false,
  messageContentIntent: false,
  botRateLimit: null,
  botFailure: null,
});

/**
 * A simulated Discord: the OAuth2 authorize page (with a clickable consent screen), the token endpoint
 * (PKCE S256, single-use codes), `users/@me` and the guild-member route, answering the way Discord does;
 * and its bot side: the bot REST routes (gateway info, guild, member listing, with rate limits), the
 * gateway (`gateway`), the guild driver (`guild`) and a members page at `/sandbox/members`.
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
    botCalls: {},
    botRateLimited: 0,
  };
  now: () => number;
  botToken: string;
  /** The simulated server: state and driver functions (roles, join, kick, ban). */
  readonly guild: SimulatedGuild;
  /** The simulated gateway: knobs (`down`, `up`, `dropConnections`, `sendReconnect`) and `stats`. */
  readonly gateway: SimulatedGateway;
  /** Rate limits of the bot routes (mutable). */
  rateLimits: DiscordRateLimitSettings = defaultRateLimits();
  private readonly rateLimiter: DiscordRateLimiter;

  private readonly initialUsers: SimDiscordUser[];
  /** `ws://host:port` once listening (the gateway URL when a request carries no Host header). */
  private wsBase = 'ws://127.0.0.1';
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
    this.botToken = options.botToken ?? 'sandbox-bot-token';
    this.gateway = new SimulatedGateway({
      checkToken: (token) => safeEqual(token, this.botToken),
      enabledPrivilegedIntents: () =>
        (this.knobs.serverMembersIntent ? SIM_GATEWAY_INTENTS.GuildMembers : 0) |
        (this.knobs.presenceIntent ? SIM_GATEWAY_INTENTS.GuildPresences : 0) |
        (this.knobs.messageContentIntent ? SIM_GATEWAY_INTENTS.MessageContent : 0),
      botUser: () => this.botUser(),
      guildId: () => this.guild.id,
      guildCreate: () => this.guildCreate(),
    });
    this.guild = new SimulatedGuild(
      this.users,
      (event, data, intent) => this.gateway.dispatch(event, data, intent),
      () => this.now(),
    );
    this.rateLimiter = new DiscordRateLimiter(
      () => this.rateLimits,
      () => this.now(),
    );
    this.restoreUsers();
  }

  /**
   * Changes an account, as if its owner edited the profile on Discord. A change of its
   * `guildRoles` for the simulated guild dispatches the matching gateway event.
   */
  updateUser(id: string, patch: Partial<SimDiscordUser>): void {
    const user = this.users.get(id);
    if (!user) throw new Error(`DiscordSimulator: no user with id ${id}`);
    const before = this.guild.rolesOf(id);
    const beforeCopy = before ? [...before] : undefined;
    Object.assign(user, patch, { id });
    if (patch.guildRoles !== undefined) this.guild.noteChange(id, beforeCopy);
  }

  /** The next `count` answers of the bot routes (or of `options.route`) are 429. */
  forceRateLimit(count: number, options: Omit<DiscordForcedRateLimit, 'count'> = {}): void {
    this.knobs.botRateLimit = { ...options, count };
  }

  /** Zeroes the bot-route call counters (`stats.botCalls`, `stats.botRateLimited`). */
  resetBotCalls(): void {
    this.stats.botCalls = {};
    this.stats.botRateLimited = 0;
  }

  override close(): Promise<void> {
    this.gateway.close();
    return super.close();
  }

  protected override onListening(baseUrl: string): void {
    super.onListening(baseUrl);
    this.wsBase = baseUrl.replace(/^http/, 'ws');
  }

  protected override upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.knobs.down) {
      socket.destroy();
      return;
    }
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://simulator.invalid');
    } catch {
      socket.destroy();
      return;
    }
    this.gateway.handleUpgrade(req, socket, head, url);
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
    this.resetBotCalls();
    this.guild.reset();
    this.gateway.reset();
    this.rateLimits = defaultRateLimits();
    this.rateLimiter.reset();
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
    if (me && method === 'GET' && /^Bot /.test(String(req.headers.authorization ?? ''))) {
      return this.botRoute(req, res, url, { route: 'GET /users/@me', guildId: null, userId: null });
    }
    if (me && method === 'GET') return this.me(req, res, !me[1]);
    const member = /^\/api(?:\/v10)?\/users\/@me\/guilds\/([^/]+)\/member$/.exec(path);
    if (member && method === 'GET') return this.guildMember(req, res, member[1]);
    if (path === MEMBERS_PAGE_PATH) {
      if (method === 'GET') return membersPage(this, res, url.searchParams);
      if (method === 'POST') return membersPagePost(this, req, res);
      return this.notFound(res, 405);
    }
    if (path === '/api/gateway' || path === '/api/v10/gateway') {
      if (method === 'GET') return sendJson(res, 200, { url: this.gatewayUrl(req) });
      return this.notFound(res, 405);
    }
    const bot = matchBotRoute(path);
    if (bot) {
      if (method === 'GET') return this.botRoute(req, res, url, bot);
      return this.notFound(res, 405);
    }
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
      .filter((u) => !this.guild.generatedIds.has(u.id))
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
        (this.guild.generatedIds.size > 0
          ? `<form method="post">${hidden}<label>Or an account by id (${this.guild.generatedIds.size} generated): ` +
            '<input name="approve_as" id="approve-as-id" inputmode="numeric"></label> ' +
            '<button type="submit">Sign in</button></form>'
          : '') +
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

  private me(req: IncomingMessage, res: ServerResponse, unversioned: boolean): void {
    this.stats.userFetches++;
    if (unversioned) this.stats.unversionedUserFetches++;
    if (this.knobs.userFailure) return this.failure(res, this.knobs.userFailure);
    const grant = this.bearer(req);
    const user = grant && this.users.get(grant.userId);
    if (!grant || !user) return this.unauthorized(res);
    const body: Record<string, unknown> = {
      ...publicUserObject(user),
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
        joined_at:
          this.guild.memberObject(user.id)?.joined_at ??
          discordTimestamp(snowflakeTime(user.id) + 86_400_000),
        nick: null,
        pending: false,
        premium_since: null,
        roles: [...roles],
        unusual_dm_activity_until: null,
        user: publicUserObject(user),
        mute: false,
        deaf: false,
        bio: '',
      },
      rateLimitHeaders(),
    );
  }

  // ---------------------------------------------------------------- bot

  /** The gateway URL for a client that reached us through `req` (its Host header). */
  private gatewayUrl(req: IncomingMessage): string {
    const host = req.headers.host;
    return `${host ? `ws://${host}` : this.wsBase}/gateway`;
  }

  /** The bot's user object (READY, and the guild's bot member). */
  botUser(): Record<string, unknown> {
    return {
      id: SIM_BOT_USER_ID,
      username: `${this.appName.toLowerCase().replace(/[^a-z0-9_.]+/g, '_')}`,
      avatar: null,
      discriminator: '0',
      global_name: null,
      public_flags: 0,
      flags: 0,
      bot: true,
      verified: true,
      mfa_enabled: false,
      email: null,
    };
  }

  private rolesJson(): Record<string, unknown>[] {
    return this.guild.roles.map((r) => ({
      id: r.id,
      name: r.name,
      description: null,
      permissions: r.id === this.guild.id ? '2248473465835073' : '0',
      position: r.position,
      color: r.color,
      colors: { primary_color: r.color, secondary_color: null, tertiary_color: null },
      hoist: false,
      managed: false,
      icon: null,
      unicode_emoji: null,
      mentionable: false,
      flags: 0,
    }));
  }

  /** The guild object of `GET /guilds/:id`. */
  private guildObject(): Record<string, unknown> {
    return {
      id: this.guild.id,
      name: this.guild.name,
      icon: null,
      description: null,
      home_header: null,
      splash: null,
      discovery_splash: null,
      features: [],
      banner: null,
      owner_id: this.guild.ownerId,
      application_id: null,
      region: 'deprecated',
      afk_channel_id: null,
      afk_timeout: 300,
      system_channel_id: null,
      system_channel_flags: 0,
      widget_enabled: false,
      widget_channel_id: null,
      verification_level: 1,
      roles: this.rolesJson(),
      default_message_notifications: 1,
      mfa_level: 0,
      explicit_content_filter: 2,
      max_presences: null,
      max_members: 25000000,
      max_stage_video_channel_users: 50,
      max_video_channel_users: 25,
      vanity_url_code: null,
      premium_tier: 0,
      premium_subscription_count: 0,
      preferred_locale: 'en-US',
      rules_channel_id: null,
      safety_alerts_channel_id: null,
      public_updates_channel_id: null,
      hub_type: null,
      premium_progress_bar_enabled: false,
      latest_onboarding_question_id: null,
      nsfw: false,
      nsfw_level: 0,
      emojis: [],
      stickers: [],
      incidents_data: null,
      inventory_settings: null,
      embed_enabled: false,
      embed_channel_id: null,
    };
  }

  /** GUILD_CREATE: the guild object plus the gateway-only fields. */
  private guildCreate(): Record<string, unknown> {
    const count = this.guild.memberCount;
    return {
      ...this.guildObject(),
      joined_at: discordTimestamp(snowflakeTime(this.guild.id) + 3_600_000),
      large: count > 50,
      unavailable: false,
      member_count: count,
      voice_states: [],
      members: [
        {
          user: this.botUser(),
          roles: [],
          nick: null,
          avatar: null,
          banner: null,
          joined_at: discordTimestamp(snowflakeTime(this.guild.id) + 3_600_000),
          premium_since: null,
          deaf: false,
          mute: false,
          pending: false,
          flags: 0,
          communication_disabled_until: null,
        },
      ],
      channels: [],
      threads: [],
      presences: [],
      stage_instances: [],
      guild_scheduled_events: [],
      soundboard_sounds: [],
      application_command_counts: {},
    };
  }

  private botRoute(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    m: { route: DiscordBotRoute; guildId: string | null; userId: string | null },
  ): void {
    const calls = this.stats.botCalls;
    calls[m.route] = (calls[m.route] ?? 0) + 1;
    if (this.knobs.botFailure) return this.failure(res, this.knobs.botFailure);
    const auth = /^Bot (\S+)$/.exec(String(req.headers.authorization ?? ''));
    if (!auth || !safeEqual(auth[1], this.botToken)) return this.unauthorized(res);
    const { verdict, forcedUsed } = this.rateLimiter.take(
      m.route,
      m.guildId ?? '',
      this.knobs.botRateLimit,
    );
    if (forcedUsed && this.knobs.botRateLimit) {
      this.knobs.botRateLimit.count--;
      if (this.knobs.botRateLimit.count <= 0) this.knobs.botRateLimit = null;
    }
    if (verdict.limited) {
      this.stats.botRateLimited++;
      return sendJson(
        res,
        429,
        { message: 'You are being rate limited.', ...verdict.limited },
        verdict.headers,
      );
    }
    const h = verdict.headers;
    if (m.route === 'GET /users/@me') return sendJson(res, 200, this.botUser(), h);
    if (m.route === 'GET /gateway/bot') {
      return sendJson(
        res,
        200,
        {
          url: this.gatewayUrl(req),
          shards: 1,
          session_start_limit: {
            total: 1000,
            remaining: Math.max(0, 1000 - this.gateway.stats.identifies),
            reset_after: 86_400_000,
            max_concurrency: 1,
          },
        },
        h,
      );
    }
    if (m.guildId !== this.guild.id) {
      return sendJson(res, 404, { message: 'Unknown Guild', code: 10004 }, h);
    }
    if (m.route === 'GET /guilds/:guild') {
      const body = this.guildObject();
      const withCounts = url.searchParams.get('with_counts');
      if (withCounts === 'true' || withCounts === '1' || withCounts === 'True') {
        body.approximate_member_count = this.guild.memberCount;
        body.approximate_presence_count = Math.floor(this.guild.memberCount / 3);
      }
      return sendJson(res, 200, body, h);
    }
    if (m.route === 'GET /guilds/:guild/members/:user') {
      const userId = m.userId ?? '';
      if (!/^\d{1,20}$/.test(userId)) {
        return sendJson(
          res,
          400,
          formError('user_id', 'NUMBER_TYPE_COERCE', `Value "${userId}" is not snowflake.`),
          h,
        );
      }
      const member = this.guild.memberObject(userId);
      if (!member) return sendJson(res, 404, { message: 'Unknown Member', code: 10007 }, h);
      return sendJson(res, 200, member, h);
    }
    // GET /guilds/:guild/members
    const q = url.searchParams;
    const limitRaw = q.get('limit');
    let limit = 1;
    if (limitRaw !== null) {
      if (!/^-?\d+$/.test(limitRaw)) {
        return sendJson(
          res,
          400,
          formError('limit', 'NUMBER_TYPE_COERCE', `Value "${limitRaw}" is not int.`),
          h,
        );
      }
      limit = Number(limitRaw);
      if (limit < 1)
        return sendJson(
          res,
          400,
          formError('limit', 'NUMBER_TYPE_MIN', 'int value should be greater than or equal to 1.'),
          h,
        );
      if (limit > 1000)
        return sendJson(
          res,
          400,
          formError('limit', 'NUMBER_TYPE_MAX', 'int value should be less than or equal to 1000.'),
          h,
        );
    }
    const after = q.get('after');
    if (after !== null && !/^\d{1,20}$/.test(after)) {
      return sendJson(
        res,
        400,
        formError('after', 'NUMBER_TYPE_COERCE', `Value "${after}" is not snowflake.`),
        h,
      );
    }
    if (!this.knobs.serverMembersIntent) {
      return sendJson(res, 403, { message: 'Missing Access', code: 50001 }, h);
    }
    const ids = this.guild.memberIds(after ?? undefined).slice(0, limit);
    return sendJson(
      res,
      200,
      ids.map((id) => this.guild.memberObject(id)!),
      h,
    );
  }
}

/** base64url(sha256(verifier)), the S256 PKCE transform. */
export function s256(verifier: string): string {
  return createHash('sha256').update(verifier, 'ascii').digest('base64url');
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

/** Which bot route a path is (under `/api/v10`), with its parameters. */
function matchBotRoute(
  path: string,
): { route: DiscordBotRoute; guildId: string | null; userId: string | null } | null {
  if (path === '/api/v10/gateway/bot' || path === '/api/gateway/bot')
    return { route: 'GET /gateway/bot', guildId: null, userId: null };
  const m = /^\/api(?:\/v10)?\/guilds\/([^/]+)(?:\/members(?:\/([^/]+))?)?$/.exec(path);
  if (!m) return null;
  if (path.endsWith('/members'))
    return { route: 'GET /guilds/:guild/members', guildId: m[1], userId: null };
  if (m[2] !== undefined)
    return { route: 'GET /guilds/:guild/members/:user', guildId: m[1], userId: m[2] };
  return { route: 'GET /guilds/:guild', guildId: m[1], userId: null };
}

/** Discord's 400 "Invalid Form Body" for one field. */
function formError(field: string, code: string, message: string): Record<string, unknown> {
  return {
    message: 'Invalid Form Body',
    code: 50035,
    errors: { [field]: { _errors: [{ code, message }] } },
  };
}
