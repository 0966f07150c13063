import { createHmac } from 'node:crypto';
import type { DiscourseConnectModuleOptions } from 'nestjs-discourse-connect/internal';
import { DISCORD_FIXTURES } from 'nestjs-discourse-connect-simulators';
import { createJsonLogger, JsonLogger, JsonLoggingModule } from '../../src/logging';
import { TestBrowser, type Page } from '../support/browser';
import { signedHandshakeUrl, watchEarlyAnswers } from '../support/early-answers';
import {
  FORUM_SECRET,
  HTTP_ADAPTERS,
  SESSION_SECRET,
  startHarness,
  type Harness,
  API_KEY,
  WEBHOOK_SECRET,
} from '../support/harness';
import { waitFor } from '../support/wait';
const CLIENT_SECRET = 'sandbox-client-secret';

/**
 * The whole flow with the JSON logger writing to a captured stream: every line must be JSON,
 * none may contain a secret, token, signature, payload or cookie seen in the flow, and each
 * failure must leave one line for the operator with its reason and the request id.
 */
describe.each(HTTP_ADAPTERS)('structured logs (%s)', (adapter) => {
  const lines: string[] = [];
  const log = createJsonLogger({
    destination: {
      write: (chunk: string) => void lines.push(...chunk.split('\n').filter(Boolean)),
    },
  });
  let h: Harness;
  /** Every sensitive value the flow handled. */
  const seen = new Set<string>();
  const issuedTokens: string[] = [];

  const remember = (value: string | undefined | null) => {
    if (value && value.length >= 6) {
      seen.add(value);
      try {
        seen.add(decodeURIComponent(value));
      } catch {
        /* not encoded */
      }
    }
  };
  /** sso, sig, code and state values in the URLs a browser went through. */
  const rememberHops = (page: Page) => {
    for (const hop of page.hops) {
      for (const url of [hop.url, hop.location]) {
        if (!url) continue;
        const params = new URL(url, 'http://x').searchParams;
        for (const name of ['sso', 'sig', 'code', 'state', 'code_challenge'])
          remember(params.get(name));
      }
    }
  };
  const rememberCookies = (browser: TestBrowser) => {
    for (const jar of browser.cookies.values()) {
      for (const value of jar.values()) {
        remember(value);
        // express-session's "s:<id>.<signature>": neither part may appear either.
        const m = /^s:([^.]+)\.(.+)$/.exec(decodeURIComponent(value));
        if (m) {
          remember(m[1]);
          remember(m[2]);
        }
      }
    }
  };

  beforeAll(async () => {
    h = await startHarness('forRoot', {
      adapter,
      logger: new JsonLogger(log),
      importsBefore: [JsonLoggingModule.forRoot(log)],
      forumOptions: { apiKey: API_KEY, apiRateLimitPerMinute: 0, authOverridesName: true },
      moduleOptions: (o: DiscourseConnectModuleOptions) => ({
        ...o,
        forums: o.forums.map((f) => ({
          ...f,
          api: { key: API_KEY, timeoutMs: 2000 },
          webhookSecret: WEBHOOK_SECRET,
        })),
        sync: { ratePerMinute: 6000, pollIntervalMs: 50, backoffBaseMs: 100, backoffMaxMs: 400 },
      }),
    });
    const tokens = (h.discord as unknown as { accessTokens: Map<string, unknown> }).accessTokens;
    const set = tokens.set.bind(tokens);
    tokens.set = (key: string, value: unknown) => {
      issuedTokens.push(key);
      return set(key, value);
    };
  });
  afterAll(async () => h?.close());

  const byRequest = (reqId: string) =>
    lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((entry) => entry.reqId === reqId);
  /** The operator's lines about a failed request: what the module logged, not the access line. */
  const failureLines = (reqId: string) =>
    byRequest(reqId).filter((e) => e.msg !== 'request completed');

  it('runs the whole flow and writes no secret, token, signature, payload or cookie', async () => {
    const { migrated, legacy } = DISCORD_FIXTURES;

    // 1. Sign-in through the forum (SSO round trip, Discord OAuth, session cookie).
    h.discord.knobs.autoApproveAs = migrated.id;
    const member = new TestBrowser();
    const signedIn = await member.visit(`${h.forum.baseUrl}/session/sso?return_path=%2F`);
    expect(signedIn.status).toBe(200);
    expect(h.forum.findByExternalId(migrated.id)).toBeDefined();
    rememberHops(signedIn);
    rememberCookies(member);

    // 2. Bad signature.
    const sso = Buffer.from(
      `nonce=abcdef0123456789&return_sso_url=${encodeURIComponent(`${h.forumUrl}/session/sso_login`)}`,
    ).toString('base64');
    const badSig = createHmac('sha256', 'not-the-forum-secret').update(sso).digest('hex');
    remember(sso);
    remember(badSig);
    const forged = await fetch(
      `${h.appUrl}/discourse/sso?sso=${encodeURIComponent(sso)}&sig=${badSig}`,
      {
        headers: { 'x-request-id': 'req-bad-signature', accept: 'text/html' },
        redirect: 'manual',
      },
    );
    expect(forged.status).toBe(403);
    expect(forged.headers.get('x-request-id')).toBe('req-bad-signature');
    expect(await forged.text()).toContain('does not match');

    // 3. Unknown forum.
    const unknown = await fetch(`${h.appUrl}/discourse/forum?forum=nowhere`, {
      headers: { 'x-request-id': 'req-unknown-forum' },
      redirect: 'manual',
    });
    expect(unknown.status).toBe(400);

    // 4. Discord denied.
    h.discord.knobs.deny = true;
    const denied = new TestBrowser();
    const deniedPage = await denied.visit(`${h.appUrl}/auth/discord`);
    h.discord.knobs.deny = false;
    expect(deniedPage.status).toBe(403);
    expect(deniedPage.body).toContain('You cancelled signing in with Discord');
    const deniedId = deniedPage.headers.get('x-request-id')!;
    expect(deniedId).toMatch(/^[0-9a-f-]{36}$/);
    rememberHops(deniedPage);
    rememberCookies(denied);

    // 5. A profile change synced through the admin API, a signed webhook, then sign-out (API log-out).
    h.forum.webhooks = { url: `${h.appUrl}/discourse/webhooks`, secret: WEBHOOK_SECRET };
    h.discord.knobs.autoApproveAs = legacy.id;
    const other = new TestBrowser();
    rememberHops(await other.visit(`${h.forum.baseUrl}/session/sso?return_path=%2F`));
    h.discord.updateUser(legacy.id, { global_name: 'Renamed For Sync' });
    const again = await other.visit(`${h.appUrl}/auth/discord`);
    rememberHops(again);
    rememberCookies(other);
    await waitFor(() => h.forum.stats.syncSsoCalls >= 1, 'a sync_sso call');
    await h.forum.flushWebhooks();
    expect(h.forum.stats.webhookDeliveries.some((d) => d.status === 200)).toBe(true);
    const out = await member.request(`${h.appUrl}/auth/logout`, {
      method: 'POST',
      headers: { origin: h.appUrl, 'sec-fetch-site': 'same-origin' },
    });
    expect(out.status).toBe(303);
    await waitFor(() => h.forum.stats.apiLogOuts >= 1, 'the forum log-out');
    h.forum.webhooks = undefined;

    expect(issuedTokens.length).toBeGreaterThan(0);
    for (const token of issuedTokens) remember(token);
    for (const secret of [FORUM_SECRET, SESSION_SECRET, API_KEY, WEBHOOK_SECRET, CLIENT_SECRET])
      remember(secret);

    // Every line is JSON; none carries a sensitive value.
    expect(lines.length).toBeGreaterThan(20);
    for (const line of lines) expect(() => JSON.parse(line)).not.toThrow();
    expect(seen.size).toBeGreaterThan(15);
    const leaks = [...seen].flatMap((value) =>
      lines.filter((l) => l.includes(value)).map((l) => ({ value, line: l })),
    );
    expect(leaks).toEqual([]);

    // The access lines exist, with the redacted fields marked.
    const access = lines.map((l) => JSON.parse(l)).filter((e) => e.msg === 'request completed');
    expect(access.length).toBeGreaterThan(10);
    expect(access.some((e) => e.req?.headers?.cookie === '[Redacted]')).toBe(true);
    expect(
      access.some((e) => e.req?.query?.sig === '[Redacted]' && e.req?.query?.sso === '[Redacted]'),
    ).toBe(true);
    expect(
      access.some(
        (e) => e.req?.query?.code === '[Redacted]' && e.req?.query?.state === '[Redacted]',
      ),
    ).toBe(true);
    expect(access.some((e) => e.res?.headers?.['set-cookie'] === '[Redacted]')).toBe(true);
    expect(access.some((e) => e.res?.headers?.location === '[Redacted]')).toBe(true);
    for (const e of access) expect(e.req.path).not.toContain('?');

    // Each failure: exactly one operator line, with the reason and the request id.
    for (const [reqId, reason, words] of [
      ['req-bad-signature', 'bad_signature', /signature .* does not match/],
      ['req-unknown-forum', 'unknown_forum', /no forum by that name/],
      [deniedId, 'discord_access_denied', /cancelled signing in with Discord/],
    ] as const) {
      const found = failureLines(reqId);
      expect(found).toHaveLength(1);
      expect(found[0]).toMatchObject({ level: 'warn', reqId, context: 'DiscourseConnect' });
      expect(found[0].msg).toContain(reason);
      expect(found[0].msg).toMatch(words);
      expect(byRequest(reqId).filter((e) => e.msg === 'request completed')).toHaveLength(1);
    }
  });

  it('gives a signed-in handshake (answered early where the adapter allows) its request id and one access line', async () => {
    h.discord.knobs.autoApproveAs = DISCORD_FIXTURES.legacy.id;
    const member = new TestBrowser();
    expect((await member.visit(`${h.forum.baseUrl}/session/sso?return_path=%2F`)).status).toBe(200);
    const { answers: answered, stop } = watchEarlyAnswers(h.app);
    const res = await member.request(signedHandshakeUrl(h, 'logged-handshake'), {
      headers: { 'x-request-id': 'req-signed-in-handshake' },
      redirect: 'manual',
    });
    stop();
    expect(res.status).toBe(302);
    expect(res.headers.get('x-request-id')).toBe('req-signed-in-handshake');
    if (adapter === 'fastify') expect(answered).toEqual([expect.stringContaining('sso_login?')]);
    await waitFor(() => byRequest('req-signed-in-handshake').length > 0, 'the access line');
    const access = byRequest('req-signed-in-handshake').filter(
      (e) => e.msg === 'request completed',
    );
    expect(access).toHaveLength(1);
    expect(access[0]).toMatchObject({
      req: {
        method: 'GET',
        path: '/discourse/sso',
        query: { sso: '[Redacted]', sig: '[Redacted]' },
      },
      res: { statusCode: 302, headers: { location: '[Redacted]' } },
    });
  });

  it("bounds and strips Discord's error / error_description on the callback before they reach a log line", async () => {
    const hostile = `invalid_scope\r\n{"level":"fatal","msg":"forged"}\u001b[31m${'E'.repeat(5000)}`;
    const description = `\n${'D'.repeat(6000)}`;
    const res = await fetch(
      `${h.appUrl}/auth/discord/callback?${new URLSearchParams({ error: hostile, error_description: description })}`,
      { headers: { 'x-request-id': 'req-hostile-error' }, redirect: 'manual' },
    );
    expect(res.status).toBe(400);
    const entries = byRequest('req-hostile-error');
    expect(entries.length).toBeGreaterThanOrEqual(2);
    for (const entry of entries) {
      const text = JSON.stringify(entry);
      expect(text.length).toBeLessThan(4000);
      expect(text).not.toMatch(/\\[rnu]|forged"/);
    }
    const [failure] = failureLines('req-hostile-error');
    expect(failure.msg).toContain('discord_authorization_error:invalid_scope{');
    const access = entries.find((e) => e.msg === 'request completed') as {
      req: { query: Record<string, string> };
    };
    expect(access.req.query.error.length).toBeLessThanOrEqual(257);
    expect(access.req.query.error_description.length).toBeLessThanOrEqual(257);
  });

  it.each([
    ['too long', 'a'.repeat(65)],
    ['with a space', 'bad id'],
    ['with a colon', 'x:y'],
    ['with markup', '<script>'],
    ['with a slash', 'a/b'],
  ])('a client X-Request-Id %s is replaced by a generated one', async (_n, id) => {
    const res = await fetch(`${h.appUrl}/health`, { headers: { 'x-request-id': id } });
    const used = res.headers.get('x-request-id')!;
    expect(used).not.toBe(id);
    expect(used).toMatch(/^[0-9a-f-]{36}$/);
    expect(lines.some((l) => l.includes(JSON.stringify(id)))).toBe(false);
  });

  it('writes every redacted header and parameter of an access line as [Redacted]', async () => {
    const secrets = {
      authorization: 'Bearer access-line-authorization',
      referer: 'https://forum.example/t/access-line-referer',
      'api-key': 'access-line-api-key',
      'x-discourse-event-signature': 'sha256=access-line-signature',
      cookie: 'access-line=cookie',
    };
    const res = await fetch(
      `${h.appUrl}/health?sso=access-line-sso&sig=access-line-sig&code=access-line-code&state=access-line-state&page=2`,
      { headers: { ...secrets, 'x-request-id': 'req-redacted-access' } },
    );
    expect(res.status).toBe(200);
    await waitFor(() => byRequest('req-redacted-access').length > 0, 'the access line');
    const [line] = lines.filter((l) => l.includes('"req-redacted-access"'));
    expect(line).not.toMatch(/access-line-/);
    const access = JSON.parse(line) as {
      req: { headers: Record<string, string>; query: Record<string, string> };
    };
    for (const name of Object.keys(secrets)) expect(access.req.headers[name]).toBe('[Redacted]');
    expect(access.req.query).toEqual({
      sso: '[Redacted]',
      sig: '[Redacted]',
      code: '[Redacted]',
      state: '[Redacted]',
      page: '2',
    });
    expect(access.req.headers['user-agent']).toBeDefined();
  });

  it('a client X-Request-Id of up to 64 letters, digits and . _ - is kept', async () => {
    const id = `Req.1_${'x'.repeat(56)}-Z`;
    const res = await fetch(`${h.appUrl}/health`, { headers: { 'x-request-id': id } });
    expect(res.headers.get('x-request-id')).toBe(id);
  });

  it('the SQLite database file is readable by its owner only, and so are its WAL files', () => {
    const { statSync, existsSync } = jest.requireActual<typeof import('node:fs')>('node:fs');
    for (const file of [h.databaseFile, `${h.databaseFile}-wal`, `${h.databaseFile}-shm`]) {
      if (file !== h.databaseFile && !existsSync(file)) continue;
      expect([file, (statSync(file).mode & 0o777).toString(8)]).toEqual([file, '600']);
    }
  });
});
