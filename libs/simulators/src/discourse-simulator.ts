import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  decodeBase64,
  encodeBase64,
  isAcceptableBase64,
  readBool,
  readPayloadFields,
  signPayload,
  verifySignature,
} from './discourse-payload';
import { SimulatedAdminApi } from './discourse-admin-api';
import { ForumError } from './discourse-errors';
import {
  SimulatedWebhooks,
  type SimWebhookConfig,
  type SimWebhookDelivery,
  type SimWebhookEvent,
} from './discourse-webhooks';
import {
  escapeHtml,
  parseCookies,
  randomHex,
  readBody,
  redirect,
  safeDecode,
  sendHtml,
  sendJson,
  sendText,
  SimulatedServer,
  type SimFailure,
} from './http-helpers';

export interface DiscourseSimulatorOptions {
  /** `discourse_connect_secret`. */
  secret: string;
  /** `discourse_connect_url`: the provider endpoint, e.g. `http://127.0.0.1:3000/discourse/sso`. */
  connectUrl?: string;
  /** `logout_redirect`: where the browser goes after signing out on the forum. Default `/`. */
  logoutRedirect?: string;
  /** `auth_overrides_username`. Default false. */
  authOverridesUsername?: boolean;
  /** `auth_overrides_name`. Default false. */
  authOverridesName?: boolean;
  /** `auth_overrides_email`. Default false. */
  authOverridesEmail?: boolean;
  /** `discourse_connect_overrides_avatar`. Default false. */
  overridesAvatar?: boolean;
  /** `discourse_connect_overrides_groups`. Default false. */
  overridesGroups?: boolean;
  /** `min_username_length` and `max_username_length`. Default 3 and 20, as Discourse's. */
  usernameLengths?: { min: number; max: number };
  /** Emit base64 like Ruby's `Base64.encode64` (`\n` every 60 chars and at the end). Default false. */
  legacyBase64Newlines?: boolean;
  /** Site title. Default `'Simulated Discourse'`. */
  title?: string;
  /** Existing (non-automatic) group names. Default `['members', 'moderators', 'veterans']`. */
  groups?: string[];
  /** Clock in ms, for nonce expiry and rate-limit tests. Default `Date.now`. */
  now?: () => number;
  /** Admin API key (`Api-Key` header). Without one the admin API answers 403. */
  apiKey?: string;
  /** `max_admin_api_reqs_per_minute`, one budget for the whole site. Default 60; 0 = unlimited. */
  apiRateLimitPerMinute?: number;
  /** Subfolder the forum is installed in, e.g. `/forum`. Default none. */
  basePath?: string;
  /** An outgoing webhook for `user` events (user_created, user_updated). Default none. */
  webhooks?: SimWebhookConfig;
}

export interface SimForumUser {
  id: number;
  username: string;
  name: string | null;
  email: string;
  externalId: string | null;
  avatarUrl: string | null;
  admin: boolean;
  moderator: boolean;
  active: boolean;
  groups: string[];
  /** Suspended until (epoch ms); absent or null when not suspended. */
  suspendedTill?: number | null;
  /** The reason given with the suspension. */
  suspendReason?: string | null;
  /** When the suspension was made (epoch ms). */
  suspendedAt?: number | null;
  /** `updated_at` (epoch ms): moves forward on every change that sends a webhook. */
  updatedAt?: number;
}

export interface DiscourseKnobs {
  /** `enable_discourse_connect`. */
  connectEnabled: boolean;
  /** Every request: the socket is destroyed. */
  down: boolean;
  /** Every admin API request fails this way (429 JSON or plain text, 5xx, ...). */
  apiFailure?: SimFailure | null;
  /** The webhook (when `webhooks` is set) is active. Default true. */
  webhooksEnabled: boolean;
}

export interface DiscourseStats {
  /** Redirects from `/session/sso` to the provider. */
  ssoRedirects: number;
  /** `sso_login` requests that ended with the browser signed in. */
  ssoLogins: number;
  /** `sso_login` requests answered with an error page. */
  ssoErrors: number;
  /** Fields of the last `sso_login` payload whose signature was valid. */
  lastPayload: Record<string, string> | null;
  /** Admin API requests (any route, any outcome). */
  apiRequests: number;
  /** Admin API requests refused by the rate limit. */
  apiRateLimited: number;
  /** `POST /admin/users/sync_sso` requests. */
  syncSsoCalls: number;
  /** Successful `POST /admin/users/:id/log_out`. */
  apiLogOuts: number;
  /** Group member changes through the admin API that changed something. */
  apiGroupChanges: number;
  /** Outgoing webhook deliveries, in the order they finished. */
  webhookDeliveries: SimWebhookDelivery[];
  /** Successful admin API suspensions, unsuspensions, anonymizations and deletions, in order. */
  apiLifecycleCalls: {
    action: 'suspend' | 'unsuspend' | 'anonymize' | 'delete';
    userId: number;
  }[];
}

interface ForumSession {
  userId?: number;
  nonces: Map<string, { createdAt: number; returnPath: string }>;
}

/** Seconds between reloads of a user's page. */
const USER_PAGE_REFRESH_SECONDS = 2;

const defaultKnobs = (): DiscourseKnobs => ({
  connectEnabled: true,
  down: false,
  apiFailure: null,
  webhooksEnabled: true,
});
const defaultStats = (): DiscourseStats => ({
  ssoRedirects: 0,
  ssoLogins: 0,
  ssoErrors: 0,
  lastPayload: null,
  apiRequests: 0,
  apiRateLimited: 0,
  syncSsoCalls: 0,
  apiLogOuts: 0,
  apiGroupChanges: 0,
  webhookDeliveries: [],
  apiLifecycleCalls: [],
});

const SESSION_COOKIE = '_forum_session';
const NONCE_TTL_MS = 30 * 60 * 1000;
const BANNED_EXTERNAL_IDS = new Set(['none', 'nil', 'blank', 'null']);
const EMAIL_RE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

const MSG = {
  loginError: 'There was a problem with the login. Please try again.',
  timeout: 'Account login timed out, please try logging in again.',
  externalId: 'Invalid external_id',
  email: 'No valid email address was provided. Please contact the site’s administrator.',
};

/**
 * A simulated Discourse forum, the consumer side of DiscourseConnect: browser sessions, `/session/sso`
 * (nonce + signed redirect to the provider) and `/session/sso_login` (Discourse's checks, user matching,
 * overrides and group rules), plus pages a person or a browser test can look at.
 */
export class DiscourseSimulator extends SimulatedServer {
  secret: string;
  connectUrl: string | undefined;
  logoutRedirect: string | undefined;
  authOverridesUsername: boolean;
  authOverridesName: boolean;
  authOverridesEmail: boolean;
  overridesAvatar: boolean;
  overridesGroups: boolean;
  usernameLengths: { min: number; max: number };
  legacyBase64Newlines: boolean;
  title: string;
  /** Existing group names that `groups` / `add_groups` / `remove_groups` can refer to. */
  groups: string[];
  /** Origin of the simulator (set by `listen`); when empty the Host header is used. */
  baseUrl: string;
  /** Subfolder the forum lives in ('' or e.g. '/forum'); `forumRootUrl` = baseUrl + basePath. */
  basePath: string;
  apiKey: string | undefined;
  apiRateLimitPerMinute: number;
  /** The outgoing webhook for `user` events, or none. */
  webhooks: SimWebhookConfig | undefined;
  now: () => number;

  readonly users: SimForumUser[] = [];
  knobs: DiscourseKnobs = defaultKnobs();
  readonly stats: DiscourseStats = defaultStats();
  /** The admin API routes (also reachable for direct calls such as `groupId`). */
  readonly adminApi = new SimulatedAdminApi(this);
  /** Outgoing webhook deliveries. */
  readonly webhookSender = new SimulatedWebhooks(this);

  private readonly initialGroups: string[];
  private readonly sessions = new Map<string, ForumSession>();
  private nextUserId = 1;

  constructor(options: DiscourseSimulatorOptions) {
    super();
    this.secret = options.secret;
    this.connectUrl = options.connectUrl;
    this.logoutRedirect = options.logoutRedirect;
    this.authOverridesUsername = options.authOverridesUsername ?? false;
    this.authOverridesName = options.authOverridesName ?? false;
    this.authOverridesEmail = options.authOverridesEmail ?? false;
    this.overridesAvatar = options.overridesAvatar ?? false;
    this.overridesGroups = options.overridesGroups ?? false;
    this.usernameLengths = options.usernameLengths ?? { min: 3, max: 20 };
    this.legacyBase64Newlines = options.legacyBase64Newlines ?? false;
    this.title = options.title ?? 'Simulated Discourse';
    this.initialGroups = [...(options.groups ?? ['members', 'moderators', 'veterans'])];
    this.groups = [...this.initialGroups];
    this.baseUrl = '';
    this.now = options.now ?? Date.now;
    this.apiKey = options.apiKey;
    this.apiRateLimitPerMinute = options.apiRateLimitPerMinute ?? 60;
    this.basePath = options.basePath ?? '';
    this.webhooks = options.webhooks ? { ...options.webhooks } : undefined;
  }

  /** Resolves when every webhook delivery in flight has finished (its outcome is in `stats`). */
  flushWebhooks(): Promise<void> {
    return this.webhookSender.flush();
  }

  /**
   * Sends a recorded webhook event again with the same id, body and signature, as the forum's
   * "Redeliver" button does; a replay, for tests. Runs in the background like any delivery.
   * @throws Error when no event with that id was recorded (since the last `reset`).
   */
  redeliverWebhook(eventId: number): void {
    this.webhookSender.redeliver(eventId);
  }

  /** Fires the `user` webhook event for a forum user (used by the admin API too). */
  userChanged(user: SimForumUser, event: SimWebhookEvent): void {
    // Discourse saves the record (its updated_at moves) before the event; strictly later each time.
    user.updatedAt = Math.max(this.now(), (user.updatedAt ?? 0) + 1);
    this.webhookSender.userEvent(event, user);
  }

  /** Whether the user is suspended now (Discourse: `suspended_till` in the future). */
  isSuspended(user: SimForumUser): boolean {
    return typeof user.suspendedTill === 'number' && user.suspendedTill > this.now();
  }

  /** Creates a forum account directly (as if it existed before DiscourseConnect was turned on). */
  addUser(u: Partial<SimForumUser> & { username: string; email: string }): SimForumUser {
    const id = u.id ?? this.nextUserId;
    this.nextUserId = Math.max(this.nextUserId, id + 1);
    const user: SimForumUser = {
      id,
      username: u.username,
      name: u.name ?? null,
      email: u.email.toLowerCase(),
      externalId: u.externalId ?? null,
      avatarUrl: u.avatarUrl ?? null,
      admin: u.admin ?? false,
      moderator: u.moderator ?? false,
      active: u.active ?? true,
      groups: [...(u.groups ?? [])],
    };
    this.users.push(user);
    return user;
  }

  findByExternalId(id: string): SimForumUser | undefined {
    return this.users.find((u) => u.externalId === id);
  }

  findByEmail(email: string): SimForumUser | undefined {
    const e = email.toLowerCase();
    return this.users.find((u) => u.email.toLowerCase() === e);
  }

  findByUsername(username: string): SimForumUser | undefined {
    const n = username.toLowerCase();
    return this.users.find((u) => u.username.toLowerCase() === n);
  }

  /** Removes a user (what the admin `DELETE /admin/users/:id` does, after its webhook). */
  removeUser(userId: number): void {
    this.logOutUser(userId);
    const i = this.users.findIndex((u) => u.id === userId);
    if (i >= 0) this.users.splice(i, 1);
  }

  /** Signs a user out of every browser session (what the admin `log_out` does). */
  logOutUser(userId: number): void {
    for (const s of this.sessions.values()) if (s.userId === userId) delete s.userId;
  }

  /** Knobs, stats, users, groups and sessions back to their initial state. */
  reset(): void {
    Object.assign(this.knobs, defaultKnobs());
    Object.assign(this.stats, defaultStats());
    this.adminApi.reset();
    this.webhookSender.reset();
    this.users.length = 0;
    this.nextUserId = 1;
    this.groups = [...this.initialGroups];
    this.sessions.clear();
  }

  protected override onListening(baseUrl: string): void {
    this.baseUrl = baseUrl;
  }

  protected override intercept(req: IncomingMessage): boolean {
    if (!this.knobs.down) return false;
    req.socket.destroy();
    return true;
  }

  private forumUrl(req: IncomingMessage): string {
    if (this.baseUrl) return this.baseUrl.replace(/\/+$/, '');
    return `http://${req.headers.host ?? '127.0.0.1'}`;
  }

  /** The normalised subfolder: '' or '/forum'. */
  private prefix(): string {
    const b = (this.basePath ?? '').replace(/\/+$/, '');
    return b === '' || b.startsWith('/') ? b : `/${b}`;
  }

  /** A forum path with the subfolder in front. */
  path(p: string): string {
    return this.prefix() + p;
  }

  /** Where the forum lives: `baseUrl` plus the subfolder. */
  get forumRootUrl(): string {
    return this.baseUrl.replace(/\/+$/, '') + this.prefix();
  }

  // ---------------------------------------------------------------- sessions

  private session(req: IncomingMessage, res: ServerResponse | null): ForumSession | undefined {
    const id = parseCookies(req.headers.cookie).get(SESSION_COOKIE);
    const existing = id !== undefined ? this.sessions.get(id) : undefined;
    if (existing || !res) return existing;
    const newId = randomHex(16);
    const created: ForumSession = { nonces: new Map() };
    this.sessions.set(newId, created);
    res.setHeader(
      'Set-Cookie',
      `${SESSION_COOKIE}=${newId}; Path=${this.prefix() || '/'}; HttpOnly; SameSite=Lax`,
    );
    return created;
  }

  private currentUser(req: IncomingMessage): SimForumUser | undefined {
    const s = this.session(req, null);
    return s?.userId === undefined ? undefined : this.users.find((u) => u.id === s.userId);
  }

  // ---------------------------------------------------------------- routing

  protected override async route(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
  ): Promise<void> {
    const method = req.method ?? 'GET';
    const prefix = this.prefix();
    let path = url.pathname;
    if (prefix) {
      if (path === prefix) path = '/';
      else if (path.startsWith(prefix + '/')) path = path.slice(prefix.length);
      else return this.notFound(req, res);
    }
    if (await this.adminApi.route(req, res, path, url)) return;
    if (method === 'GET' || method === 'HEAD') {
      if (path === '/' || path === '/latest') return this.home(req, res);
      const topic = /^\/t\/([^/]+)\/(\d+)(?:\/\d+)?\/?$/.exec(path);
      if (topic) return this.topic(req, res, safeDecode(topic[1]), topic[2]);
      if (path === '/login')
        return redirect(
          res,
          this.path(`/session/sso?return_path=${encodeURIComponent(this.path('/'))}`),
        );
      if (path === '/session/sso') return this.ssoStart(req, res, url.searchParams);
      if (path === '/session/sso_login') return this.ssoLogin(req, res, url);
      if (path === '/session/current.json') return this.currentJson(req, res);
      if (path === '/srv/status') return sendText(res, 200, 'ok');
      if (path === '/u/account-created') return this.accountCreated(req, res);
      const userPage = /^\/u\/([^/]+)(?:\/summary)?\/?$/.exec(path);
      if (userPage) return this.userPage(req, res, safeDecode(userPage[1]));
    }
    if (method === 'POST' && path === '/session/logout') return this.logout(req, res);
    if (method === 'DELETE' && /^\/session\/[^/]+$/.test(path)) return this.logout(req, res);
    return this.notFound(req, res);
  }

  // ---------------------------------------------------------------- pages

  private header(req: IncomingMessage, returnPath: string): string {
    const user = this.currentUser(req);
    const title = `<header><h1><a href="${escapeHtml(this.path('/'))}">${escapeHtml(this.title)}</a></h1>`;
    if (!user) {
      return (
        title +
        `<p id="session-status">Not signed in. <a id="login" href="${escapeHtml(this.path('/session/sso?return_path=' + encodeURIComponent(this.path(returnPath))))}">Log In</a></p></header>`
      );
    }
    const flags = [user.admin ? 'admin' : '', user.moderator ? 'moderator' : '']
      .filter(Boolean)
      .join(', ');
    const avatar = user.avatarUrl
      ? `<img class="avatar" id="current-avatar" src="${escapeHtml(user.avatarUrl)}" alt="avatar"> `
      : '';
    return (
      title +
      `<div id="session-status">${avatar}Signed in as <strong><span id="current-user">${escapeHtml(user.username)}</span></strong>` +
      `<ul><li>Name: <span id="current-name">${escapeHtml(user.name ?? '')}</span></li>` +
      `<li>Email: <span id="current-email">${escapeHtml(user.email)}</span></li>` +
      `<li>Groups: <span id="current-groups">${escapeHtml(user.groups.join(', '))}</span></li>` +
      `<li>Flags: <span id="current-flags">${escapeHtml(flags)}</span></li>` +
      `<li><a id="current-user-page" href="${escapeHtml(this.path(`/u/${encodeURIComponent(user.username)}`))}">Your profile</a> (updates live)</li></ul>` +
      `<form method="post" action="${escapeHtml(this.path('/session/logout'))}"><button type="submit" id="logout">Log Out</button></form></div></header>`
    );
  }

  private home(req: IncomingMessage, res: ServerResponse): void {
    sendHtml(
      res,
      200,
      this.title,
      this.header(req, '/') +
        `<main><h2>Latest</h2><ul><li><a href="${this.path('/t/welcome-to-the-forum/1')}">Welcome to the forum</a></li>` +
        `<li><a href="${this.path('/t/house-rules/2')}">House rules</a></li></ul></main>`,
    );
  }

  private topic(req: IncomingMessage, res: ServerResponse, slug: string, id: string): void {
    const heading = slug.replace(/-/g, ' ');
    sendHtml(
      res,
      200,
      `${heading} - ${this.title}`,
      this.header(req, `/t/${encodeURIComponent(slug)}/${id}`) +
        `<main><h2 id="topic-title" data-topic-id="${escapeHtml(id)}">${escapeHtml(heading)}</h2>` +
        '<p>This is a simulated topic.</p></main>',
    );
  }

  /**
   * A user's profile (`/u/:username`): groups, staff flags and state, reloaded every
   * {@link USER_PAGE_REFRESH_SECONDS} seconds so a change made without a sign-in shows up in a browser.
   */
  private userPage(req: IncomingMessage, res: ServerResponse, username: string): void {
    const lower = username.toLowerCase();
    const user = this.users.find((u) => u.username.toLowerCase() === lower);
    if (!user) return this.notFound(req, res);
    const flags = [user.admin ? 'admin' : '', user.moderator ? 'moderator' : '']
      .filter(Boolean)
      .join(', ');
    const groups = user.groups
      .map((g) => `<li data-group="${escapeHtml(g)}">${escapeHtml(g)}</li>`)
      .join('');
    sendHtml(
      res,
      200,
      `${user.username} - ${this.title}`,
      this.header(req, `/u/${encodeURIComponent(user.username)}`) +
        `<main><h2 id="user-username">${escapeHtml(user.username)}</h2>` +
        `<p>Name: <span id="user-name">${escapeHtml(user.name ?? '')}</span></p>` +
        `<p>Groups: <span id="user-groups">${escapeHtml(user.groups.join(', '))}</span></p><ul>${groups}</ul>` +
        `<p>Flags: <span id="user-flags">${escapeHtml(flags)}</span></p>` +
        `<p>State: <span id="user-state">${user.active ? 'active' : 'not activated'}</span></p>` +
        `<p class="sim">This page reloads every ${USER_PAGE_REFRESH_SECONDS} seconds.</p></main>`,
      `<meta http-equiv="refresh" content="${USER_PAGE_REFRESH_SECONDS}">`,
    );
  }

  private accountCreated(req: IncomingMessage, res: ServerResponse): void {
    sendHtml(
      res,
      200,
      this.title,
      this.header(req, '/') +
        '<main><h2 id="account-created">Account created</h2><p>Your new account must be activated: we sent an ' +
        'activation mail to your email address. Please follow the instructions in the email to activate your account.</p></main>',
    );
  }

  private notFound(req: IncomingMessage, res: ServerResponse): void {
    if ((req.url ?? '').split('?')[0].endsWith('.json')) {
      return sendJson(res, 404, {
        errors: ['The requested URL or resource could not be found.'],
        error_type: 'not_found',
      });
    }
    sendHtml(
      res,
      404,
      `Page Not Found - ${this.title}`,
      '<h1>Oops! That page doesn’t exist or is private.</h1>',
    );
  }

  private currentJson(req: IncomingMessage, res: ServerResponse): void {
    const u = this.currentUser(req);
    if (!u) return sendJson(res, 404, { errors: ['not logged in'], error_type: 'not_found' });
    sendJson(res, 200, {
      current_user: {
        id: u.id,
        username: u.username,
        name: u.name,
        email: u.email,
        external_id: u.externalId,
        avatar_url: u.avatarUrl,
        admin: u.admin,
        moderator: u.moderator,
        active: u.active,
        groups: [...u.groups],
      },
    });
  }

  private async logout(req: IncomingMessage, res: ServerResponse): Promise<void> {
    await readBody(req);
    const s = this.session(req, null);
    if (s) delete s.userId;
    redirect(res, this.logoutRedirect || this.path('/'));
  }

  // ---------------------------------------------------------------- DiscourseConnect

  private ssoStart(req: IncomingMessage, res: ServerResponse, params: URLSearchParams): void {
    if (!this.knobs.connectEnabled || !this.connectUrl) return this.notFound(req, res);
    const requested = params.get('return_path') ?? this.path('/');
    const returnPath = /^\/(?![/\\])[^\s\x00-\x1f]*$/.test(requested) ? requested : this.path('/');
    if (this.currentUser(req)) return redirect(res, returnPath);
    const session = this.session(req, res)!;
    const nonce = randomHex(16);
    session.nonces.set(nonce, { createdAt: this.now(), returnPath });
    const payload = new URLSearchParams({
      nonce,
      return_sso_url: `${this.forumUrl(req)}${this.path('/session/sso_login')}`,
    }).toString();
    const sso = encodeBase64(payload, this.legacyBase64Newlines);
    const sig = signPayload(this.secret, sso);
    this.stats.ssoRedirects++;
    const sep = this.connectUrl.includes('?') ? '&' : '?';
    redirect(res, this.connectUrl + sep + new URLSearchParams({ sso, sig }).toString());
  }

  private ssoErrorPage(res: ServerResponse, e: ForumError): void {
    this.stats.ssoErrors++;
    const title =
      e.status === 500 && e.text === 'Internal Server Error'
        ? 'Internal Server Error'
        : 'Login Error';
    sendHtml(
      res,
      e.status,
      `${title} - ${this.title}`,
      `<h1>${title}</h1><p id="sso-error">${e.html ? e.text : escapeHtml(e.text)}</p><p><a href="${escapeHtml(this.path('/'))}">Back to ${escapeHtml(this.title)}</a></p>`,
    );
  }

  private ssoLogin(req: IncomingMessage, res: ServerResponse, url: URL): void {
    if (!this.knobs.connectEnabled) return this.notFound(req, res);
    try {
      this.ssoLoginOrThrow(req, res, url);
    } catch (e) {
      if (e instanceof ForumError) return this.ssoErrorPage(res, e);
      throw e;
    }
  }

  private ssoLoginOrThrow(req: IncomingMessage, res: ServerResponse, url: URL): void {
    const ssoValues = url.searchParams.getAll('sso');
    const sigValues = url.searchParams.getAll('sig');
    if (ssoValues.length > 1 || sigValues.length > 1)
      throw new ForumError('parse', 500, 'Internal Server Error');
    const sso = ssoValues[0];
    const sig = sigValues[0];
    if (sso === undefined || !isAcceptableBase64(sso) || !verifySignature(this.secret, sso, sig)) {
      throw new ForumError('signature', 422, MSG.loginError);
    }
    const parsed = readPayloadFields(decodeBase64(sso));
    if (!parsed.ok) throw new ForumError('parse', 500, 'Internal Server Error');
    const f = parsed.fields;
    this.stats.lastPayload = { ...f };

    // The nonce must belong to THIS browser's session; Discourse spends it before looking at the user.
    const session = this.session(req, null);
    const entry = f.nonce ? session?.nonces.get(f.nonce) : undefined;
    if (!session || !entry || this.now() - entry.createdAt > NONCE_TTL_MS) {
      if (session && f.nonce) session.nonces.delete(f.nonce);
      throw new ForumError('nonce', 419, MSG.timeout);
    }
    session.nonces.delete(f.nonce);

    const user = this.applyPayload(f);
    if (this.isSuspended(user)) {
      // Discourse's sso_login refuses a suspended user with the suspension text (403).
      delete session.userId;
      throw new ForumError(
        'suspended',
        403,
        `You have been suspended from the forum until ${new Date(user.suspendedTill!).toISOString().slice(0, 10)}. The reason was: ${user.suspendReason ?? ''}`,
      );
    }
    if (!user.active) {
      delete session.userId;
      return redirect(res, this.path('/u/account-created'));
    }
    session.userId = user.id;
    this.stats.ssoLogins++;
    redirect(res, entry.returnPath);
  }

  /**
   * What Discourse does with a verified payload (`lookup_or_create_user`): match by external_id, else by
   * email (unless require_activation), else create; then groups, overrides, activation, admin/moderator.
   * @throws ForumError for a blank/banned external_id, a missing/invalid email or a taken email.
   */
  applyPayload(f: Record<string, string>): SimForumUser {
    const externalId = (f.external_id ?? '').trim();
    if (externalId === '' || BANNED_EXTERNAL_IDS.has(externalId.toLowerCase())) {
      throw new ForumError('external_id', 422, MSG.externalId);
    }
    const email = (f.email ?? '').trim();
    if (!EMAIL_RE.test(email)) throw new ForumError('email', 422, MSG.email);
    const requireActivation = readBool(f, 'require_activation') === true;

    let user = this.findByExternalId(externalId);
    let created = false;
    if (!user && !requireActivation) {
      user = this.findByEmail(email);
      if (user) user.externalId = externalId; // Discourse links the existing account.
    }
    if (!user) {
      if (this.findByEmail(email)) {
        // Discourse fails validation (email taken) and renders its email_error text with a 500.
        throw new ForumError(
          'email_taken',
          500,
          `An account could not be registered with the email <b>${escapeHtml(email)}</b>. Please contact the site’s administrator.`,
          true,
        );
      }
      user = this.addUser({
        username: this.suggestUsername(f.username || f.name || email.split('@')[0]),
        name: f.name || null,
        email,
        externalId,
        avatarUrl: f.avatar_url || null,
        active: !requireActivation,
      });
      created = true;
    }

    this.applyGroupRules(user, f);
    if (!created) this.applyOverrides(user, f, email);
    if (!user.active && !requireActivation) user.active = true;

    const admin = readBool(f, 'admin');
    if (admin !== undefined) user.admin = admin;
    const moderator = readBool(f, 'moderator');
    if (moderator !== undefined) user.moderator = moderator;
    // Discourse saves the user (and its single_sign_on_record) on every payload it accepts.
    this.userChanged(user, created ? 'user_created' : 'user_updated');
    return user;
  }

  private applyOverrides(user: SimForumUser, f: Record<string, string>, email: string): void {
    if (this.authOverridesEmail && user.email !== email.toLowerCase()) {
      const other = this.findByEmail(email);
      if (!other || other === user) user.email = email.toLowerCase();
    }
    if (this.authOverridesUsername && f.username) {
      if (user.username.toLowerCase() !== f.username.toLowerCase()) {
        user.username = this.suggestUsername(f.username, user);
      } else if (user.username !== f.username) {
        user.username = f.username;
      }
    }
    if (this.authOverridesName && f.name && user.name !== f.name) user.name = f.name;
    const force = readBool(f, 'avatar_force_update') === true;
    if (f.avatar_url && (!user.avatarUrl || force || this.overridesAvatar))
      user.avatarUrl = f.avatar_url;
  }

  private canonicalGroups(list: string | undefined): string[] {
    if (!list) return [];
    const wanted = new Set(list.split(',').map((n) => n.toLowerCase()));
    return this.groups.filter((g) => wanted.has(g.toLowerCase()));
  }

  private applyGroupRules(user: SimForumUser, f: Record<string, string>): void {
    if (this.overridesGroups) {
      user.groups = this.canonicalGroups(f.groups);
      return;
    }
    const add = this.canonicalGroups(f.add_groups);
    const remove = new Set(this.canonicalGroups(f.remove_groups));
    const next = user.groups.filter((g) => !remove.has(g));
    for (const g of add) if (!next.includes(g)) next.push(g);
    user.groups = next;
  }

  /** Discourse's UserNameSuggester, simplified: sanitise to [A-Za-z0-9_.-], 3–20 chars, unique. */
  suggestUsername(source: string, forUser?: SimForumUser): string {
    let base = source
      .normalize('NFKD')
      .replace(/[\u0300-\u036f]/g, '')
      .replace(/[^A-Za-z0-9_.-]/g, '_')
      .replace(/[-_.]{2,}/g, (s) => s[0])
      .replace(/^[^A-Za-z0-9_]+/, '')
      .replace(/[^A-Za-z0-9]+$/, '');
    if (base.length > 20) base = base.slice(0, 20);
    while (base.length < 3) base += '1';
    const taken = (name: string) => {
      const other = this.findByUsername(name);
      return other !== undefined && other !== forUser;
    };
    if (!taken(base)) return base;
    for (let i = 1; ; i++) {
      const suffix = String(i);
      const candidate = base.slice(0, 20 - suffix.length) + suffix;
      if (!taken(candidate)) return candidate;
    }
  }
}
