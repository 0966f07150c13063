import { createHmac } from 'node:crypto';
import { DiscourseSimulator } from './discourse-simulator';
import { decodeBase64, encodeBase64, parseRackQuery, verifySignature } from './discourse-payload';

/** `Response#json()` typed loosely for assertions. */
const json = (res: Response): Promise<any> => res.json();

const SECRET = 'forum-shared-secret-0123456789';
const CONNECT_URL = 'http://127.0.0.1:3000/discourse/sso';

/** The test signs on its own: no code shared with the simulator. */
function sign(b64: string, secret = SECRET): string {
  return createHmac('sha256', secret).update(b64).digest('hex');
}

/** A browser: one cookie jar, manual redirects. */
class Browser {
  cookie = '';
  async get(url: string): Promise<Response> {
    const res = await fetch(url, {
      redirect: 'manual',
      headers: this.cookie ? { Cookie: this.cookie } : {},
    });
    this.take(res);
    return res;
  }
  async post(url: string): Promise<Response> {
    const res = await fetch(url, {
      method: 'POST',
      redirect: 'manual',
      headers: {
        ...(this.cookie ? { Cookie: this.cookie } : {}),
        'Content-Type': 'application/x-www-form-urlencoded',
      },
      body: '',
    });
    this.take(res);
    return res;
  }
  private take(res: Response): void {
    const set = res.headers.get('set-cookie');
    if (set) this.cookie = set.split(';')[0];
  }
}

describe('DiscourseSimulator', () => {
  const sim = new DiscourseSimulator({ secret: SECRET, connectUrl: CONNECT_URL });
  let base: string;

  beforeAll(async () => {
    base = await sim.listen(0);
  });
  afterAll(() => sim.close());
  afterEach(() => {
    sim.reset();
    sim.secret = SECRET;
    sim.connectUrl = CONNECT_URL;
    sim.logoutRedirect = undefined;
    sim.overridesGroups = false;
    sim.overridesAvatar = false;
    sim.authOverridesEmail = sim.authOverridesName = sim.authOverridesUsername = false;
    sim.legacyBase64Newlines = false;
  });

  /** Starts a login in `browser`; returns the nonce and the return_sso_url Discourse sent. */
  async function start(
    browser: Browser,
    returnPath = '/',
  ): Promise<{ nonce: string; returnSsoUrl: string; location: string }> {
    const res = await browser.get(
      `${base}/session/sso?return_path=${encodeURIComponent(returnPath)}`,
    );
    expect(res.status).toBe(302);
    const location = res.headers.get('location')!;
    expect(location.startsWith(CONNECT_URL + '?')).toBe(true);
    const q = new URL(location).searchParams;
    const sso = q.get('sso')!;
    expect(q.get('sig')).toBe(sign(sso));
    const payload = new URLSearchParams(Buffer.from(sso, 'base64').toString('utf8'));
    return { nonce: payload.get('nonce')!, returnSsoUrl: payload.get('return_sso_url')!, location };
  }

  function reply(fields: Record<string, string>, secret = SECRET): string {
    const sso = Buffer.from(new URLSearchParams(fields).toString()).toString('base64');
    return new URLSearchParams({ sso, sig: sign(sso, secret) }).toString();
  }

  async function login(
    browser: Browser,
    fields: Record<string, string>,
    returnPath = '/',
  ): Promise<Response> {
    const { nonce, returnSsoUrl } = await start(browser, returnPath);
    return browser.get(`${returnSsoUrl}?${reply({ nonce, ...fields })}`);
  }

  async function current(browser: Browser): Promise<Record<string, unknown> | null> {
    const res = await browser.get(`${base}/session/current.json`);
    if (res.status === 404) return null;
    return (await json(res)).current_user;
  }

  const ava = {
    external_id: '293847561029384756',
    email: 'ava@example.com',
    username: 'ava.migrated',
    name: 'Ava',
  };

  describe('payload helpers', () => {
    it('verify the public test vector (Discourse docs), trailing newline included', () => {
      const v = {
        secret: 'd836444a9e4084d5b224a60c208dce14',
        sso: 'bm9uY2U9Y2I2ODI1MWVlZmI1MjExZTU4YzAwZmYxMzk1ZjBjMGI=\n',
        sig: '2828aa29899722b35a2f191d34ef9b3ce695e0e6eeec47deb46d588d70c7cb56',
      };
      expect(verifySignature(v.secret, v.sso, v.sig)).toBe(true);
      expect(verifySignature(v.secret, v.sso.trim(), v.sig)).toBe(false);
      expect(verifySignature(v.secret, v.sso, v.sig.toUpperCase())).toBe(false);
      expect(Object.fromEntries(parseRackQuery(decodeBase64(v.sso)))).toEqual({
        nonce: 'cb68251eefb5211e58c00ff1395f0c0b',
      });
    });

    it('Ruby-style base64 wraps at 60 characters with a trailing newline', () => {
      const b64 = encodeBase64('x'.repeat(100), true);
      const lines = b64.split('\n');
      expect(lines[0]).toHaveLength(60);
      expect(b64.endsWith('\n')).toBe(true);
      expect(decodeBase64(b64)).toBe('x'.repeat(100));
    });

    it('parseRackQuery makes arrays of repeated keys', () => {
      const parsed = parseRackQuery('a=1&a=2&b=x+y%26&c');
      expect(parsed.get('a')).toEqual(['1', '2']);
      expect(parsed.get('b')).toBe('x y&');
      expect(parsed.get('c')).toBeNull();
    });
  });

  describe('pages', () => {
    it('home shows "Not signed in" and a Log In link', async () => {
      const res = await fetch(`${base}/`);
      const html = await res.text();
      expect(html).toContain('<title>Simulated Discourse</title>');
      expect(html).toContain('Not signed in');
      expect(html).toContain('href="/session/sso?return_path=%2F"');
    });

    it('topic pages carry the header too', async () => {
      const html = await (await fetch(`${base}/t/house-rules/2`)).text();
      expect(html).toContain('house rules');
      expect(html).toContain('Not signed in');
    });

    it("a user's page shows their groups and reloads itself, so changes show up live", async () => {
      const b = new Browser();
      await login(b, { ...ava, add_groups: 'members' });
      const home = await (await b.get(`${base}/`)).text();
      expect(home).toContain('id="current-user-page" href="/u/ava.migrated"');
      const page = async () => (await new Browser().get(`${base}/u/Ava.Migrated`)).text();
      const first = await page();
      expect(first).toContain('<meta http-equiv="refresh" content="2">');
      expect(first).toContain('<span id="user-groups">members</span>');
      sim.findByExternalId(ava.external_id)!.groups.push('veterans');
      expect(await page()).toContain('<span id="user-groups">members, veterans</span>');
      expect((await new Browser().get(`${base}/u/ava.migrated/summary`)).status).toBe(200);
      expect((await new Browser().get(`${base}/u/nobody`)).status).toBe(404);
    });

    it('unknown pages are 404', async () => {
      expect((await fetch(`${base}/nope`)).status).toBe(404);
    });
  });

  describe('/session/sso', () => {
    it('redirects to the provider with a signed nonce payload and sets an HttpOnly Lax session cookie', async () => {
      const res = await fetch(`${base}/session/sso?return_path=/t/x/1`, { redirect: 'manual' });
      expect(res.status).toBe(302);
      expect(res.headers.get('set-cookie')).toMatch(
        /^_forum_session=[0-9a-f]{32}; Path=\/; HttpOnly; SameSite=Lax$/,
      );
      const q = new URL(res.headers.get('location')!).searchParams;
      const sso = q.get('sso')!;
      expect(q.get('sig')).toBe(sign(sso));
      expect(Buffer.from(sso, 'base64').toString()).toMatch(
        new RegExp(
          `^nonce=[0-9a-f]{32}&return_sso_url=${encodeURIComponent(base + '/session/sso_login').replace(/\./g, '\\.')}$`,
        ),
      );
      expect(sim.stats.ssoRedirects).toBe(1);
    });

    it('appends with & when the connect URL has a query', async () => {
      sim.connectUrl = CONNECT_URL + '?forum=main';
      const res = await fetch(`${base}/session/sso`, { redirect: 'manual' });
      expect(res.headers.get('location')).toMatch(/\?forum=main&sso=[^&]+&sig=[0-9a-f]{64}$/);
    });

    it('emits Ruby-style base64 (escaped newlines) when legacyBase64Newlines is on', async () => {
      sim.legacyBase64Newlines = true;
      const res = await fetch(`${base}/session/sso`, { redirect: 'manual' });
      const loc = res.headers.get('location')!;
      expect(loc).toContain('%0A');
      const sso = new URL(loc).searchParams.get('sso')!;
      expect(sso.endsWith('\n')).toBe(true);
      expect(new URL(loc).searchParams.get('sig')).toBe(sign(sso));
    });

    it('404 when DiscourseConnect is off or has no URL', async () => {
      sim.knobs.connectEnabled = false;
      expect((await fetch(`${base}/session/sso`, { redirect: 'manual' })).status).toBe(404);
      sim.knobs.connectEnabled = true;
      sim.connectUrl = undefined;
      expect((await fetch(`${base}/session/sso`, { redirect: 'manual' })).status).toBe(404);
    });
  });

  describe('/session/sso_login', () => {
    it('signs a new user in and returns to the return path', async () => {
      const b = new Browser();
      const res = await login(
        b,
        { ...ava, avatar_url: 'https://cdn.example.com/a.png' },
        '/t/welcome/1',
      );
      expect(res.status).toBe(302);
      expect(res.headers.get('location')).toBe('/t/welcome/1');
      expect(await current(b)).toMatchObject({
        username: 'ava.migrated',
        name: 'Ava',
        email: 'ava@example.com',
        external_id: ava.external_id,
      });
      const html = await (await b.get(`${base}/`)).text();
      expect(html).toContain('<span id="current-user">ava.migrated</span>');
      expect(html).toContain('src="https://cdn.example.com/a.png"');
      expect(sim.stats.ssoLogins).toBe(1);
      expect(sim.stats.lastPayload).toMatchObject({
        external_id: ava.external_id,
        email: 'ava@example.com',
      });
      expect(sim.findByExternalId(ava.external_id)?.active).toBe(true);
    });

    it('keeps only relative return paths', async () => {
      const b = new Browser();
      const res = await login(b, ava, '//evil.example.com/x');
      expect(res.headers.get('location')).toBe('/');
    });

    it('an already signed-in browser goes straight to the return path', async () => {
      const b = new Browser();
      await login(b, ava);
      const res = await b.get(`${base}/session/sso?return_path=/t/a/5`);
      expect(res.status).toBe(302);
      expect(res.headers.get('location')).toBe('/t/a/5');
    });

    it('accepts a reply whose base64 has Ruby newlines (signature over the text as received)', async () => {
      const b = new Browser();
      const { nonce, returnSsoUrl } = await start(b);
      const sso = encodeBase64(
        new URLSearchParams({ nonce, ...ava, name: 'A'.repeat(80) }).toString(),
        true,
      );
      const res = await b.get(`${returnSsoUrl}?${new URLSearchParams({ sso, sig: sign(sso) })}`);
      expect(res.status).toBe(302);
    });

    it('403 with the suspension text for a suspended user (member lifecycle)', async () => {
      const b = new Browser();
      await login(b, ava);
      const user = sim.findByExternalId(ava.external_id)!;
      user.suspendedTill = Date.now() + 86_400_000;
      user.suspendReason = 'Banned on Discord';
      sim.logOutUser(user.id);
      const res = await login(b, ava);
      expect(res.status).toBe(403);
      expect(await res.text()).toContain('The reason was: Banned on Discord');
      expect(await current(b)).toBeNull();
    });

    it('419 when the nonce is reused', async () => {
      const b = new Browser();
      const { nonce, returnSsoUrl } = await start(b);
      const query = reply({ nonce, ...ava });
      expect((await b.get(`${returnSsoUrl}?${query}`)).status).toBe(302);
      await b.post(`${base}/session/logout`);
      const again = await b.get(`${returnSsoUrl}?${query}`);
      expect(again.status).toBe(419);
      expect(await again.text()).toContain('Account login timed out, please try logging in again.');
      expect(await current(b)).toBeNull();
    });

    it('419 when the nonce belongs to another browser', async () => {
      const victim = new Browser();
      const attacker = new Browser();
      const { nonce, returnSsoUrl } = await start(victim);
      await start(attacker);
      const res = await attacker.get(`${returnSsoUrl}?${reply({ nonce, ...ava })}`);
      expect(res.status).toBe(419);
      const noCookie = await fetch(`${returnSsoUrl}?${reply({ nonce, ...ava })}`, {
        redirect: 'manual',
      });
      expect(noCookie.status).toBe(419);
      // still usable by its own browser
      expect((await victim.get(`${returnSsoUrl}?${reply({ nonce, ...ava })}`)).status).toBe(302);
    });

    it('419 when the nonce is older than 30 minutes, or missing', async () => {
      let t = Date.now();
      sim.now = () => t;
      try {
        const b = new Browser();
        const { nonce, returnSsoUrl } = await start(b);
        t += 30 * 60 * 1000 + 1;
        expect((await b.get(`${returnSsoUrl}?${reply({ nonce, ...ava })}`)).status).toBe(419);
        expect((await b.get(`${returnSsoUrl}?${reply({ ...ava })}`)).status).toBe(419);
      } finally {
        sim.now = Date.now;
      }
    });

    it('422 on a bad, missing or uppercase signature and on non-base64 characters', async () => {
      const b = new Browser();
      const { nonce, returnSsoUrl } = await start(b);
      const sso = Buffer.from(new URLSearchParams({ nonce, ...ava }).toString()).toString('base64');
      for (const query of [
        new URLSearchParams({ sso, sig: sign(sso, 'wrong-secret') }),
        new URLSearchParams({ sso }),
        new URLSearchParams({ sso, sig: sign(sso).toUpperCase() }),
        new URLSearchParams({ sso: sso + '*', sig: sign(sso + '*') }),
        new URLSearchParams({ sig: sign(sso) }),
      ]) {
        const res = await b.get(`${returnSsoUrl}?${query}`);
        expect(res.status).toBe(422);
        const html = await res.text();
        expect(html).toContain('Login Error');
        expect(html).toContain('There was a problem with the login. Please try again.');
      }
      // A raw, unescaped "+" arrives as a space: Discourse rejects it.
      // (Form-encoded ASCII never yields "+" in base64; a raw ">" does.)
      const plus = Buffer.from(`${new URLSearchParams({ nonce, ...ava })}&name=>>>`).toString(
        'base64',
      );
      expect(plus).toContain('+');
      expect((await b.get(`${returnSsoUrl}?sso=${plus}&sig=${sign(plus)}`)).status).toBe(422);
      expect(sim.stats.ssoErrors).toBe(6);
      // The nonce was not spent by the failures.
      expect((await b.get(`${returnSsoUrl}?${reply({ nonce, ...ava })}`)).status).toBe(302);
    });

    it('500 on a repeated key', async () => {
      const b = new Browser();
      const { nonce, returnSsoUrl } = await start(b);
      const text = new URLSearchParams({ nonce, ...ava }).toString() + '&groups=a&groups=b';
      const sso = Buffer.from(text).toString('base64');
      const res = await b.get(`${returnSsoUrl}?${new URLSearchParams({ sso, sig: sign(sso) })}`);
      expect(res.status).toBe(500);
      expect(await res.text()).toContain('Internal Server Error');
    });

    it.each(['', 'none', 'NULL', 'nil', 'blank'])('422 for external_id %j', async (externalId) => {
      const b = new Browser();
      const res = await login(b, { ...ava, external_id: externalId });
      expect(res.status).toBe(422);
      expect(await res.text()).toContain('Invalid external_id');
      expect(sim.users).toHaveLength(0);
    });

    it('422 for a missing or invalid email', async () => {
      const { email: _omit, ...noEmail } = ava;
      void _omit;
      expect((await login(new Browser(), noEmail)).status).toBe(422);
      expect((await login(new Browser(), { ...ava, email: 'not-an-email' })).status).toBe(422);
      expect(sim.users).toHaveLength(0);
    });

    it('links an existing account by email (case-insensitive) without require_activation', async () => {
      const existing = sim.addUser({ username: 'ava_old', email: 'Ava@Example.com', admin: true });
      const b = new Browser();
      expect((await login(b, { ...ava, email: 'AVA@example.com' })).status).toBe(302);
      expect(existing.externalId).toBe(ava.external_id);
      expect(sim.users).toHaveLength(1);
      expect(await current(b)).toMatchObject({ id: existing.id, username: 'ava_old', admin: true });
    });

    it('does NOT link by email with require_activation=true', async () => {
      const existing = sim.addUser({ username: 'ava_old', email: 'ava@example.com' });
      const b = new Browser();
      const res = await login(b, { ...ava, require_activation: 'true' });
      expect(existing.externalId).toBeNull();
      expect(res.status).toBe(500); // Discourse cannot register a second account with a taken email
      expect(await current(b)).toBeNull();
    });

    it('require_activation=true creates an inactive account that is not signed in', async () => {
      const b = new Browser();
      const res = await login(b, { ...ava, require_activation: 'true' });
      expect(res.status).toBe(302);
      expect(res.headers.get('location')).toBe('/u/account-created');
      expect(await (await b.get(`${base}/u/account-created`)).text()).toContain('activat');
      expect(sim.findByExternalId(ava.external_id)?.active).toBe(false);
      expect(await current(b)).toBeNull();
      // A later verified sign-in activates it.
      expect((await login(b, ava)).status).toBe(302);
      expect(sim.findByExternalId(ava.external_id)?.active).toBe(true);
      expect(await current(b)).not.toBeNull();
    });

    it('admin/moderator: applied when present, admin=false revokes, other strings ignored', async () => {
      const b = new Browser();
      await login(b, { ...ava, admin: 'true', moderator: 'true' });
      const user = sim.findByExternalId(ava.external_id)!;
      expect([user.admin, user.moderator]).toEqual([true, true]);
      await b.post(`${base}/session/logout`);
      await login(b, { ...ava, admin: 'TRUE', moderator: '1' });
      expect([user.admin, user.moderator]).toEqual([true, true]);
      await b.post(`${base}/session/logout`);
      await login(b, { ...ava, admin: 'false' });
      expect([user.admin, user.moderator]).toEqual([false, true]);
    });

    it('add_groups / remove_groups: case-insensitive, unknown names skipped', async () => {
      const b = new Browser();
      await login(b, { ...ava, add_groups: 'Members,veterans,nonexistent' });
      const user = sim.findByExternalId(ava.external_id)!;
      expect(user.groups).toEqual(['members', 'veterans']);
      await b.post(`${base}/session/logout`);
      await login(b, { ...ava, remove_groups: 'VETERANS', add_groups: 'moderators' });
      expect(user.groups).toEqual(['members', 'moderators']);
      await b.post(`${base}/session/logout`);
      await login(b, { ...ava, groups: 'veterans' }); // ignored without overridesGroups
      expect(user.groups).toEqual(['members', 'moderators']);
    });

    it('overridesGroups: groups is the full list; omitted clears', async () => {
      sim.overridesGroups = true;
      const b = new Browser();
      await login(b, { ...ava, groups: 'members,Veterans', add_groups: 'moderators' });
      const user = sim.findByExternalId(ava.external_id)!;
      expect(user.groups).toEqual(['members', 'veterans']);
      await b.post(`${base}/session/logout`);
      await login(b, ava);
      expect(user.groups).toEqual([]);
    });

    it('existing users keep username/name/email/avatar unless overrides are on', async () => {
      const b = new Browser();
      await login(b, { ...ava, avatar_url: 'https://cdn.example.com/1.png' });
      const user = sim.findByExternalId(ava.external_id)!;
      const again = async (fields: Record<string, string>) => {
        await b.post(`${base}/session/logout`);
        expect((await login(b, { ...ava, ...fields })).status).toBe(302);
      };
      await again({
        username: 'renamed',
        name: 'New Name',
        email: 'new@example.com',
        avatar_url: 'https://cdn.example.com/2.png',
      });
      expect(user).toMatchObject({
        username: 'ava.migrated',
        name: 'Ava',
        email: 'ava@example.com',
        avatarUrl: 'https://cdn.example.com/1.png',
      });

      await again({ avatar_url: 'https://cdn.example.com/3.png', avatar_force_update: 'true' });
      expect(user.avatarUrl).toBe('https://cdn.example.com/3.png');

      sim.authOverridesUsername =
        sim.authOverridesName =
        sim.authOverridesEmail =
        sim.overridesAvatar =
          true;
      await again({
        username: 'renamed',
        name: 'New Name',
        email: 'New@Example.com',
        avatar_url: 'https://cdn.example.com/4.png',
      });
      expect(user).toMatchObject({
        username: 'renamed',
        name: 'New Name',
        email: 'new@example.com',
        avatarUrl: 'https://cdn.example.com/4.png',
      });
    });

    it('makes usernames valid and unique', async () => {
      sim.addUser({ username: 'ava', email: 'someone@example.com' });
      await login(new Browser(), { ...ava, username: 'ava' });
      expect(sim.findByExternalId(ava.external_id)!.username).toBe('ava1');
      await login(new Browser(), {
        external_id: '2',
        email: 'x@example.com',
        username: 'Spärkle ✨ star',
      });
      expect(sim.findByExternalId('2')!.username).toBe('Sparkle_star');
      await login(new Browser(), { external_id: '3', email: 'y@example.com', username: 'x' });
      expect(sim.findByExternalId('3')!.username).toBe('x11');
    });

    it('down destroys the connection', async () => {
      sim.knobs.down = true;
      await expect(fetch(`${base}/session/sso_login`)).rejects.toThrow();
    });
  });

  describe('logout', () => {
    it('clears the session and redirects to logoutRedirect or /', async () => {
      const b = new Browser();
      await login(b, ava);
      let res = await b.post(`${base}/session/logout`);
      expect(res.status).toBe(302);
      expect(res.headers.get('location')).toBe('/');
      expect(await current(b)).toBeNull();

      sim.logoutRedirect = 'http://127.0.0.1:3000/discourse/logout';
      await login(b, ava);
      res = await b.post(`${base}/session/logout`);
      expect(res.headers.get('location')).toBe('http://127.0.0.1:3000/discourse/logout');
      const body = await json(await b.get(`${base}/session/current.json`));
      expect(body).toEqual({ errors: ['not logged in'], error_type: 'not_found' });
    });
  });
});

describe('DiscourseSimulator in a subfolder', () => {
  const sim = new DiscourseSimulator({
    secret: SECRET,
    connectUrl: CONNECT_URL,
    basePath: '/forum',
  });
  let base: string;
  beforeAll(async () => {
    base = await sim.listen(0);
  });
  afterAll(() => sim.close());

  it('serves only under the subfolder and sends a return_sso_url inside it', async () => {
    expect((await fetch(`${base}/`)).status).toBe(404);
    const home = await (await fetch(`${base}/forum/`)).text();
    expect(home).toContain('href="/forum/session/sso?return_path=%2Fforum%2F"');
    expect(sim.forumRootUrl).toBe(`${base}/forum`);

    const b = new Browser();
    const start = await b.get(`${base}/forum/session/sso?return_path=%2Fforum%2Ft%2Fa%2F1`);
    expect(start.headers.get('set-cookie')).toContain('Path=/forum;');
    const sso = new URL(start.headers.get('location')!).searchParams.get('sso')!;
    const sent = new URLSearchParams(Buffer.from(sso, 'base64').toString());
    expect(sent.get('return_sso_url')).toBe(`${base}/forum/session/sso_login`);
    const fields = {
      nonce: sent.get('nonce')!,
      external_id: '7',
      email: 'seven@example.com',
      username: 'seven',
    };
    const back = Buffer.from(new URLSearchParams(fields).toString()).toString('base64');
    const res = await b.get(
      `${sent.get('return_sso_url')}?${new URLSearchParams({ sso: back, sig: sign(back) })}`,
    );
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toBe('/forum/t/a/1');
    const logout = await b.post(`${base}/forum/session/logout`);
    expect(logout.headers.get('location')).toBe('/forum/');
  });
});
