import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  decodeBase64,
  isAcceptableBase64,
  parseRackQuery,
  readPayloadFields,
  verifySignature,
} from './discourse-payload';
import { ForumError } from './discourse-errors';
import type { DiscourseSimulator, SimForumUser } from './discourse-simulator';
import { readBody, safeDecode, safeEqual, sendJson, sendText } from './http-helpers';

const NOT_FOUND = {
  errors: ['The requested URL or resource could not be found.'],
  error_type: 'not_found',
};

/** Discourse's English texts (server.en.yml, `discourse_connect.*`) that sync_sso answers with. */
export const DISCOURSE_MESSAGES = {
  /** `discourse_connect.login_error`: any parse error, a bad signature included. */
  loginError: 'Login Error',
  /** `discourse_connect.blank_id_error`. */
  blankId: 'The `external_id` is required but was blank',
} as const;

/** Discourse's built-in `system` user (id -1), whom `Api-Username: system` acts as. */
const SYSTEM_USER = { id: -1, username: 'system', name: 'system', admin: true, moderator: true };

const INVALID_ACCESS = {
  errors: [
    'You are not permitted to view the requested resource. The API username or key is invalid.',
  ],
  error_type: 'invalid_access',
};

/**
 * The slice of Discourse's admin API that a DiscourseConnect provider uses: `sync_sso`, users by
 * external id, log-out, group members; `Api-Key` + `Api-Username` auth and the site-wide admin API
 * rate limit (one budget for all keys).
 */
export class SimulatedAdminApi {
  private calls: number[] = [];
  private readonly groupIds = new Map<string, number>();
  private nextGroupId = 41;

  constructor(private readonly forum: DiscourseSimulator) {}

  reset(): void {
    this.calls = [];
    this.groupIds.clear();
    this.nextGroupId = 41;
  }

  /** Stable numeric id for a group name (case-insensitive). */
  groupId(name: string): number {
    const key = name.toLowerCase();
    let id = this.groupIds.get(key);
    if (id === undefined) {
      id = this.nextGroupId++;
      this.groupIds.set(key, id);
    }
    return id;
  }

  private groupById(id: number): string | undefined {
    return this.forum.groups.find((g) => this.groupId(g) === id);
  }

  /** Handles admin API routes; false when the path is not one of them. */
  async route(req: IncomingMessage, res: ServerResponse, path: string, url: URL): Promise<boolean> {
    const method = req.method ?? 'GET';
    let m: RegExpExecArray | null;
    let handler: (() => Promise<void> | void) | undefined;
    if (method === 'POST' && path === '/admin/users/sync_sso')
      handler = () => this.syncSso(req, res);
    else if (
      method === 'GET' &&
      (m = /^\/(?:u|users)\/by-external\/([^/]+?)(?:\.json)?$/.exec(path))
    ) {
      const id = safeDecode(m[1]);
      handler = () => this.byExternal(res, id);
    } else if (
      method === 'GET' &&
      !path.includes('/by-external/') &&
      (m = /^\/(?:u|users)\/([^/]+?)\.json$/.exec(path))
    ) {
      // `users#show` by username (member lifecycle: telling an anonymized account from a deleted one).
      const username = safeDecode(m[1]);
      handler = () => this.byUsername(res, username);
    } else if (
      method === 'POST' &&
      (m = /^\/admin\/users\/(\d+)\/log_out(?:\.json)?$/.exec(path))
    ) {
      const id = Number(m[1]);
      handler = () => this.logOut(res, id);
    } else if (
      method === 'PUT' &&
      (m = /^\/admin\/users\/(\d+)\/(suspend|unsuspend|anonymize)(?:\.json)?$/.exec(path))
    ) {
      const id = Number(m[1]);
      const action = m[2] as 'suspend' | 'unsuspend' | 'anonymize';
      handler = () => this.lifecycle(req, res, id, action);
    } else if (method === 'DELETE' && (m = /^\/admin\/users\/(\d+)(?:\.json)?$/.exec(path))) {
      const id = Number(m[1]);
      handler = () => this.destroyUser(req, res, id);
    } else if (method === 'GET' && (m = /^\/groups\/([^/]+?)\.json$/.exec(path))) {
      const name = safeDecode(m[1]);
      handler = () => this.group(res, name);
    } else if (
      (method === 'PUT' || method === 'DELETE') &&
      (m = /^\/groups\/(\d+)\/members(?:\.json)?$/.exec(path))
    ) {
      const id = Number(m[1]);
      handler = () => this.members(req, res, id, method === 'PUT', url);
    } else if (method === 'GET' && (m = /^\/admin\/users\/(\d+)(?:\.json)?$/.exec(path))) {
      const id = Number(m[1]);
      handler = () => this.adminUser(res, id);
    } else if (method === 'GET' && /^\/admin\/site_settings(?:\.json)?$/.test(path)) {
      handler = () => this.siteSettings(res, url);
    } else if (
      method === 'GET' &&
      path === '/session/current.json' &&
      req.headers['api-key'] !== undefined
    ) {
      // An API request (no browser session involved): the user the key acts as.
      handler = () => this.currentUser(req, res);
    }
    if (!handler) return false;

    const f = this.forum;
    f.stats.apiRequests++;
    if (f.knobs.apiFailure) {
      await readBody(req);
      const { status, retryAfter, plainText } = f.knobs.apiFailure;
      const headers: Record<string, string> =
        retryAfter !== undefined ? { 'Retry-After': String(retryAfter) } : {};
      if (status === 429 && plainText) {
        sendText(
          res,
          429,
          'Slow down, too many requests from this IP address. Please retry again in 10 seconds.',
          headers,
        );
      } else if (status === 429) {
        this.rateLimited(res, retryAfter ?? 10);
      } else if (plainText || status >= 500) {
        sendText(
          res,
          status,
          status === 503 ? 'Service Unavailable' : 'Internal Server Error',
          headers,
        );
      } else {
        sendJson(res, status, { errors: [`Simulated failure ${status}`] }, headers);
      }
      return true;
    }
    if (!this.authenticate(req)) {
      await readBody(req);
      sendJson(res, 403, INVALID_ACCESS);
      return true;
    }
    const wait = this.takeBudget();
    if (wait > 0) {
      await readBody(req);
      f.stats.apiRateLimited++;
      this.rateLimited(res, wait);
      return true;
    }
    await handler();
    return true;
  }

  private rateLimited(res: ServerResponse, wait: number): void {
    sendJson(
      res,
      429,
      {
        errors: [
          `You’ve performed this action too many times. Please wait ${wait} seconds before trying again.`,
        ],
        error_type: 'rate_limit',
        extras: { wait_seconds: wait, time_left: `${wait} seconds` },
      },
      { 'Retry-After': String(wait) },
    );
  }

  private authenticate(req: IncomingMessage): boolean {
    return this.actingUser(req) !== undefined;
  }

  /** The admin the request acts as ('system' for the system user), or undefined when refused. */
  private actingUser(req: IncomingMessage): SimForumUser | 'system' | undefined {
    const key = this.forum.apiKey;
    const given = req.headers['api-key'];
    if (!key || typeof given !== 'string' || !safeEqual(given, key)) return undefined;
    const username = req.headers['api-username'];
    const userId = req.headers['api-user-id'];
    const externalId = req.headers['api-user-external-id'];
    let acting: SimForumUser | undefined;
    if (typeof username === 'string') {
      if (username.toLowerCase() === 'system') return 'system';
      acting = this.forum.findByUsername(username);
    } else if (typeof userId === 'string') {
      if (userId === '-1') return 'system';
      acting = this.forum.users.find((u) => String(u.id) === userId);
    } else if (typeof externalId === 'string') {
      acting = this.forum.findByExternalId(externalId);
    } else {
      return 'system'; // Discourse defaults to the system user for an all-users key.
    }
    return acting !== undefined && acting.admin && acting.active ? acting : undefined;
  }

  /** `GET /session/current.json` for an API request: the acting user, as `CurrentUserSerializer` shows it. */
  private currentUser(req: IncomingMessage, res: ServerResponse): void {
    const acting = this.actingUser(req);
    if (!acting) return sendJson(res, 403, INVALID_ACCESS);
    const u =
      acting === 'system'
        ? {
            ...SYSTEM_USER,
            avatar_template: '/images/discourse-logo-sketch-small.png',
            groups: [] as string[],
          }
        : {
            id: acting.id,
            username: acting.username,
            name: acting.name,
            admin: acting.admin,
            moderator: acting.moderator,
            avatar_template:
              acting.avatarUrl ??
              `/letter_avatar_proxy/v4/letter/${acting.username[0]?.toLowerCase() ?? 'x'}/9de0a6/{size}.png`,
            groups: acting.groups,
          };
    sendJson(res, 200, {
      current_user: {
        id: u.id,
        username: u.username,
        name: u.name,
        avatar_template: u.avatar_template,
        admin: u.admin,
        moderator: u.moderator,
        staff: u.admin || u.moderator,
        trust_level: 4,
        can_create_topic: true,
        groups: u.groups.map((g) => ({ id: this.groupId(g), name: g })),
      },
    });
  }

  /**
   * `GET /admin/site_settings.json`: the settings the simulator models, shaped as Discourse lists them
   * (values as strings; secret settings masked, never in clear). `filter_names[]` narrows the list.
   */
  private siteSettings(res: ServerResponse, url: URL): void {
    const f = this.forum;
    const bool = (setting: string, value: boolean, description: string, def = false) => ({
      setting,
      value: String(value),
      default: String(def),
      description,
      type: 'bool',
      category: 'login',
      secret: false,
    });
    const str = (
      setting: string,
      value: string | undefined,
      description: string,
      type = 'string',
    ) => ({
      setting,
      value: value ?? '',
      default: '',
      description,
      type,
      category: 'login',
      secret: false,
    });
    const int = (setting: string, value: number, def: number, description: string) => ({
      setting,
      value: String(value),
      default: String(def),
      description,
      type: 'integer',
      category: 'users',
      secret: false,
    });
    const all = [
      { ...str('title', f.title, 'The name of this site.'), category: 'required' },
      int(
        'min_username_length',
        f.usernameLengths.min,
        3,
        'Minimum username length in characters.',
      ),
      int(
        'max_username_length',
        f.usernameLengths.max,
        20,
        'Maximum username length in characters.',
      ),
      bool(
        'enable_discourse_connect',
        f.knobs.connectEnabled,
        'Enable sign on via DiscourseConnect.',
      ),
      str(
        'discourse_connect_url',
        f.connectUrl,
        'URL of DiscourseConnect endpoint (must include http:// or https://).',
      ),
      {
        ...str(
          'discourse_connect_secret',
          f.secret ? '********' : '',
          'Secret string used to cryptographically authenticate DiscourseConnect information.',
          'secret',
        ),
        secret: true,
      },
      str('logout_redirect', f.logoutRedirect, 'Location to redirect browser to after logout.'),
      bool(
        'discourse_connect_overrides_groups',
        f.overridesGroups,
        'Synchronize all manual group membership with groups specified in the groups attribute.',
      ),
      bool(
        'discourse_connect_overrides_avatar',
        f.overridesAvatar,
        'Overrides user avatar with value from DiscourseConnect payload.',
      ),
      bool(
        'auth_overrides_email',
        f.authOverridesEmail,
        'Overrides local email with external site email on every login.',
      ),
      bool(
        'auth_overrides_username',
        f.authOverridesUsername,
        'Overrides local username with external site username on every login.',
      ),
      bool(
        'auth_overrides_name',
        f.authOverridesName,
        'Overrides local full name with external site full name on every login.',
      ),
    ];
    const wanted = url.searchParams.getAll('filter_names[]');
    const list = wanted.length ? all.filter((s) => wanted.includes(s.setting)) : all;
    sendJson(res, 200, { site_settings: list });
  }

  /** Sliding one-minute window shared by every key; returns seconds to wait, 0 when allowed. */
  private takeBudget(): number {
    const limit = this.forum.apiRateLimitPerMinute;
    if (!limit || limit <= 0 || !Number.isFinite(limit)) return 0;
    const now = this.forum.now();
    let expired = 0;
    while (expired < this.calls.length && now - this.calls[expired] >= 60_000) expired++;
    if (expired > 0) this.calls.splice(0, expired);
    if (this.calls.length >= limit)
      return Math.max(1, Math.ceil((this.calls[0] + 60_000 - now) / 1000));
    this.calls.push(now);
    return 0;
  }

  private userJson(u: SimForumUser): Record<string, unknown> {
    return {
      id: u.id,
      username: u.username,
      name: u.name,
      avatar_template:
        u.avatarUrl ??
        `/letter_avatar_proxy/v4/letter/${u.username[0]?.toLowerCase() ?? 'x'}/9de0a6/{size}.png`,
      active: u.active,
      admin: u.admin,
      moderator: u.moderator,
      email: u.email,
      external_id: u.externalId,
      groups: u.groups.map((g) => ({ id: this.groupId(g), name: g, automatic: false })),
      single_sign_on_record: u.externalId
        ? { external_id: u.externalId, external_email: u.email }
        : null,
      // The user serializers show the suspension fields only while the user is suspended.
      ...(this.forum.isSuspended(u)
        ? {
            suspended_till: new Date(u.suspendedTill!).toISOString(),
            suspend_reason: u.suspendReason ?? null,
          }
        : {}),
    };
  }

  /**
   * `POST /admin/users/sync_sso` as Discourse's `Admin::UsersController#sync_sso` answers it: 404
   * with an empty body when DiscourseConnect is off; 422 `{failed, message}` with the translated
   * `discourse_connect.login_error` text for any parse error, a bad signature included (the parser's
   * own message never reaches the client); 422 with `blank_id_error` for a blank `external_id`; 403
   * with the validation message for an invalid user record; else 200 with the user.
   */
  private async syncSso(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const f = this.forum;
    const raw = await readBody(req);
    f.stats.syncSsoCalls++;
    if (!f.knobs.connectEnabled) {
      res.writeHead(404, { 'content-length': '0' });
      res.end();
      return;
    }
    const loginError = () =>
      sendJson(res, 422, { failed: 'FAILED', message: DISCOURSE_MESSAGES.loginError });
    const contentType = String(req.headers['content-type'] ?? '').toLowerCase();
    let body: { sso?: unknown; sig?: unknown };
    if (contentType.startsWith('application/json')) {
      try {
        body = JSON.parse(raw) as typeof body;
      } catch {
        return sendJson(res, 400, { errors: ['Invalid JSON'], error_type: 'invalid_parameters' });
      }
    } else {
      const form = new URLSearchParams(raw);
      body = { sso: form.get('sso') ?? undefined, sig: form.get('sig') ?? undefined };
    }
    // Discourse parses "sso=#{params[:sso]}&sig=#{params[:sig]}": missing ones are blank, a bad signature.
    const ssoParam = typeof body.sso === 'string' ? body.sso : '';
    const sigParam = typeof body.sig === 'string' ? body.sig : '';
    // Discourse rebuilds "sso=…&sig=…" from the already-decoded params and parses it again,
    // so the payload is form-decoded twice: a "+" in the base64 turns into a space.
    let sso: string;
    let sig: string | null;
    try {
      const again = parseRackQuery(`sso=${ssoParam}&sig=${sigParam}`);
      const s = again.get('sso');
      const g = again.get('sig');
      sso = typeof s === 'string' ? s : '';
      sig = typeof g === 'string' ? g : null;
    } catch {
      return loginError();
    }
    if (!isAcceptableBase64(sso) || !verifySignature(f.secret, sso, sig)) return loginError();
    const parsed = readPayloadFields(decodeBase64(sso));
    if (!parsed.ok) return loginError();
    try {
      const user = f.applyPayload(parsed.fields);
      sendJson(res, 200, this.userJson(user));
    } catch (e) {
      if (!(e instanceof ForumError)) throw e;
      if (e.kind === 'external_id')
        return sendJson(res, 422, { failed: 'FAILED', message: DISCOURSE_MESSAGES.blankId });
      sendJson(res, 403, {
        failed: 'FAILED',
        message: `Validation failed: ${
          e.kind === 'email_taken'
            ? 'Primary email has already been taken'
            : 'Primary email is invalid'
        }`,
      });
    }
  }

  private byExternal(res: ServerResponse, externalId: string): void {
    const u = this.forum.findByExternalId(externalId);
    if (!u) return sendJson(res, 404, NOT_FOUND);
    sendJson(res, 200, { user: this.userJson(u) });
  }

  private byUsername(res: ServerResponse, username: string): void {
    const u = this.forum.findByUsername(username);
    if (!u) return sendJson(res, 404, NOT_FOUND);
    sendJson(res, 200, { user: this.userJson(u) });
  }

  private adminUser(res: ServerResponse, id: number): void {
    const u = this.forum.users.find((x) => x.id === id);
    if (!u) return sendJson(res, 404, NOT_FOUND);
    sendJson(res, 200, this.userJson(u));
  }

  private logOut(res: ServerResponse, id: number): void {
    const u = this.forum.users.find((x) => x.id === id);
    if (!u) return sendJson(res, 404, NOT_FOUND);
    this.forum.logOutUser(id);
    this.forum.stats.apiLogOuts++;
    sendJson(res, 200, { success: 'OK' });
  }

  // Member lifecycle: suspend, unsuspend, anonymize, delete.
  /**
   * `PUT /admin/users/:id/suspend|unsuspend|anonymize` as `Admin::UsersController` answers them.
   * Staff accounts cannot be suspended or anonymized (403, Discourse's guardian). Suspending ends the
   * user's sessions and sends `user_suspended`; unsuspending sends `user_unsuspended`. Anonymizing
   * renames the user `anon<digits>`, clears name, avatar and email, removes the DiscourseConnect
   * record (the same external_id then creates a new account) and ends the sessions; Discourse has no
   * webhook event for it.
   */
  private async lifecycle(
    req: IncomingMessage,
    res: ServerResponse,
    id: number,
    action: 'suspend' | 'unsuspend' | 'anonymize',
  ): Promise<void> {
    const form = await readForm(req);
    const u = this.forum.users.find((x) => x.id === id);
    if (!u) return sendJson(res, 404, NOT_FOUND);
    if (u.admin || u.moderator) return sendJson(res, 403, INVALID_ACCESS);
    const f = this.forum;
    if (action === 'suspend') {
      const until = Date.parse(form.get('suspend_until') ?? '');
      if (!Number.isFinite(until)) {
        return sendJson(res, 400, {
          errors: ['param is missing or the value is empty: suspend_until'],
          error_type: 'invalid_parameters',
        });
      }
      u.suspendedTill = until;
      u.suspendedAt = f.now();
      u.suspendReason = form.get('reason') ?? null;
      f.logOutUser(u.id);
      f.stats.apiLifecycleCalls.push({ action, userId: u.id });
      f.userChanged(u, 'user_suspended');
      return sendJson(res, 200, {
        suspension: {
          suspended: true,
          suspend_reason: u.suspendReason,
          full_suspend_reason: u.suspendReason,
          suspended_till: new Date(until).toISOString(),
          suspended_at: new Date(u.suspendedAt).toISOString(),
        },
      });
    }
    if (action === 'unsuspend') {
      u.suspendedTill = null;
      u.suspendedAt = null;
      u.suspendReason = null;
      f.stats.apiLifecycleCalls.push({ action, userId: u.id });
      f.userChanged(u, 'user_unsuspended');
      return sendJson(res, 200, { suspension: { suspended: false } });
    }
    let username: string;
    do username = `anon${Math.floor(Math.random() * 100_000_000)}`;
    while (f.findByUsername(username));
    u.username = username;
    u.name = null;
    u.email = `${username}@anonymized.invalid`;
    u.avatarUrl = null;
    u.externalId = null;
    f.logOutUser(u.id);
    f.stats.apiLifecycleCalls.push({ action, userId: u.id });
    sendJson(res, 200, { success: 'OK', username });
  }

  /**
   * `DELETE /admin/users/:id.json`: staff cannot be deleted (403); `{deleted: true}` after the
   * `user_destroyed` webhook (its body made before the user is gone, as `UserDestroyer` does).
   */
  private async destroyUser(req: IncomingMessage, res: ServerResponse, id: number): Promise<void> {
    await readBody(req);
    const u = this.forum.users.find((x) => x.id === id);
    if (!u) return sendJson(res, 404, NOT_FOUND);
    if (u.admin || u.moderator) return sendJson(res, 403, INVALID_ACCESS);
    this.forum.userChanged(u, 'user_destroyed');
    this.forum.removeUser(u.id);
    this.forum.stats.apiLifecycleCalls.push({ action: 'delete', userId: u.id });
    sendJson(res, 200, { deleted: true });
  }
  // End of member lifecycle.

  private group(res: ServerResponse, name: string): void {
    const g = this.forum.groups.find((x) => x.toLowerCase() === name.toLowerCase());
    if (!g) return sendJson(res, 404, NOT_FOUND);
    const count = this.forum.users.filter((u) => u.groups.includes(g)).length;
    sendJson(res, 200, {
      group: {
        id: this.groupId(g),
        name: g,
        full_name: null,
        automatic: false,
        user_count: count,
        visibility_level: 0,
      },
      extras: { visible_group_names: [...this.forum.groups] },
    });
  }

  private async members(
    req: IncomingMessage,
    res: ServerResponse,
    id: number,
    add: boolean,
    url: URL,
  ): Promise<void> {
    const raw = await readBody(req);
    const group = this.groupById(id);
    if (!group) return sendJson(res, 404, NOT_FOUND);
    let usernames: string | null;
    if (String(req.headers['content-type'] ?? '').startsWith('application/json')) {
      try {
        const j = JSON.parse(raw) as { usernames?: unknown };
        usernames = typeof j.usernames === 'string' ? j.usernames : null;
      } catch {
        usernames = null;
      }
    } else {
      usernames = new URLSearchParams(raw).get('usernames') ?? url.searchParams.get('usernames');
    }
    const names = (usernames ?? '')
      .split(',')
      .map((n) => n.trim())
      .filter(Boolean);
    const users = names.map((n) => this.forum.findByUsername(n));
    if (names.length === 0 || users.some((u) => !u)) {
      return sendJson(res, 400, {
        errors: ['You supplied invalid parameters to the request: usernames'],
        error_type: 'invalid_parameters',
      });
    }
    const found = users as SimForumUser[];
    if (add) {
      const toAdd = found.filter((u) => !u.groups.includes(group));
      if (toAdd.length === 0) {
        return sendJson(res, 422, {
          errors: [
            `${found.map((u) => u.username).join(', ')} ${found.length === 1 ? 'is' : 'are'} already a member of this group`,
          ],
        });
      }
      for (const u of toAdd) u.groups.push(group);
      this.forum.stats.apiGroupChanges++;
      for (const u of toAdd) this.forum.userChanged(u, 'user_updated');
      return sendJson(res, 200, {
        success: 'OK',
        usernames: toAdd.map((u) => u.username),
        emails: [],
      });
    }
    const removed = found.filter((u) => u.groups.includes(group));
    for (const u of removed) u.groups = u.groups.filter((g) => g !== group);
    if (removed.length > 0) this.forum.stats.apiGroupChanges++;
    for (const u of removed) this.forum.userChanged(u, 'user_updated');
    sendJson(res, 200, {
      success: 'OK',
      usernames: removed.map((u) => u.username),
      skipped_usernames: found.filter((u) => !removed.includes(u)).map((u) => u.username),
    });
  }
}

/** A form body (or a JSON object of strings), as Rails' params read either. */
async function readForm(req: IncomingMessage): Promise<Map<string, string>> {
  const raw = await readBody(req);
  const out = new Map<string, string>();
  if (String(req.headers['content-type'] ?? '').startsWith('application/json')) {
    try {
      const j = JSON.parse(raw) as Record<string, unknown>;
      for (const [k, v] of Object.entries(j ?? {})) if (typeof v === 'string') out.set(k, v);
    } catch {
      // not JSON: no params
    }
    return out;
  }
  for (const [k, v] of new URLSearchParams(raw)) out.set(k, v);
  return out;
}
