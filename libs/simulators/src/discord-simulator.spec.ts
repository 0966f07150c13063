import { createHash, randomBytes } from 'node:crypto';
import { DISCORD_FIXTURES, SIM_GUILD_ID } from './discord-fixtures';
import { DiscordSimulator } from './discord-simulator';

/** `Response#json()` typed loosely for assertions. */
const json = (res: Response): Promise<any> => res.json();

const CALLBACK = 'http://127.0.0.1:3000/auth/discord/callback';

function pkce(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

describe('DiscordSimulator', () => {
  const sim = new DiscordSimulator({ redirectUris: [CALLBACK] });
  let base: string;

  beforeAll(async () => {
    base = await sim.listen(0);
  });
  afterAll(() => sim.close());
  afterEach(() => sim.reset());

  function authorizeUrl(
    over: Record<string, string | null> = {},
    challenge = pkce().challenge,
  ): string {
    const params: Record<string, string | null> = {
      client_id: 'sandbox-client-id',
      redirect_uri: CALLBACK,
      response_type: 'code',
      scope: 'identify email',
      state: 'st-123',
      code_challenge: challenge,
      code_challenge_method: 'S256',
      ...over,
    };
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== null) q.set(k, v);
    return `${base}/oauth2/authorize?${q}`;
  }

  async function getCode(userId: string, over: Record<string, string | null> = {}) {
    const p = pkce();
    sim.knobs.autoApproveAs = userId;
    const res = await fetch(authorizeUrl(over, p.challenge), { redirect: 'manual' });
    sim.knobs.autoApproveAs = null;
    expect(res.status).toBe(302);
    const loc = new URL(res.headers.get('location')!);
    return { code: loc.searchParams.get('code')!, verifier: p.verifier, location: loc };
  }

  function token(body: Record<string, string>, headers: Record<string, string> = {}) {
    return fetch(`${base}/api/oauth2/token`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...headers },
      body: new URLSearchParams(body).toString(),
    });
  }

  function exchange(code: string, verifier: string, over: Record<string, string> = {}) {
    return token({
      client_id: 'sandbox-client-id',
      client_secret: 'sandbox-client-secret',
      grant_type: 'authorization_code',
      code,
      redirect_uri: CALLBACK,
      code_verifier: verifier,
      ...over,
    });
  }

  it('listens on 127.0.0.1 and returns a base URL without trailing slash', () => {
    expect(base).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });

  describe('fixtures', () => {
    it('have the shapes the spec asks for', () => {
      const f = DISCORD_FIXTURES;
      for (const u of Object.values(f)) expect(u.id).toMatch(/^\d{17,19}$/);
      expect(f.migrated.discriminator).toBe('0');
      expect(f.migrated.global_name).toBeTruthy();
      expect(f.legacy.discriminator).toMatch(/^[1-9]\d{3}$/);
      expect(f.legacy.global_name).toBeNull();
      expect(f.legacy.avatar).toBeNull();
      expect(f.animated.avatar).toMatch(/^a_/);
      expect(f.unverified.verified).toBe(false);
      expect(f.noEmail.email).toBeNull();
      expect(f.bigId.id).toBe('1234567890123456789');
      expect(BigInt(f.bigId.id)).toBeGreaterThan(2n ** 53n);
      const emails = Object.values(f)
        .map((u) => u.email)
        .filter((e) => e !== null);
      expect(new Set(emails).size).toBe(emails.length);
      for (const e of emails) expect(e).toMatch(/@example\.com$/);
    });

    it('are frozen; the simulator works on copies', () => {
      expect(Object.isFrozen(DISCORD_FIXTURES.migrated)).toBe(true);
      sim.updateUser(DISCORD_FIXTURES.migrated.id, { global_name: 'Renamed' });
      expect(sim.users.get(DISCORD_FIXTURES.migrated.id)!.global_name).toBe('Renamed');
      expect(DISCORD_FIXTURES.migrated.global_name).toBe('Ava Migrated');
      sim.reset();
      expect(sim.users.get(DISCORD_FIXTURES.migrated.id)!.global_name).toBe('Ava Migrated');
    });
  });

  describe('authorize', () => {
    it('renders a consent page with one button per user and a Cancel button', async () => {
      const res = await fetch(authorizeUrl());
      expect(res.status).toBe(200);
      const html = await res.text();
      expect(html).toContain('Simulated Discord — Sandbox App wants to access your account');
      for (const u of Object.values(DISCORD_FIXTURES)) {
        expect(html).toContain(`data-user-id="${u.id}"`);
      }
      expect(html).toContain('Sign in as Ava Migrated');
      expect(html).toContain('Sign in as OldTimer');
      expect(html).toContain('Sign in as Spärkle ✨');
      expect(html).toContain('>Cancel</button>');
      expect(html).toContain('name="code_challenge"');
      expect(sim.stats.authorizeRequests).toBe(1);
    });

    it('approves from the consent form (POST) with code and state', async () => {
      const page = await (await fetch(authorizeUrl({ state: 'a b&c' }))).text();
      const hidden = [...page.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)];
      const form = new URLSearchParams();
      const unescape = (s: string) =>
        s
          .replace(/&quot;/g, '"')
          .replace(/&#39;/g, "'")
          .replace(/&lt;/g, '<')
          .replace(/&gt;/g, '>')
          .replace(/&amp;/g, '&');
      for (const [, k, v] of hidden) form.set(k, unescape(v));
      form.set('approve_as', DISCORD_FIXTURES.legacy.id);
      const res = await fetch(`${base}/oauth2/authorize`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: form.toString(),
        redirect: 'manual',
      });
      expect(res.status).toBe(302);
      const loc = new URL(res.headers.get('location')!);
      expect(`${loc.origin}${loc.pathname}`).toBe(CALLBACK);
      expect(loc.searchParams.get('code')).toMatch(/^[A-Za-z0-9]{30}$/);
      expect(loc.searchParams.get('state')).toBe('a b&c');
    });

    it('Cancel redirects with access_denied and the state', async () => {
      const form = new URLSearchParams(new URL(authorizeUrl()).searchParams);
      form.set('cancel', '1');
      const res = await fetch(`${base}/api/oauth2/authorize`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: form.toString(),
        redirect: 'manual',
      });
      expect(res.status).toBe(302);
      expect(res.headers.get('location')).toBe(
        `${CALLBACK}?error=access_denied&error_description=The+resource+owner+or+authorization+server+denied+the+request&state=st-123`,
      );
    });

    it('prompt=none skips the screen once this browser approved the same scopes', async () => {
      const approve = async (url: string, cookie = '') => {
        const form = new URLSearchParams(new URL(url).searchParams);
        form.set('approve_as', DISCORD_FIXTURES.animated.id);
        return fetch(`${base}/oauth2/authorize`, {
          method: 'POST',
          headers: {
            'Content-Type': 'application/x-www-form-urlencoded',
            ...(cookie ? { Cookie: cookie } : {}),
          },
          body: form.toString(),
          redirect: 'manual',
        });
      };
      const first = await approve(authorizeUrl({ prompt: 'none' }));
      const cookie = first.headers.get('set-cookie')!.split(';')[0];
      expect(cookie).toMatch(/^__sim_discord_session=/);
      const again = await fetch(authorizeUrl({ prompt: 'none' }), {
        redirect: 'manual',
        headers: { Cookie: cookie },
      });
      expect(again.status).toBe(302);
      expect(new URL(again.headers.get('location')!).searchParams.get('code')).toBeTruthy();
      // more scopes, no prompt=none, or another browser: the screen again
      for (const [over, c] of [
        [{ prompt: 'none', scope: 'identify email guilds.members.read' }, cookie],
        [{}, cookie],
        [{ prompt: 'none' }, ''],
      ] as Array<[Record<string, string>, string]>) {
        const res = await fetch(authorizeUrl(over), {
          redirect: 'manual',
          headers: c ? { Cookie: c } : {},
        });
        expect(res.status).toBe(200);
        await res.text();
      }
    });

    it('knobs.deny denies at once; state is omitted when none was given', async () => {
      sim.knobs.deny = true;
      const res = await fetch(authorizeUrl({ state: null }), { redirect: 'manual' });
      expect(res.status).toBe(302);
      const loc = new URL(res.headers.get('location')!);
      expect(loc.searchParams.get('error')).toBe('access_denied');
      expect(loc.searchParams.has('state')).toBe(false);
    });

    it('autoApproveAs omits state when none was given', async () => {
      const { location } = await getCode(DISCORD_FIXTURES.migrated.id, { state: null });
      expect([...location.searchParams.keys()]).toEqual(['code']);
    });

    it.each([
      [{ client_id: 'nope' }, 'Unknown application'],
      [{ redirect_uri: CALLBACK + '/' }, 'Invalid OAuth2 redirect_uri'],
      [{ redirect_uri: CALLBACK.toUpperCase() }, 'Invalid OAuth2 redirect_uri'],
      [{ redirect_uri: CALLBACK + '?x=1' }, 'Invalid OAuth2 redirect_uri'],
      [{ redirect_uri: null }, 'Invalid OAuth2 redirect_uri'],
      [{ response_type: 'token' }, 'response_type'],
      [{ scope: 'email' }, 'identify'],
      [{ scope: 'identify bogus' }, 'Invalid scope'],
      [{ code_challenge: null }, 'PKCE'],
      [{ code_challenge_method: 'plain' }, 'S256'],
      [{ code_challenge_method: null }, 'S256'],
    ] as Array<[Record<string, string | null>, string]>)(
      'rejects %j with a 400 page',
      async (over, text) => {
        sim.knobs.autoApproveAs = DISCORD_FIXTURES.migrated.id;
        const res = await fetch(authorizeUrl(over), { redirect: 'manual' });
        expect(res.status).toBe(400);
        expect(res.headers.get('content-type')).toMatch(/text\/html/);
        expect(await res.text()).toContain(text);
      },
    );

    it('keeps an existing query on the redirect URI', async () => {
      const withQuery = 'http://127.0.0.1:3000/cb?tenant=a';
      sim.redirectUris = [CALLBACK, withQuery];
      const { location } = await getCode(DISCORD_FIXTURES.migrated.id, { redirect_uri: withQuery });
      expect(location.searchParams.get('tenant')).toBe('a');
      expect(location.searchParams.get('code')).toBeTruthy();
      sim.redirectUris = [CALLBACK];
    });
  });

  describe('token + users/@me', () => {
    it('runs the full authorize → token → @me flow with PKCE', async () => {
      const { code, verifier, location } = await getCode(DISCORD_FIXTURES.migrated.id);
      expect(location.searchParams.get('state')).toBe('st-123');
      const res = await exchange(code, verifier);
      expect(res.status).toBe(200);
      const tok = await json(res);
      expect(tok).toEqual({
        access_token: expect.any(String),
        token_type: 'Bearer',
        expires_in: 604800,
        refresh_token: expect.any(String),
        scope: 'identify email',
      });
      const me = await fetch(`${base}/api/v10/users/@me`, {
        headers: {
          Authorization: `Bearer ${tok.access_token}`,
          'User-Agent': 'TestBot (https://example.com, 1.0)',
        },
      });
      expect(me.status).toBe(200);
      const body = await json(me);
      expect(body).toMatchObject({
        id: DISCORD_FIXTURES.migrated.id,
        username: 'ava.migrated',
        discriminator: '0',
        global_name: 'Ava Migrated',
        email: 'ava@example.com',
        verified: true,
        locale: 'en-US',
        mfa_enabled: true,
      });
      expect(body).not.toHaveProperty('guildRoles');
      expect(sim.stats).toMatchObject({
        tokenExchanges: 1,
        userFetches: 1,
        unversionedUserFetches: 0,
      });
      expect(sim.stats.userAgents).toContain('TestBot (https://example.com, 1.0)');
    });

    it('keeps the 19-digit id a string in the JSON text', async () => {
      const { code, verifier } = await getCode(DISCORD_FIXTURES.bigId.id);
      const tok = await json(await exchange(code, verifier));
      const text = await (
        await fetch(`${base}/api/v10/users/@me`, {
          headers: { Authorization: `Bearer ${tok.access_token}` },
        })
      ).text();
      expect(text).toContain('"id":"1234567890123456789"');
    });

    it('omits email and verified without the email scope', async () => {
      const { code, verifier } = await getCode(DISCORD_FIXTURES.migrated.id, { scope: 'identify' });
      const tok = await json(await exchange(code, verifier));
      expect(tok.scope).toBe('identify');
      const body = await json(
        await fetch(`${base}/api/v10/users/@me`, {
          headers: { Authorization: `Bearer ${tok.access_token}` },
        }),
      );
      expect(body.id).toBe(DISCORD_FIXTURES.migrated.id);
      expect(body).not.toHaveProperty('email');
      expect(body).not.toHaveProperty('verified');
    });

    it('returns null email and verified=false for those fixtures', async () => {
      for (const [fixture, email, verified] of [
        [DISCORD_FIXTURES.noEmail, null, false],
        [DISCORD_FIXTURES.unverified, 'ursula@example.com', false],
      ] as const) {
        const { code, verifier } = await getCode(fixture.id);
        const tok = await json(await exchange(code, verifier));
        const body = await json(
          await fetch(`${base}/api/v10/users/@me`, {
            headers: { Authorization: `Bearer ${tok.access_token}` },
          }),
        );
        expect(body.email).toBe(email);
        expect(body.verified).toBe(verified);
      }
    });

    it('codes are single use', async () => {
      const { code, verifier } = await getCode(DISCORD_FIXTURES.migrated.id);
      expect((await exchange(code, verifier)).status).toBe(200);
      const again = await exchange(code, verifier);
      expect(again.status).toBe(400);
      expect(await json(again)).toEqual({
        error: 'invalid_grant',
        error_description: 'Invalid "code" in request.',
      });
    });

    it('codes expire after 10 minutes', async () => {
      let t = Date.now();
      sim.now = () => t;
      try {
        const { code, verifier } = await getCode(DISCORD_FIXTURES.migrated.id);
        t += 10 * 60 * 1000 + 1;
        const res = await exchange(code, verifier);
        expect(res.status).toBe(400);
        expect((await json(res)).error).toBe('invalid_grant');
      } finally {
        sim.now = Date.now;
      }
    });

    it('binds the code to the exact redirect_uri', async () => {
      const { code, verifier } = await getCode(DISCORD_FIXTURES.migrated.id);
      const res = await exchange(code, verifier, { redirect_uri: CALLBACK + '/' });
      expect(res.status).toBe(400);
      expect((await json(res)).error).toBe('invalid_grant');
    });

    it('rejects a wrong code_verifier', async () => {
      const { code } = await getCode(DISCORD_FIXTURES.migrated.id);
      const res = await exchange(code, pkce().verifier);
      expect(res.status).toBe(400);
      expect((await json(res)).error).toBe('invalid_grant');
      const missing = await token({
        client_id: 'sandbox-client-id',
        client_secret: 'sandbox-client-secret',
        grant_type: 'authorization_code',
        code,
        redirect_uri: CALLBACK,
      });
      expect((await json(missing)).error).toBe('invalid_grant');
    });

    it('accepts HTTP Basic client authentication', async () => {
      const { code, verifier } = await getCode(DISCORD_FIXTURES.migrated.id);
      const basic = Buffer.from('sandbox-client-id:sandbox-client-secret').toString('base64');
      const res = await token(
        { grant_type: 'authorization_code', code, redirect_uri: CALLBACK, code_verifier: verifier },
        { Authorization: `Basic ${basic}` },
      );
      expect(res.status).toBe(200);
    });

    it('rejects a wrong client secret with 401 invalid_client', async () => {
      const { code, verifier } = await getCode(DISCORD_FIXTURES.migrated.id);
      const res = await exchange(code, verifier, { client_secret: 'wrong' });
      expect(res.status).toBe(401);
      expect(await json(res)).toEqual({ error: 'invalid_client' });
      const basic = Buffer.from('sandbox-client-id:wrong').toString('base64');
      const res2 = await token(
        { grant_type: 'authorization_code', code },
        { Authorization: `Basic ${basic}` },
      );
      expect(res2.status).toBe(401);
      // the code survived the failed attempts
      expect((await exchange(code, verifier)).status).toBe(200);
    });

    it('accepts only form-encoded bodies', async () => {
      const res = await fetch(`${base}/api/oauth2/token`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ grant_type: 'authorization_code' }),
      });
      expect(res.status).toBe(400);
      expect((await json(res)).error).toBe('invalid_request');
    });

    it('rejects other grant types', async () => {
      const res = await token({
        client_id: 'sandbox-client-id',
        client_secret: 'sandbox-client-secret',
        grant_type: 'password',
      });
      expect(res.status).toBe(400);
      expect((await json(res)).error).toBe('unsupported_grant_type');
    });

    it('serves the token endpoint under /api/v10 and supports refresh_token', async () => {
      const { code, verifier } = await getCode(DISCORD_FIXTURES.migrated.id);
      const first = await json(
        await fetch(`${base}/api/v10/oauth2/token`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/x-www-form-urlencoded; charset=UTF-8' },
          body: new URLSearchParams({
            client_id: 'sandbox-client-id',
            client_secret: 'sandbox-client-secret',
            grant_type: 'authorization_code',
            code,
            redirect_uri: CALLBACK,
            code_verifier: verifier,
          }).toString(),
        }),
      );
      const refreshed = await token({
        client_id: 'sandbox-client-id',
        client_secret: 'sandbox-client-secret',
        grant_type: 'refresh_token',
        refresh_token: first.refresh_token,
      });
      expect(refreshed.status).toBe(200);
      expect((await json(refreshed)).access_token).not.toBe(first.access_token);
    });

    it('answers 401 for an unknown token', async () => {
      const res = await fetch(`${base}/api/v10/users/@me`, {
        headers: { Authorization: 'Bearer nope' },
      });
      expect(res.status).toBe(401);
      expect(await json(res)).toEqual({ message: '401: Unauthorized', code: 0 });
      const none = await fetch(`${base}/api/v10/users/@me`);
      expect(none.status).toBe(401);
    });

    it('counts the unversioned /api/users/@me separately', async () => {
      const { code, verifier } = await getCode(DISCORD_FIXTURES.legacy.id);
      const tok = await json(await exchange(code, verifier));
      const res = await fetch(`${base}/api/users/@me`, {
        headers: { Authorization: `Bearer ${tok.access_token}` },
      });
      expect(res.status).toBe(200);
      expect((await json(res)).discriminator).toBe('1337');
      expect(sim.stats.unversionedUserFetches).toBe(1);
      expect(sim.stats.userFetches).toBe(1);
    });

    it('the changing fixture gets a new global_name and avatar on every exchange', async () => {
      const seen: Array<[string, string]> = [];
      for (let i = 0; i < 2; i++) {
        const { code, verifier } = await getCode(DISCORD_FIXTURES.changing.id);
        const tok = await json(await exchange(code, verifier));
        const me = await json(
          await fetch(`${base}/api/v10/users/@me`, {
            headers: { Authorization: `Bearer ${tok.access_token}` },
          }),
        );
        seen.push([me.global_name, me.avatar]);
      }
      expect(seen[0][0]).not.toBe(DISCORD_FIXTURES.changing.global_name);
      expect(seen[0][0]).not.toBe(seen[1][0]);
      expect(seen[0][1]).not.toBe(seen[1][1]);
      expect(seen[1][1]).toMatch(/^[0-9a-f]{32}$/);
    });
  });

  describe('failures', () => {
    it('tokenFailure 429 answers JSON with Retry-After, and does not spend the code', async () => {
      const { code, verifier } = await getCode(DISCORD_FIXTURES.migrated.id);
      sim.knobs.tokenFailure = { status: 429, retryAfter: 3 };
      const res = await exchange(code, verifier);
      expect(res.status).toBe(429);
      expect(res.headers.get('retry-after')).toBe('3');
      expect(await json(res)).toEqual({
        message: 'You are being rate limited.',
        retry_after: 3,
        global: false,
      });
      sim.knobs.tokenFailure = null;
      expect((await exchange(code, verifier)).status).toBe(200);
    });

    it('tokenFailure plain-text 429 and 5xx', async () => {
      sim.knobs.tokenFailure = { status: 429, retryAfter: 2, plainText: true };
      const res = await token({});
      expect(res.status).toBe(429);
      expect(res.headers.get('content-type')).toMatch(/text\/plain/);
      expect(res.headers.get('retry-after')).toBe('2');
      sim.knobs.tokenFailure = { status: 500 };
      const res5 = await token({});
      expect(res5.status).toBe(500);
      expect(await json(res5)).toEqual({ message: '500: Internal Server Error', code: 0 });
    });

    it('userFailure applies to @me', async () => {
      sim.knobs.userFailure = { status: 429, retryAfter: 1.5 };
      const res = await fetch(`${base}/api/v10/users/@me`);
      expect(res.status).toBe(429);
      expect(res.headers.get('retry-after')).toBe('2');
      expect((await json(res)).retry_after).toBe(1.5);
      sim.knobs.userFailure = { status: 502 };
      expect((await fetch(`${base}/api/v10/users/@me`)).status).toBe(502);
    });

    it('down destroys every connection', async () => {
      sim.knobs.down = true;
      await expect(fetch(`${base}/api/v10/users/@me`)).rejects.toThrow();
      sim.knobs.down = false;
      expect((await fetch(`${base}/api/v10/users/@me`)).status).toBe(401);
    });

    it('unknown routes answer Discord-style 404 JSON', async () => {
      const res = await fetch(`${base}/api/v10/nope`);
      expect(res.status).toBe(404);
      expect(await json(res)).toEqual({ message: '404: Not Found', code: 0 });
    });
  });

  describe('guild member', () => {
    async function tokenFor(userId: string, scope: string): Promise<string> {
      const { code, verifier } = await getCode(userId, { scope });
      return (await json(await exchange(code, verifier))).access_token;
    }
    const memberUrl = (guild: string) => `${base}/api/v10/users/@me/guilds/${guild}/member`;

    it('returns roles for a member', async () => {
      const t = await tokenFor(DISCORD_FIXTURES.migrated.id, 'identify email guilds.members.read');
      const res = await fetch(memberUrl(SIM_GUILD_ID), {
        headers: { Authorization: `Bearer ${t}` },
      });
      expect(res.status).toBe(200);
      const body = await json(res);
      expect(body.roles).toEqual(DISCORD_FIXTURES.migrated.guildRoles![SIM_GUILD_ID]);
      expect(body.nick).toBeNull();
      expect(body.joined_at).toMatch(/^\d{4}-\d\d-\d\dT/);
      expect(body.user.id).toBe(DISCORD_FIXTURES.migrated.id);
      expect(body.user).not.toHaveProperty('email');
      expect(sim.stats.guildMemberFetches).toBe(1);
    });

    it('404 Unknown Guild for a non-member, 403 without the scope', async () => {
      const t = await tokenFor(DISCORD_FIXTURES.unverified.id, 'identify guilds.members.read');
      const res = await fetch(memberUrl(SIM_GUILD_ID), {
        headers: { Authorization: `Bearer ${t}` },
      });
      expect(res.status).toBe(404);
      expect(await json(res)).toEqual({ message: 'Unknown Guild', code: 10004 });

      const t2 = await tokenFor(DISCORD_FIXTURES.migrated.id, 'identify email');
      const res2 = await fetch(memberUrl(SIM_GUILD_ID), {
        headers: { Authorization: `Bearer ${t2}` },
      });
      expect(res2.status).toBe(403);
      expect(await json(res2)).toEqual({ message: 'Missing Access', code: 50001 });
    });

    it('sees role changes made through updateUser', async () => {
      const t = await tokenFor(DISCORD_FIXTURES.legacy.id, 'identify guilds.members.read');
      sim.updateUser(DISCORD_FIXTURES.legacy.id, { guildRoles: { [SIM_GUILD_ID]: ['42'] } });
      const body = await json(
        await fetch(memberUrl(SIM_GUILD_ID), { headers: { Authorization: `Bearer ${t}` } }),
      );
      expect(body.roles).toEqual(['42']);
    });
  });
});
