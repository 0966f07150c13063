import { createHmac, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  escapeHtml,
  parseCookies,
  randomHex,
  readBody,
  redirect,
  safeEqual,
  sendHtml,
  SimulatedServer,
} from './http-helpers';

/**
 * A simulated Vanilla forum, the consumer side of jsConnect v3 as Vanilla's reference library
 * (`JsConnectServer.php`) and its jsConnect plugin behave: `/sso` and `/entry/jsconnect` build the
 * signed request and keep its nonce in a cookie; the answer comes back in a URL fragment, which a
 * small page script on `/entry/jsconnect-redirect` hands to `/entry/connect/jsconnect`, where the
 * token, the nonce and the user are checked. Its JWT code (base64url, HMAC) is written here with
 * node:crypto and shares nothing with the library.
 */

/** The HMAC algorithms this simulator signs and checks with. */
export type SimVanillaAlgorithm = 'HS256' | 'HS384' | 'HS512';

export interface VanillaSimulatorOptions {
  /** The jsConnect connection's client id. */
  clientId: string;
  /** The connection's secret. */
  secret: string;
  /** The site's authenticate URL, e.g. `http://127.0.0.1:3000/vanilla/connect`. */
  authenticateUrl?: string;
  /** The site's sign-out URL, where the forum's sign-out sends the browser. Default none. */
  signOutUrl?: string;
  /** The connection's algorithm. Default HS256. */
  algorithm?: SimVanillaAlgorithm;
  /** The connection is the forum's default sign-in method (`/sso` works). Default true. */
  defaultConnection?: boolean;
  /** AutoConnect: link an existing forum account by email. Default false. */
  autoConnect?: boolean;
  /** Origins a sign-out `target` may point at, besides the forum's own. Default none. */
  trustedOrigins?: string[];
  /** Subfolder the forum is installed in, e.g. `/forum`. Default none. */
  basePath?: string;
  /** Roles that exist on the forum. Default `Member`, `Moderator`, `Administrator`, `Applicant`. */
  roles?: string[];
  /** Site title. Default `'Simulated Vanilla'`. */
  title?: string;
  /** Clock in ms. Default `Date.now`. */
  now?: () => number;
}

export interface SimVanillaUser {
  id: number;
  name: string;
  email: string;
  photo: string | null;
  roles: string[];
  /** The site's id of the member (jsConnect `u.id`), once connected. */
  uniqueId: string | null;
}

export interface VanillaStats {
  /** Requests sent to the authenticate URL. */
  requests: number;
  /** Answers that ended with the browser signed in. */
  logins: number;
  /** Guest answers (`u: {}`). */
  guests: number;
  /** Answers refused (bad token, nonce, user). */
  errors: number;
  /** The `u` of the last answer whose token was valid. */
  lastUser: Record<string, unknown> | null;
  /** The header of the last valid answer. */
  lastHeader: Record<string, unknown> | null;
}

interface VanillaSession {
  userId?: number;
  transientKey: string;
}

const SESSION_COOKIE = 'Vanilla';
const NONCE_COOKIE = 'Vanilla-jsconnect';
const REQUEST_LIFETIME_SECONDS = 600;
const HASHES: Record<SimVanillaAlgorithm, string> = {
  HS256: 'sha256',
  HS384: 'sha384',
  HS512: 'sha512',
};

const defaultStats = (): VanillaStats => ({
  requests: 0,
  logins: 0,
  guests: 0,
  errors: 0,
  lastUser: null,
  lastHeader: null,
});

const b64url = (data: string | Buffer): string => Buffer.from(data).toString('base64url');

/** A compact JWS signed with `secret`, as Vanilla signs its request (header `kid, typ, alg`). */
export function signVanillaJwt(
  claims: object,
  kid: string,
  secret: string,
  alg: SimVanillaAlgorithm = 'HS256',
): string {
  const input = `${b64url(JSON.stringify({ kid, typ: 'JWT', alg }))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${createHmac(HASHES[alg], secret).update(input).digest('base64url')}`;
}

/**
 * Checks a compact JWS signed with `secret` and `alg` (nothing else is accepted): returns its
 * header and claims, or a reason it was refused.
 */
export function readVanillaJwt(
  token: string,
  secret: string,
  alg: SimVanillaAlgorithm,
): { header: Record<string, unknown>; claims: Record<string, unknown> } | { error: string } {
  const parts = token.split('.');
  if (parts.length !== 3) return { error: 'Wrong number of segments' };
  let header: Record<string, unknown>;
  let claims: Record<string, unknown>;
  try {
    header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'));
    claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  } catch {
    return { error: 'Malformed token' };
  }
  if (header.alg !== alg) return { error: 'Algorithm not allowed' };
  const expected = createHmac(HASHES[alg], secret)
    .update(`${parts[0]}.${parts[1]}`)
    .digest('base64url');
  if (!safeEqual(expected, parts[2])) return { error: 'Signature verification failed' };
  return { header, claims };
}

/** A simulated Vanilla forum with one jsConnect connection. */
export class VanillaSimulator extends SimulatedServer {
  clientId: string;
  secret: string;
  authenticateUrl: string | undefined;
  signOutUrl: string | undefined;
  algorithm: SimVanillaAlgorithm;
  defaultConnection: boolean;
  autoConnect: boolean;
  trustedOrigins: string[];
  title: string;
  roles: string[];
  now: () => number;
  /** Origin of the simulator (set by `listen`). */
  baseUrl = '';
  basePath: string;

  readonly users: SimVanillaUser[] = [];
  readonly stats: VanillaStats = defaultStats();
  private readonly sessions = new Map<string, VanillaSession>();
  private nextUserId = 1;

  constructor(options: VanillaSimulatorOptions) {
    super();
    this.clientId = options.clientId;
    this.secret = options.secret;
    this.authenticateUrl = options.authenticateUrl;
    this.signOutUrl = options.signOutUrl;
    this.algorithm = options.algorithm ?? 'HS256';
    this.defaultConnection = options.defaultConnection ?? true;
    this.autoConnect = options.autoConnect ?? false;
    this.trustedOrigins = [...(options.trustedOrigins ?? [])];
    this.title = options.title ?? 'Simulated Vanilla';
    this.roles = [...(options.roles ?? ['Member', 'Moderator', 'Administrator', 'Applicant'])];
    this.now = options.now ?? Date.now;
    this.basePath = (options.basePath ?? '').replace(/\/+$/, '');
  }

  /** Where the forum lives: `baseUrl` plus the subfolder. */
  get forumRootUrl(): string {
    return this.baseUrl + this.basePath;
  }

  /** Creates a forum account directly (as if it existed before jsConnect). */
  addUser(u: Partial<SimVanillaUser> & { name: string; email: string }): SimVanillaUser {
    const user: SimVanillaUser = {
      id: this.nextUserId++,
      name: u.name,
      email: u.email,
      photo: u.photo ?? null,
      roles: [...(u.roles ?? ['Member'])],
      uniqueId: u.uniqueId ?? null,
    };
    this.users.push(user);
    return user;
  }

  findByUniqueId(id: string): SimVanillaUser | undefined {
    return this.users.find((u) => u.uniqueId === id);
  }

  /** Users, sessions and stats back to their initial state. */
  reset(): void {
    this.users.length = 0;
    this.sessions.clear();
    this.nextUserId = 1;
    Object.assign(this.stats, defaultStats());
  }

  protected override onListening(baseUrl: string): void {
    this.baseUrl = baseUrl;
  }

  private path(p: string): string {
    return this.basePath + p;
  }

  private session(req: IncomingMessage, res: ServerResponse | null): VanillaSession | undefined {
    const id = parseCookies(req.headers.cookie).get(SESSION_COOKIE);
    const existing = id === undefined ? undefined : this.sessions.get(id);
    if (existing || !res) return existing;
    const created: VanillaSession = { transientKey: randomHex(12) };
    const newId = randomHex(16);
    this.sessions.set(newId, created);
    appendCookie(
      res,
      `${SESSION_COOKIE}=${newId}; Path=${this.basePath || '/'}; HttpOnly; SameSite=Lax`,
    );
    return created;
  }

  private currentUser(req: IncomingMessage): SimVanillaUser | undefined {
    const id = this.session(req, null)?.userId;
    return id === undefined ? undefined : this.users.find((u) => u.id === id);
  }

  protected override async route(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
  ): Promise<void> {
    let path = url.pathname;
    if (this.basePath) {
      if (path === this.basePath) path = '/';
      else if (path.startsWith(`${this.basePath}/`)) path = path.slice(this.basePath.length);
      else return this.page(req, res, 404, 'Page not found', '<p>Not found.</p>');
    }
    const q = url.searchParams;
    const method = req.method ?? 'GET';
    if (method === 'GET') {
      if (path === '/' || path === '/discussions') return this.home(req, res);
      const discussion = /^\/discussion\/(\d+)(?:\/[^/]*)?$/.exec(path);
      if (discussion) return this.discussion(req, res, discussion[1]);
      if (path === '/sso') {
        if (!this.defaultConnection) {
          return this.page(
            req,
            res,
            400,
            'No default sign-in',
            '<p id="error">No jsConnect connection is the default sign-in method; use /entry/jsconnect?client_id=.</p>',
          );
        }
        return this.startSignIn(req, res, targetOf(q));
      }
      if (path === '/entry/jsconnect') {
        if (q.get('client_id') !== this.clientId) {
          return this.page(
            req,
            res,
            400,
            'Unknown connection',
            '<p id="error">Unknown client_id.</p>',
          );
        }
        return this.startSignIn(req, res, targetOf(q));
      }
      if (path === '/entry/signin') return this.startSignIn(req, res, targetOf(q));
      if (path === '/entry/jsconnect-redirect') return this.redirectPage(req, res);
      if (path === '/entry/connect/jsconnect') return this.connect(req, res, q);
      if (path === '/entry/signout') return this.signOut(req, res, q);
    }
    if (method === 'POST' && path === '/entry/signout') {
      const form = new URLSearchParams(await readBody(req, 64 * 1024));
      return this.signOut(req, res, form);
    }
    return this.page(req, res, 404, 'Page not found', '<p>Not found.</p>');
  }

  // ---------------------------------------------------------------- jsConnect

  /** Builds the signed request, keeps its nonce in a cookie, sends the browser to the site. */
  private startSignIn(req: IncomingMessage, res: ServerResponse, target: string): void {
    if (!this.authenticateUrl) {
      return this.page(
        req,
        res,
        500,
        'jsConnect is not set up',
        '<p id="error">No authenticate URL.</p>',
      );
    }
    const nonce = randomBytes(15).toString('base64url');
    const iat = Math.floor(this.now() / 1000);
    const jwt = signVanillaJwt(
      {
        st: { n: nonce, t: target },
        rurl: `${this.forumRootUrl}/entry/jsconnect-redirect?client_id=${encodeURIComponent(this.clientId)}`,
        v: 'vanilla:3',
        iat,
        exp: iat + REQUEST_LIFETIME_SECONDS,
      },
      this.clientId,
      this.secret,
      this.algorithm,
    );
    appendCookie(
      res,
      `${NONCE_COOKIE}=${nonce}; Path=${this.basePath || '/'}; HttpOnly; SameSite=Lax`,
    );
    this.stats.requests++;
    const sep = this.authenticateUrl.includes('?') ? '&' : '?';
    redirect(res, `${this.authenticateUrl}${sep}jwt=${jwt}`);
  }

  /** The page the answer arrives on: its script hands the fragment's token to the server. */
  private redirectPage(req: IncomingMessage, res: ServerResponse): void {
    const connect = `${this.path('/entry/connect/jsconnect')}?client_id=${encodeURIComponent(this.clientId)}`;
    sendHtml(
      res,
      200,
      `Signing in - ${this.title}`,
      `<p id="jsconnect-wait">Signing you in…</p><script>
(function () {
  var m = /[#&]jwt=([^&]+)/.exec(location.hash);
  location.replace(${JSON.stringify(connect)} + '&jwt=' + (m ? m[1] : ''));
})();
</script>`,
    );
  }

  /** Checks the answer: token, connection, expiry, the nonce against the cookie; then the user. */
  private connect(req: IncomingMessage, res: ServerResponse, q: URLSearchParams): void {
    const fail = (message: string): void => {
      this.stats.errors++;
      this.page(req, res, 400, 'Sign-in failed', `<p id="error">${escapeHtml(message)}</p>`);
    };
    const token = q.get('jwt') ?? '';
    const nonce = parseCookies(req.headers.cookie).get(NONCE_COOKIE);
    // The nonce is single use: forgotten whatever happens next.
    appendCookie(res, `${NONCE_COOKIE}=; Path=${this.basePath || '/'}; Max-Age=0`);
    if (q.get('client_id') !== this.clientId) return fail('Unknown client_id.');
    const read = readVanillaJwt(token, this.secret, this.algorithm);
    if ('error' in read) return fail(read.error);
    const { header, claims } = read;
    if (header.kid !== this.clientId) return fail('The answer names another connection.');
    const now = Math.floor(this.now() / 1000);
    if (typeof claims.exp !== 'number' || claims.exp < now) return fail('Expired token');
    if (typeof claims.iat !== 'number' || claims.exp - claims.iat > REQUEST_LIFETIME_SECONDS) {
      return fail('The answer is valid for too long.');
    }
    const st = claims.st as { n?: unknown; t?: unknown } | undefined;
    if (!nonce || typeof st?.n !== 'string' || !safeEqual(st.n, nonce)) {
      return fail('The nonce does not match this browser (sign-in started elsewhere or twice).');
    }
    this.stats.lastHeader = header;
    const u = claims.u as Record<string, unknown> | undefined;
    if (!u || typeof u !== 'object') return fail('The answer has no user.');
    this.stats.lastUser = u;
    const target =
      typeof st.t === 'string' && st.t.startsWith('/') && !st.t.startsWith('//') ? st.t : '/';
    if (u.id === undefined) {
      this.stats.guests++;
      return this.page(
        req,
        res,
        200,
        'Sign in',
        '<p id="guest">You are not signed in on the site.</p>',
      );
    }
    const user = this.userFor(u);
    if (typeof user === 'string') return fail(user);
    const session = this.session(req, res)!;
    session.userId = user.id;
    this.stats.logins++;
    redirect(res, this.path(target));
  }

  /** Maps the answer's user by id, else by email with AutoConnect, else creates one. */
  private userFor(u: Record<string, unknown>): SimVanillaUser | string {
    const id = String(u.id);
    const name = typeof u.name === 'string' ? u.name : '';
    const email = typeof u.email === 'string' ? u.email : '';
    if (!id || !name || !email) return 'The answer lacks an id, a name or an email.';
    const roles = Array.isArray(u.roles)
      ? u.roles
          .map(String)
          .filter((r) => this.roles.some((x) => x.toLowerCase() === r.toLowerCase()))
      : undefined;
    let user = this.findByUniqueId(id);
    if (!user) {
      const byEmail = this.users.find((x) => x.email.toLowerCase() === email.toLowerCase());
      if (byEmail) {
        if (!this.autoConnect) {
          return 'An account with this email exists: enter its forum password to connect it (AutoConnect is off).';
        }
        byEmail.uniqueId = id;
        user = byEmail;
      }
    }
    if (!user) {
      if (!/^[A-Za-z0-9_]{3,20}$/.test(name)) return `The name "${name}" is not a valid username.`;
      if (this.users.some((x) => x.name.toLowerCase() === name.toLowerCase())) {
        return `The name "${name}" is taken.`;
      }
      user = this.addUser({ name, email, uniqueId: id, roles: roles ?? ['Member'] });
    }
    if (typeof u.photo === 'string') user.photo = u.photo;
    // jsConnect's roles replace the member's roles on every sign-in.
    if (roles) user.roles = roles;
    return user;
  }

  /** Signs out: with the session's transient key at once, else after a confirmation button. */
  private signOut(req: IncomingMessage, res: ServerResponse, params: URLSearchParams): void {
    const session = this.session(req, null);
    const target = params.get('target') ?? params.get('Target') ?? '';
    if (session?.userId !== undefined) {
      const key = params.get('TransientKey') ?? '';
      // The site's own sign-out link carries no transient key: Vanilla asks first.
      if (!safeEqual(key, session.transientKey)) {
        return this.page(
          req,
          res,
          200,
          'Sign out',
          `<form method="post" action="${escapeHtml(this.path('/entry/signout'))}">` +
            `<input type="hidden" name="TransientKey" value="${escapeHtml(session.transientKey)}">` +
            `<input type="hidden" name="target" value="${escapeHtml(target)}">` +
            '<p>Are you sure you want to sign out?</p><button type="submit" id="confirm-signout">Sign Out</button></form>',
        );
      }
      delete session.userId;
    }
    if (target && this.isTrusted(target)) return redirect(res, target);
    if (this.signOutUrl) return redirect(res, this.signOutUrl);
    redirect(res, this.path('/'));
  }

  private isTrusted(target: string): boolean {
    if (target.startsWith('/') && !target.startsWith('//')) return true;
    try {
      const origin = new URL(target).origin;
      return origin === this.baseUrl || this.trustedOrigins.includes(origin);
    } catch {
      return false;
    }
  }

  // ---------------------------------------------------------------- pages

  private header(req: IncomingMessage, here: string): string {
    const user = this.currentUser(req);
    const title = `<header><h1><a href="${escapeHtml(this.path('/'))}">${escapeHtml(this.title)}</a></h1>`;
    if (!user) {
      const signIn = `${this.path('/entry/signin')}?target=${encodeURIComponent(here)}`;
      return `${title}<p id="session-status">Not signed in. <a id="signin" href="${escapeHtml(signIn)}">Sign In</a></p></header>`;
    }
    const key = this.session(req, null)!.transientKey;
    const signOut = `${this.path('/entry/signout')}?TransientKey=${encodeURIComponent(key)}`;
    const photo = user.photo
      ? `<img class="avatar" id="current-photo" src="${escapeHtml(user.photo)}" alt="avatar"> `
      : '';
    return (
      `${title}<div id="session-status">${photo}Signed in as <strong><span id="current-user">${escapeHtml(user.name)}</span></strong>` +
      `<ul><li>Email: <span id="current-email">${escapeHtml(user.email)}</span></li>` +
      `<li>Roles: <span id="current-roles">${escapeHtml(user.roles.join(', '))}</span></li>` +
      `<li>Site id: <span id="current-unique-id">${escapeHtml(user.uniqueId ?? '')}</span></li></ul>` +
      `<a id="signout" href="${escapeHtml(signOut)}">Sign Out</a></div></header>`
    );
  }

  private home(req: IncomingMessage, res: ServerResponse): void {
    this.page(
      req,
      res,
      200,
      this.title,
      `<main><h2>Recent Discussions</h2><ul><li><a href="${escapeHtml(this.path('/discussion/1/welcome'))}">Welcome</a></li></ul></main>`,
      '/',
    );
  }

  private discussion(req: IncomingMessage, res: ServerResponse, id: string): void {
    this.page(
      req,
      res,
      200,
      `Discussion ${id} - ${this.title}`,
      `<main><h2 id="discussion-title" data-discussion-id="${escapeHtml(id)}">Discussion ${escapeHtml(id)}</h2></main>`,
      `/discussion/${id}`,
    );
  }

  private page(
    req: IncomingMessage,
    res: ServerResponse,
    status: number,
    title: string,
    body: string,
    here = '/',
  ): void {
    sendHtml(res, status, title, this.header(req, here) + body);
  }
}

/** The `target` of a sign-in start: a path on the forum, else its home. */
function targetOf(q: URLSearchParams): string {
  const target = q.get('target') ?? q.get('Target') ?? '/';
  return target.startsWith('/') && !target.startsWith('//') ? target : '/';
}

/** Adds a `Set-Cookie` header next to any already set. */
function appendCookie(res: ServerResponse, cookie: string): void {
  const existing = res.getHeader('Set-Cookie');
  const list =
    existing === undefined ? [] : Array.isArray(existing) ? existing : [String(existing)];
  res.setHeader('Set-Cookie', [...list, cookie]);
}
