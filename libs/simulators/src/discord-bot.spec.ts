import { createHash } from 'node:crypto';
import { DiscordAPIError, REST } from '@discordjs/rest';
import { WebSocketManager, WebSocketShardEvents } from '@discordjs/ws';
import { WebSocket } from 'ws';
import { waitFor } from '../../../test/support/wait';
import {
  DISCORD_FIXTURES,
  SIM_BOT_USER_ID,
  SIM_GUILD_ID,
  SIM_GUILD_ROLES,
} from './discord-fixtures';
import { GATEWAY_CLOSE } from './discord-gateway';
import { SIM_GATEWAY_INTENTS } from './discord-guild';
import { DiscordSimulator } from './discord-simulator';

const TOKEN = 'sandbox-bot-token';

/** `fetch` whose `json()` is typed loosely, for assertions. */
const jfetch = fetch as (
  ...args: Parameters<typeof fetch>
) => Promise<Omit<Response, 'json'> & { json(): Promise<any> }>;
const { migrated, legacy, animated, bigId } = DISCORD_FIXTURES;
const ALL =
  SIM_GATEWAY_INTENTS.Guilds |
  SIM_GATEWAY_INTENTS.GuildMembers |
  SIM_GATEWAY_INTENTS.GuildModeration;

describe('DiscordSimulator, bot side', () => {
  const sim = new DiscordSimulator();
  let base: string;

  beforeAll(async () => {
    base = await sim.listen(0);
  });
  afterAll(() => sim.close());
  afterEach(() => sim.reset());

  const bot = (path: string, token: string | null = TOKEN) =>
    jfetch(`${base}/api/v10${path}`, {
      headers: token === null ? {} : { Authorization: `Bot ${token}` },
    });

  describe('REST', () => {
    it('gives the gateway URL, one shard and the session start limit', async () => {
      const res = await bot('/gateway/bot');
      expect(res.status).toBe(200);
      const body = await res.json();
      expect(body).toEqual({
        url: `${base.replace('http', 'ws')}/gateway`,
        shards: 1,
        session_start_limit: {
          total: 1000,
          remaining: 1000,
          reset_after: 86_400_000,
          max_concurrency: 1,
        },
      });
      expect(sim.stats.botCalls['GET /gateway/bot']).toBe(1);
    });

    it('answers /users/@me with the bot user for a bot token', async () => {
      const res = await bot('/users/@me');
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ id: SIM_BOT_USER_ID, bot: true });
      expect(sim.stats.botCalls['GET /users/@me']).toBe(1);
      expect(sim.stats.userFetches).toBe(0);
      expect((await bot('/users/@me', 'wrong')).status).toBe(401);
    });

    it('needs Authorization: Bot <token> on every bot route (401 JSON otherwise)', async () => {
      for (const path of [
        '/gateway/bot',
        `/guilds/${SIM_GUILD_ID}`,
        `/guilds/${SIM_GUILD_ID}/members`,
        `/guilds/${SIM_GUILD_ID}/members/${migrated.id}`,
      ]) {
        for (const res of [
          await bot(path, null),
          await bot(path, 'wrong-token'),
          await jfetch(`${base}/api/v10${path}`, { headers: { Authorization: `Bearer ${TOKEN}` } }),
        ]) {
          expect(res.status).toBe(401);
          expect(await res.json()).toEqual({ message: '401: Unauthorized', code: 0 });
        }
      }
    });

    it('lists members in ascending id order, pages with after, and validates the query', async () => {
      const extra = sim.guild.createMembers(5);
      const all = [...sim.guild.memberIds()];
      expect(all).toHaveLength(5 + 5); // migrated, legacy, animated, bigId, changing + 5
      const sorted = [...all].sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : 1));
      expect(all).toEqual(sorted);
      expect(all.slice(-5)).toEqual(extra);

      const first = await (await bot(`/guilds/${SIM_GUILD_ID}/members?limit=4`)).json();
      expect(first.map((m: any) => m.user.id)).toEqual(all.slice(0, 4));
      const next = await (
        await bot(`/guilds/${SIM_GUILD_ID}/members?limit=4&after=${first[3].user.id}`)
      ).json();
      expect(next.map((m: any) => m.user.id)).toEqual(all.slice(4, 8));
      const one = await (await bot(`/guilds/${SIM_GUILD_ID}/members`)).json();
      expect(one).toHaveLength(1); // limit defaults to 1
      const rest = await (
        await bot(`/guilds/${SIM_GUILD_ID}/members?limit=1000&after=${all[7]}`)
      ).json();
      expect(rest.map((m: any) => m.user.id)).toEqual(all.slice(8));
      const m = first.find((x: any) => x.user.id === migrated.id);
      expect(m).toMatchObject({
        roles: [SIM_GUILD_ROLES.member, SIM_GUILD_ROLES.moderator],
        user: { id: migrated.id, username: migrated.username },
        nick: null,
        pending: false,
      });
      expect(m.user.email).toBeUndefined();

      for (const [query, field, code] of [
        ['limit=0', 'limit', 'NUMBER_TYPE_MIN'],
        ['limit=1001', 'limit', 'NUMBER_TYPE_MAX'],
        ['limit=ten', 'limit', 'NUMBER_TYPE_COERCE'],
        ['after=abc', 'after', 'NUMBER_TYPE_COERCE'],
      ]) {
        const res = await bot(`/guilds/${SIM_GUILD_ID}/members?${query}`);
        expect(res.status).toBe(400);
        const body = await res.json();
        expect(body).toMatchObject({ message: 'Invalid Form Body', code: 50035 });
        expect(body.errors[field]._errors[0].code).toBe(code);
      }
    });

    it('answers one member, 404 Unknown Member (10007) for a non-member, 404 Unknown Guild elsewhere', async () => {
      const res = await bot(`/guilds/${SIM_GUILD_ID}/members/${bigId.id}`);
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({
        user: { id: bigId.id },
        roles: [SIM_GUILD_ROLES.member],
      });
      const none = await bot(`/guilds/${SIM_GUILD_ID}/members/${DISCORD_FIXTURES.noEmail.id}`);
      expect(none.status).toBe(404);
      expect(await none.json()).toEqual({ message: 'Unknown Member', code: 10007 });
      const elsewhere = await bot('/guilds/1111111111111111111/members?limit=5');
      expect(elsewhere.status).toBe(404);
      expect(await elsewhere.json()).toEqual({ message: 'Unknown Guild', code: 10004 });
    });

    it('answers the guild, with approximate counts on ?with_counts=true', async () => {
      const plain = await (await bot(`/guilds/${SIM_GUILD_ID}`)).json();
      expect(plain).toMatchObject({ id: SIM_GUILD_ID, name: 'Sandbox Server' });
      expect(plain.roles.map((r: any) => r.id)).toEqual(
        expect.arrayContaining([SIM_GUILD_ID, ...Object.values(SIM_GUILD_ROLES)]),
      );
      expect(plain.approximate_member_count).toBeUndefined();
      sim.guild.createMembers(3);
      const counted = await (await bot(`/guilds/${SIM_GUILD_ID}?with_counts=true`)).json();
      expect(counted.approximate_member_count).toBe(8);
    });

    it('refuses the member listing with 403 Missing Access when the Server Members intent is off', async () => {
      sim.knobs.serverMembersIntent = false;
      const res = await bot(`/guilds/${SIM_GUILD_ID}/members?limit=10`);
      expect(res.status).toBe(403);
      expect(await res.json()).toEqual({ message: 'Missing Access', code: 50001 });
      // One member by id does not need the intent.
      expect((await bot(`/guilds/${SIM_GUILD_ID}/members/${migrated.id}`)).status).toBe(200);
    });

    it('sends X-RateLimit headers and answers 429 once a bucket is spent', async () => {
      sim.rateLimits.routes['GET /guilds/:guild/members'] = { limit: 2, windowMs: 60_000 };
      const a = await bot(`/guilds/${SIM_GUILD_ID}/members`);
      expect(a.headers.get('x-ratelimit-limit')).toBe('2');
      expect(a.headers.get('x-ratelimit-remaining')).toBe('1');
      expect(Number(a.headers.get('x-ratelimit-reset-after'))).toBeGreaterThan(0);
      expect(Number(a.headers.get('x-ratelimit-reset'))).toBeGreaterThan(Date.now() / 1000);
      expect(a.headers.get('x-ratelimit-bucket')).toMatch(/^[0-9a-f]{32}$/);
      const b = await bot(`/guilds/${SIM_GUILD_ID}/members`);
      expect(b.headers.get('x-ratelimit-remaining')).toBe('0');
      const c = await bot(`/guilds/${SIM_GUILD_ID}/members`);
      expect(c.status).toBe(429);
      const body = await c.json();
      expect(body).toMatchObject({ message: 'You are being rate limited.', global: false });
      expect(body.retry_after).toBeGreaterThan(0);
      expect(Number(c.headers.get('retry-after'))).toBe(Math.ceil(body.retry_after));
      expect(c.headers.get('x-ratelimit-scope')).toBe('user');
      // Another route has its own bucket.
      expect((await bot(`/guilds/${SIM_GUILD_ID}`)).status).toBe(200);
      expect(sim.stats.botCalls['GET /guilds/:guild/members']).toBe(3);
      expect(sim.stats.botRateLimited).toBe(1);
      sim.resetBotCalls();
      expect(sim.stats.botCalls).toEqual({});
    });

    it('forces the next N answers to be 429, per route or global', async () => {
      const rateLimited = (retryAfter: number, global: boolean) => ({
        message: 'You are being rate limited.',
        retry_after: retryAfter,
        global,
      });
      sim.forceRateLimit(2, { route: 'GET /guilds/:guild', retryAfter: 1.5 });
      expect((await bot('/gateway/bot')).status).toBe(200);
      const r1 = await bot(`/guilds/${SIM_GUILD_ID}`);
      expect(r1.status).toBe(429);
      expect(await r1.json()).toEqual(rateLimited(1.5, false));
      expect(r1.headers.get('retry-after')).toBe('2');
      expect((await bot(`/guilds/${SIM_GUILD_ID}`)).status).toBe(429);
      expect((await bot(`/guilds/${SIM_GUILD_ID}`)).status).toBe(200);
      expect(sim.knobs.botRateLimit).toBeNull();

      sim.forceRateLimit(1, { global: true, retryAfter: 0.2 });
      const g = await bot(`/guilds/${SIM_GUILD_ID}/members`);
      expect(g.status).toBe(429);
      expect(await g.json()).toEqual(rateLimited(0.2, true));
      expect(g.headers.get('x-ratelimit-global')).toBe('true');
      expect(g.headers.get('x-ratelimit-scope')).toBe('global');
    });

    it('fails every bot route the way botFailure says', async () => {
      sim.knobs.botFailure = { status: 502, plainText: true };
      const res = await bot(`/guilds/${SIM_GUILD_ID}/members`);
      expect(res.status).toBe(502);
      expect(sim.stats.botCalls['GET /guilds/:guild/members']).toBe(1);
    });

    it('keeps the OAuth side on the same guild state, and /users/@me carries mfa_enabled', async () => {
      sim.knobs.autoApproveAs = legacy.id;
      sim.redirectUris = ['http://127.0.0.1:9/cb'];
      const verifier = 'v'.repeat(43);
      const challenge = createHash('sha256').update(verifier).digest('base64url');
      const auth = await jfetch(
        `${base}/oauth2/authorize?${new URLSearchParams({
          client_id: 'sandbox-client-id',
          redirect_uri: 'http://127.0.0.1:9/cb',
          response_type: 'code',
          scope: 'identify guilds.members.read',
          code_challenge: challenge,
          code_challenge_method: 'S256',
        })}`,
        { redirect: 'manual' },
      );
      const code = new URL(auth.headers.get('location')!).searchParams.get('code')!;
      const tok = await (
        await jfetch(`${base}/api/oauth2/token`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({
            client_id: 'sandbox-client-id',
            client_secret: 'sandbox-client-secret',
            grant_type: 'authorization_code',
            code,
            redirect_uri: 'http://127.0.0.1:9/cb',
            code_verifier: verifier,
          }).toString(),
        })
      ).json();
      const bearer = { Authorization: `Bearer ${tok.access_token}` };
      const me = () =>
        jfetch(`${base}/api/v10/users/@me`, { headers: bearer }).then((r) => r.json());
      const member = () =>
        jfetch(`${base}/api/v10/users/@me/guilds/${SIM_GUILD_ID}/member`, { headers: bearer });
      expect((await me()).mfa_enabled).toBe(false);
      sim.updateUser(legacy.id, { mfa_enabled: true });
      expect((await me()).mfa_enabled).toBe(true);

      sim.guild.setRoles(legacy.id, [SIM_GUILD_ROLES.moderator]);
      expect((await (await member()).json()).roles).toEqual([SIM_GUILD_ROLES.moderator]);
      sim.guild.kick(legacy.id);
      expect((await member()).status).toBe(404);
      sim.guild.addMember(legacy.id, [SIM_GUILD_ROLES.veteran]);
      expect((await (await member()).json()).roles).toEqual([SIM_GUILD_ROLES.veteran]);
    });
  });

  it('serves the gateway again after close() and listen()', async () => {
    const other = new DiscordSimulator();
    for (let round = 0; round < 2; round++) {
      const url = await other.listen(0);
      const ws = new WebSocket(`${url.replace('http', 'ws')}/gateway?v=10&encoding=json`);
      const hello = await new Promise<any>((done) =>
        ws.once('message', (data) => done(JSON.parse(String(data)))),
      );
      expect(hello.op).toBe(10);
      await other.close();
    }
  });

  describe('driver', () => {
    it('refuses what Discord would refuse', () => {
      expect(() => sim.guild.setRoles(DISCORD_FIXTURES.noEmail.id, [])).toThrow(/not a member/);
      expect(() => sim.guild.addMember(migrated.id)).toThrow(/already a member/);
      sim.guild.ban(animated.id);
      expect(sim.guild.isMember(animated.id)).toBe(false);
      expect(() => sim.guild.addMember(animated.id)).toThrow(/banned/);
      sim.guild.unban(animated.id);
      expect(() => sim.guild.unban(animated.id)).toThrow(/not banned/);
      sim.guild.addMember(animated.id);
      expect(sim.guild.rolesOf(animated.id)).toEqual([]);
    });

    it('creates 10,000 members at once, listed in pages of 1000', async () => {
      const ids = sim.guild.createMembers(10_000);
      expect(ids).toHaveLength(10_000);
      expect(sim.guild.memberCount).toBe(10_005);
      let after = '0';
      let pages = 0;
      let seen = 0;
      for (;;) {
        const page = await (
          await bot(`/guilds/${SIM_GUILD_ID}/members?limit=1000&after=${after}`)
        ).json();
        if (page.length === 0) break;
        pages++;
        seen += page.length;
        after = page[page.length - 1].user.id;
      }
      expect(seen).toBe(10_005);
      expect(pages).toBe(11);
      // Generated accounts stay off the consent page's buttons.
      expect(sim.users.size).toBe(Object.keys(DISCORD_FIXTURES).length + 10_000);
    });
  });

  describe('members page', () => {
    const post = (
      form: Record<string, string | string[]>,
      headers: Record<string, string> = {},
    ) => {
      const body = new URLSearchParams();
      for (const [k, v] of Object.entries(form))
        for (const one of Array.isArray(v) ? v : [v]) body.append(k, one);
      return jfetch(`${base}/sandbox/members`, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...headers },
        body: body.toString(),
      });
    };

    it('lists members with a checkbox per role, checked for the roles they have', async () => {
      const html = await (await jfetch(`${base}/sandbox/members`)).text();
      expect(html).toContain('<span id="member-count">5</span>');
      const row = html.slice(html.indexOf(`<tr data-user-id="${migrated.id}"`));
      const rowHtml = row.slice(0, row.indexOf('</tr>'));
      expect(rowHtml).toContain(`value="${SIM_GUILD_ROLES.member}" data-role="Member" checked`);
      expect(rowHtml).toContain(
        `value="${SIM_GUILD_ROLES.moderator}" data-role="Moderator" checked`,
      );
      expect(rowHtml).toContain(`value="${SIM_GUILD_ROLES.veteran}" data-role="Veteran">`);
      // Accounts outside the server can be added.
      expect(html).toContain(`<li data-user-id="${DISCORD_FIXTURES.noEmail.id}">`);
      expect(html).toContain('<span id="gateway-status">up</span>');
    });

    it('saves roles, kicks, bans, unbans and adds through the driver, with the gateway events', async () => {
      const c = new WebSocket(`${base.replace('http', 'ws')}/gateway?v=10&encoding=json`);
      const events: string[] = [];
      c.on('message', (data) => {
        const f = JSON.parse(String(data));
        if (f.op === 10)
          c.send(JSON.stringify({ op: 2, d: { token: TOKEN, intents: ALL, properties: {} } }));
        if (f.op === 0) events.push(f.t);
      });
      await waitFor(() => events.includes('GUILD_CREATE'), 'the session');

      const saved = await post({
        user_id: legacy.id,
        action: 'save',
        roles: [SIM_GUILD_ROLES.moderator],
      });
      expect(saved.status).toBe(303);
      expect(saved.headers.get('location')).toMatch(/^\/sandbox\/members\?done=/);
      expect(sim.guild.rolesOf(legacy.id)).toEqual([SIM_GUILD_ROLES.moderator]);
      expect((await post({ user_id: legacy.id, action: 'kick' })).status).toBe(303);
      expect(sim.guild.isMember(legacy.id)).toBe(false);
      expect((await post({ user_id: bigId.id, action: 'ban' })).status).toBe(303);
      expect(sim.guild.isBanned(bigId.id)).toBe(true);
      expect((await post({ user_id: bigId.id, action: 'unban' })).status).toBe(303);
      expect((await post({ user_id: legacy.id, action: 'add' })).status).toBe(303);
      expect(sim.guild.rolesOf(legacy.id)).toEqual([]);
      await waitFor(() => events.length === 8, 'the events');
      expect(events.slice(2)).toEqual([
        'GUILD_MEMBER_UPDATE',
        'GUILD_MEMBER_REMOVE',
        'GUILD_MEMBER_REMOVE',
        'GUILD_BAN_ADD',
        'GUILD_BAN_REMOVE',
        'GUILD_MEMBER_ADD',
      ]);
      const after = await (await jfetch(`${base}/sandbox/members?done=Saved`)).text();
      expect(after).toContain('<p id="notice" role="status">Saved</p>');

      expect((await post({ action: 'gateway-down' })).status).toBe(303);
      expect(sim.gateway.refusing).toBe(true);
      await waitFor(() => sim.gateway.openSessions === 0, 'the cut');
      expect((await post({ action: 'gateway-up' })).status).toBe(303);
      expect(sim.gateway.refusing).toBe(false);
    });

    it('refuses bad input with a 4xx and cross-site posts', async () => {
      const notMember = await post({ user_id: DISCORD_FIXTURES.noEmail.id, action: 'kick' });
      expect(notMember.status).toBe(400);
      expect(await notMember.text()).toMatch(/not a member/);
      expect((await post({ user_id: legacy.id, action: 'save', roles: ['<b>'] })).status).toBe(400);
      expect((await post({ user_id: legacy.id, action: 'explode' })).status).toBe(400);
      const cross = await post(
        { user_id: legacy.id, action: 'kick' },
        { Origin: 'http://evil.example' },
      );
      expect(cross.status).toBe(403);
      expect(sim.guild.isMember(legacy.id)).toBe(true);
    });

    it('pages through a large server 50 members at a time', async () => {
      sim.guild.createMembers(120);
      const html = await (await jfetch(`${base}/sandbox/members`)).text();
      expect(html.match(/<tr data-user-id=/g)).toHaveLength(50);
      const next = /id="next-page" href="([^"]+)"/.exec(html)![1];
      const second = await (await jfetch(`${base}${next.replace(/&amp;/g, '&')}`)).text();
      expect(second.match(/<tr data-user-id=/g)).toHaveLength(50);
      expect(second).not.toContain(`data-user-id="${migrated.id}"`);
    });
  });

  describe('gateway (raw WebSocket)', () => {
    type Frame = { op: number; d: any; s: number | null; t: string | null };

    function open(path = '/gateway?v=10&encoding=json') {
      const ws = new WebSocket(`${base.replace('http', 'ws')}${path}`);
      const frames: Frame[] = [];
      let closeCode: number | null = null;
      ws.on('message', (data) => frames.push(JSON.parse(String(data))));
      ws.on('close', (code) => (closeCode = code));
      return {
        ws,
        frames,
        closed: () => closeCode,
        send: (p: unknown) => ws.send(JSON.stringify(p)),
        next: async (pred: (f: Frame) => boolean, what: string) => {
          await waitFor(() => frames.some(pred), what);
          return frames.find(pred)!;
        },
      };
    }

    const identify = (intents: number, token = TOKEN) => ({
      op: 2,
      d: { token, intents, properties: { os: 'linux', browser: 'test', device: 'test' } },
    });

    it('says Hello, acks heartbeats, and sends READY then GUILD_CREATE with the GUILDS intent', async () => {
      sim.gateway.heartbeatIntervalMs = 1234;
      const c = open();
      const hello = await c.next((f) => f.op === 10, 'hello');
      expect(hello.d.heartbeat_interval).toBe(1234);
      c.send({ op: 1, d: null });
      await c.next((f) => f.op === 11, 'heartbeat ack');
      c.send(identify(ALL));
      const ready = await c.next((f) => f.t === 'READY', 'READY');
      expect(ready.s).toBe(1);
      expect(ready.d).toMatchObject({
        v: 10,
        user: { id: SIM_BOT_USER_ID, bot: true },
        guilds: [{ id: SIM_GUILD_ID, unavailable: true }],
        resume_gateway_url: `${base.replace('http', 'ws')}/gateway/resume`,
      });
      expect(ready.d.session_id).toMatch(/^[0-9a-f]{32}$/);
      const create = await c.next((f) => f.t === 'GUILD_CREATE', 'GUILD_CREATE');
      expect(create.s).toBe(2);
      expect(create.d).toMatchObject({ id: SIM_GUILD_ID, member_count: 5, unavailable: false });
      expect(sim.gateway.stats.identifies).toBe(1);
      expect(sim.gateway.openSessions).toBe(1);
      c.ws.close();
    });

    it('closes with 4004 for a bad token, 4014 for a privileged intent that is off, 4003 before identify', async () => {
      const bad = open();
      await bad.next((f) => f.op === 10, 'hello');
      bad.send(identify(ALL, 'nope'));
      await waitFor(() => bad.closed() !== null, 'close');
      expect(bad.closed()).toBe(GATEWAY_CLOSE.AuthenticationFailed);

      sim.knobs.serverMembersIntent = false;
      const denied = open();
      await denied.next((f) => f.op === 10, 'hello');
      denied.send(identify(ALL));
      await waitFor(() => denied.closed() !== null, 'close');
      expect(denied.closed()).toBe(GATEWAY_CLOSE.DisallowedIntents);

      // Without the members intent it is fine.
      const fine = open();
      await fine.next((f) => f.op === 10, 'hello');
      fine.send(identify(SIM_GATEWAY_INTENTS.Guilds | SIM_GATEWAY_INTENTS.GuildModeration));
      await fine.next((f) => f.t === 'READY', 'READY');
      fine.ws.close();

      const early = open();
      await early.next((f) => f.op === 10, 'hello');
      early.send({ op: 8, d: { guild_id: SIM_GUILD_ID, query: '', limit: 0 } });
      await waitFor(() => early.closed() !== null, 'close');
      expect(early.closed()).toBe(GATEWAY_CLOSE.NotAuthenticated);
    });

    it('dispatches member events only with GUILD_MEMBERS and bans only with GUILD_MODERATION', async () => {
      const members = open();
      const moderation = open();
      await members.next((f) => f.op === 10, 'hello');
      await moderation.next((f) => f.op === 10, 'hello');
      members.send(identify(SIM_GATEWAY_INTENTS.GuildMembers));
      moderation.send(identify(SIM_GATEWAY_INTENTS.GuildModeration));
      await members.next((f) => f.t === 'READY', 'READY');
      await moderation.next((f) => f.t === 'READY', 'READY');

      sim.guild.setRoles(legacy.id, [SIM_GUILD_ROLES.member]);
      sim.guild.ban(legacy.id, 'spam');
      sim.guild.unban(legacy.id);
      sim.guild.addMember(legacy.id, [SIM_GUILD_ROLES.veteran]);
      sim.guild.kick(legacy.id);
      await members.next((f) => f.t === 'GUILD_MEMBER_REMOVE' && f.s === 5, 'the kick');
      await moderation.next((f) => f.t === 'GUILD_BAN_REMOVE', 'the unban');

      const seq = (c: ReturnType<typeof open>) =>
        c.frames.filter((f) => f.op === 0).map((f) => [f.s, f.t]);
      expect(seq(members)).toEqual([
        [1, 'READY'],
        [2, 'GUILD_MEMBER_UPDATE'],
        [3, 'GUILD_MEMBER_REMOVE'],
        [4, 'GUILD_MEMBER_ADD'],
        [5, 'GUILD_MEMBER_REMOVE'],
      ]);
      expect(seq(moderation)).toEqual([
        [1, 'READY'],
        [2, 'GUILD_BAN_ADD'],
        [3, 'GUILD_BAN_REMOVE'],
      ]);
      const update = members.frames.find((f) => f.t === 'GUILD_MEMBER_UPDATE')!;
      expect(update.d).toMatchObject({
        guild_id: SIM_GUILD_ID,
        roles: [SIM_GUILD_ROLES.member],
        user: { id: legacy.id, username: legacy.username },
      });
      const add = members.frames.find((f) => f.t === 'GUILD_MEMBER_ADD')!;
      expect(add.d).toMatchObject({
        guild_id: SIM_GUILD_ID,
        roles: [SIM_GUILD_ROLES.veteran],
        user: { id: legacy.id },
      });
      expect(moderation.frames.find((f) => f.t === 'GUILD_BAN_ADD')!.d).toMatchObject({
        guild_id: SIM_GUILD_ID,
        user: { id: legacy.id },
      });
      members.ws.close();
      moderation.ws.close();
    });

    it('answers a resume with an unknown session with op 9', async () => {
      const c = open();
      await c.next((f) => f.op === 10, 'hello');
      c.send({ op: 6, d: { token: TOKEN, session_id: 'f'.repeat(32), seq: 3 } });
      const invalid = await c.next((f) => f.op === 9, 'invalid session');
      expect(invalid.d).toBe(false);
      expect(sim.gateway.stats.failedResumes).toBe(1);
      c.ws.close();
    });

    it('resumes a session with a replay of what it missed, not once the resume window is over', async () => {
      const first = open();
      await first.next((f) => f.op === 10, 'hello');
      first.send(identify(SIM_GATEWAY_INTENTS.GuildMembers));
      const ready = await first.next((f) => f.t === 'READY', 'READY');
      first.ws.terminate();
      await waitFor(() => sim.gateway.openSessions === 0, 'the drop');
      sim.guild.setRoles(legacy.id, []);
      sim.guild.kick(animated.id);

      const again = open('/gateway/resume?v=10&encoding=json');
      await again.next((f) => f.op === 10, 'hello');
      again.send({ op: 6, d: { token: TOKEN, session_id: ready.d.session_id, seq: 1 } });
      await again.next((f) => f.t === 'RESUMED', 'RESUMED');
      expect(again.frames.filter((f) => f.op === 0).map((f) => [f.s, f.t])).toEqual([
        [2, 'GUILD_MEMBER_UPDATE'],
        [3, 'GUILD_MEMBER_REMOVE'],
        [4, 'RESUMED'],
      ]);
      again.ws.terminate();
      await waitFor(() => sim.gateway.openSessions === 0, 'the second drop');

      sim.gateway.resumeWindowMs = 0;
      await new Promise((r) => setTimeout(r, 5));
      const late = open();
      await late.next((f) => f.op === 10, 'hello');
      late.send({ op: 6, d: { token: TOKEN, session_id: ready.d.session_id, seq: 4 } });
      expect((await late.next((f) => f.op === 9, 'invalid session')).d).toBe(false);
      expect(sim.gateway.sessionCount).toBe(0);
      late.ws.close();
    });

    it('refuses connections while down', async () => {
      sim.gateway.down();
      const c = open();
      let error: Error | null = null;
      c.ws.on('error', (e) => (error = e));
      await waitFor(() => error !== null, 'the refusal');
      expect(String(error)).toMatch(/503/);
      expect(sim.gateway.stats.refused).toBe(1);
      sim.gateway.up();
      const d = open();
      await d.next((f) => f.op === 10, 'hello after up');
      d.ws.close();
    });
  });

  describe('real @discordjs/ws and @discordjs/rest clients', () => {
    let manager: WebSocketManager | null = null;
    /** A manager on the simulator with a fresh session store (the default one is process-wide). */
    const managerWithSessions = (
      more: Partial<ConstructorParameters<typeof WebSocketManager>[0]> = {},
    ) => {
      const rest = new REST({ api: `${base}/api`, version: '10' }).setToken(TOKEN);
      const sessions = new Map<number, any>();
      return new WebSocketManager({
        token: TOKEN,
        intents: ALL,
        rest,
        retrieveSessionInfo: (id) => sessions.get(id) ?? null,
        updateSessionInfo: (id, info) => {
          if (info) sessions.set(id, info);
          else sessions.delete(id);
        },
        ...more,
      });
    };
    afterEach(async () => {
      // A shard between reconnect attempts ignores destroy(): let it settle on a session first.
      if (!manager) return;
      sim.gateway.up();
      await waitFor(() => sim.gateway.openSessions === 1, 'the client back');
      await manager.destroy();
      manager = null;
    });

    it('connects, gets a member update, resumes after a drop with the missed event, and is refused while down', async () => {
      sim.gateway.heartbeatIntervalMs = 500;
      manager = managerWithSessions({
        // No 5 s spacing between identifies (one shard, one process).
        buildIdentifyThrottler: () => ({ waitForIdentify: async () => undefined }),
      });
      const dispatches: { t: string; s: number; d: any }[] = [];
      let resumed = 0;
      let closedCodes: number[] = [];
      manager.on(WebSocketShardEvents.Dispatch, (payload: any) => dispatches.push(payload));
      manager.on(WebSocketShardEvents.Resumed, () => resumed++);
      manager.on(WebSocketShardEvents.Closed, (code: number) => closedCodes.push(code));
      manager.on(WebSocketShardEvents.Error, () => undefined);

      await manager.connect();
      await waitFor(() => dispatches.some((p) => p.t === 'GUILD_CREATE'), 'GUILD_CREATE');
      expect(dispatches[0].t).toBe('READY');
      expect(sim.stats.botCalls['GET /gateway/bot']).toBeGreaterThanOrEqual(1);
      await waitFor(() => sim.gateway.stats.heartbeats >= 1, 'a heartbeat');

      sim.guild.setRoles(migrated.id, [SIM_GUILD_ROLES.veteran]);
      await waitFor(() => dispatches.some((p) => p.t === 'GUILD_MEMBER_UPDATE'), 'the update');
      expect(dispatches.find((p) => p.t === 'GUILD_MEMBER_UPDATE')!.d).toMatchObject({
        guild_id: SIM_GUILD_ID,
        roles: [SIM_GUILD_ROLES.veteran],
        user: { id: migrated.id },
      });

      // A drop without a close frame: the client resumes on the resume URL and gets what it missed.
      sim.gateway.dropConnections();
      sim.guild.kick(bigId.id);
      await waitFor(() => resumed === 1, 'the resume');
      await waitFor(
        () => dispatches.some((p) => p.t === 'GUILD_MEMBER_REMOVE'),
        'the missed event',
      );
      expect(dispatches.find((p) => p.t === 'GUILD_MEMBER_REMOVE')!.d.user.id).toBe(bigId.id);
      expect(sim.gateway.stats.identifies).toBe(1);
      expect(sim.gateway.stats.resumes).toBe(1);
      expect(sim.gateway.stats.resumeUrlConnections).toBe(1);
      expect(sim.gateway.openSessions).toBe(1);

      // op 7: the client reconnects and resumes again.
      sim.gateway.sendReconnect();
      await waitFor(() => resumed === 2, 'the second resume');
      sim.guild.ban(legacy.id);
      await waitFor(() => dispatches.some((p) => p.t === 'GUILD_BAN_ADD'), 'the ban');
      const seqs = dispatches.map((p) => p.s);
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));

      // Down: the open connection is cut and every new one is refused.
      closedCodes = [];
      sim.gateway.down();
      await waitFor(() => sim.gateway.stats.refused >= 2, 'refused reconnects');
      expect(sim.gateway.openSessions).toBe(0);
      expect(closedCodes.length).toBeGreaterThanOrEqual(2);
    });

    it('resumes a zombie connection (heartbeats not acknowledged)', async () => {
      sim.gateway.heartbeatIntervalMs = 100;
      sim.gateway.ackHeartbeats = false;
      manager = managerWithSessions();
      let resumed = 0;
      manager.on(WebSocketShardEvents.Resumed, () => resumed++);
      await manager.connect();
      await waitFor(() => resumed >= 1, 'the resume of the zombie connection');
      sim.gateway.ackHeartbeats = true;
      expect(sim.gateway.stats.identifies).toBe(1);
    });

    it('gets a "disallowed intents" error from the manager when the Server Members intent is off', async () => {
      sim.knobs.serverMembersIntent = false;
      const rest = new REST({ api: `${base}/api`, version: '10' }).setToken(TOKEN);
      const m = new WebSocketManager({
        token: TOKEN,
        intents: ALL,
        rest,
        retrieveSessionInfo: () => null,
        updateSessionInfo: () => undefined,
      });
      const errors: string[] = [];
      m.on(WebSocketShardEvents.Error, (e: Error) => errors.push(e.message));
      void m.connect().catch(() => undefined);
      await waitFor(() => errors.length === 1, 'the error');
      expect(errors).toEqual(['Used disallowed intents']);
      expect(sim.gateway.stats.closeCodes).toEqual([GATEWAY_CLOSE.DisallowedIntents]);
      expect(sim.gateway.stats.identifies).toBe(0);
      await m.destroy();
    });

    it('pages through members with REST and retries a forced 429 on its own', async () => {
      sim.guild.createMembers(2500);
      const rest = new REST({ api: `${base}/api`, version: '10' }).setToken(TOKEN);
      const limited: unknown[] = [];
      rest.on('rateLimited', (info) => limited.push(info));
      sim.forceRateLimit(1, { route: 'GET /guilds/:guild/members', retryAfter: 0.05 });
      const seen: string[] = [];
      let after = '0';
      for (;;) {
        const page = (await rest.get(`/guilds/${SIM_GUILD_ID}/members`, {
          query: new URLSearchParams({ limit: '1000', after }),
        })) as { user: { id: string } }[];
        seen.push(...page.map((m) => m.user.id));
        if (page.length < 1000) break;
        after = page[page.length - 1].user.id;
      }
      expect(seen).toEqual(sim.guild.memberIds());
      expect(seen).toHaveLength(2505);
      expect(sim.stats.botRateLimited).toBe(1);
      expect(sim.stats.botCalls['GET /guilds/:guild/members']).toBe(4); // 3 pages + the 429
      expect(limited).toHaveLength(1);

      // A global 429 too.
      sim.forceRateLimit(1, { global: true, retryAfter: 0.05 });
      const guild = (await rest.get(`/guilds/${SIM_GUILD_ID}`)) as { id: string };
      expect(guild.id).toBe(SIM_GUILD_ID);
      expect(sim.stats.botRateLimited).toBe(2);
      expect(limited).toHaveLength(2);
      expect(limited[1]).toMatchObject({ global: true });

      sim.knobs.serverMembersIntent = false;
      await expect(
        rest.get(`/guilds/${SIM_GUILD_ID}/members`, { query: new URLSearchParams({ limit: '1' }) }),
      ).rejects.toMatchObject({ code: 50001, status: 403 });
      await expect(
        rest.get(`/guilds/${SIM_GUILD_ID}/members/${DISCORD_FIXTURES.noEmail.id}`),
      ).rejects.toBeInstanceOf(DiscordAPIError);
    });
  });
});
