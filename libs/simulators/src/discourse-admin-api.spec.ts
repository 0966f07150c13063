import { createHmac } from 'node:crypto';
import { DiscourseSimulator } from './discourse-simulator';
import { DISCOURSE_MESSAGES } from './discourse-admin-api';

const SECRET = 'forum-shared-secret-0123456789';
const KEY = 'admin-api-key-0123456789';

const json = (res: Response): Promise<any> => res.json();

function signed(fields: Record<string, string>): { sso: string; sig: string } {
  const sso = Buffer.from(new URLSearchParams(fields).toString()).toString('base64');
  return { sso, sig: createHmac('sha256', SECRET).update(sso).digest('hex') };
}

describe('DiscourseSimulator admin API', () => {
  let t = 1_700_000_000_000;
  const sim = new DiscourseSimulator({ secret: SECRET, apiKey: KEY, now: () => t });
  let base: string;

  beforeAll(async () => {
    base = await sim.listen(0);
  });
  afterAll(() => sim.close());
  afterEach(() => {
    sim.reset();
    sim.apiKey = KEY;
    sim.apiRateLimitPerMinute = 60;
    t += 120_000;
  });

  function api(
    method: string,
    path: string,
    form?: Record<string, string>,
    headers: Record<string, string> = {},
  ) {
    return fetch(`${base}${path}`, {
      method,
      headers: {
        'Api-Key': KEY,
        'Api-Username': 'system',
        ...(form ? { 'Content-Type': 'application/x-www-form-urlencoded' } : {}),
        ...headers,
      },
      body: form ? new URLSearchParams(form).toString() : undefined,
    });
  }

  const ava = {
    external_id: '293847561029384756',
    email: 'ava@example.com',
    username: 'ava',
    name: 'Ava',
  };

  it('sync_sso creates, then updates, a user without a nonce', async () => {
    const res = await api(
      'POST',
      '/admin/users/sync_sso',
      signed({ ...ava, add_groups: 'members' }),
    );
    expect(res.status).toBe(200);
    const user = await json(res);
    expect(user).toMatchObject({
      id: expect.any(Number),
      username: 'ava',
      external_id: ava.external_id,
    });
    expect(sim.findByExternalId(ava.external_id)!.groups).toEqual(['members']);

    const again = await json(
      await api('POST', '/admin/users/sync_sso', signed({ ...ava, admin: 'true' })),
    );
    expect(again.id).toBe(user.id);
    expect(sim.users).toHaveLength(1);
    expect(sim.users[0].admin).toBe(true);
    expect(sim.stats.syncSsoCalls).toBe(2);
  });

  it('sync_sso answers as Discourse does: 422 login error on a bad signature, 422 blank-id, 403 validation, 404 empty when off', async () => {
    const bad = await api('POST', '/admin/users/sync_sso', { ...signed(ava), sig: '0'.repeat(64) });
    expect(bad.status).toBe(422);
    // The parser's own "Bad signature" text never reaches the client: the translated login error does.
    expect(await json(bad)).toEqual({ failed: 'FAILED', message: DISCOURSE_MESSAGES.loginError });
    const missing = await api('POST', '/admin/users/sync_sso', {});
    expect(missing.status).toBe(422);
    expect(await json(missing)).toEqual({
      failed: 'FAILED',
      message: DISCOURSE_MESSAGES.loginError,
    });
    const blank = await api('POST', '/admin/users/sync_sso', signed({ ...ava, external_id: '' }));
    expect(blank.status).toBe(422);
    expect(await json(blank)).toEqual({ failed: 'FAILED', message: DISCOURSE_MESSAGES.blankId });
    // A blank id signed with another secret is a bad signature, whatever the payload says.
    const otherSecret = await api('POST', '/admin/users/sync_sso', {
      ...signed({ ...ava, external_id: '' }),
      sig: createHmac('sha256', 'another-secret-0123')
        .update(signed({ ...ava, external_id: '' }).sso)
        .digest('hex'),
    });
    expect(await json(otherSecret)).toEqual({
      failed: 'FAILED',
      message: DISCOURSE_MESSAGES.loginError,
    });
    const email = await api('POST', '/admin/users/sync_sso', signed({ ...ava, email: 'nope' }));
    expect(email.status).toBe(403);
    expect((await json(email)).message).toMatch(/^Validation failed: .*email/);
    expect(sim.users).toHaveLength(0);
    sim.knobs.connectEnabled = false;
    const off = await api('POST', '/admin/users/sync_sso', signed(ava));
    expect(off.status).toBe(404);
    expect(await off.text()).toBe('');
  });

  it('sync_sso decodes twice: a raw "+" in the base64 breaks the signature', async () => {
    const text = `${new URLSearchParams(ava)}&name=>>>`;
    const sso = Buffer.from(text).toString('base64');
    expect(sso).toContain('+');
    const sig = createHmac('sha256', SECRET).update(sso).digest('hex');
    const res = await api('POST', '/admin/users/sync_sso', { sso, sig });
    expect(res.status).toBe(422);
  });

  it('by-external finds users by external id, JSON 404 otherwise', async () => {
    const u = sim.addUser({
      username: 'bob',
      email: 'bob@example.com',
      externalId: '1234567890123456789',
    });
    for (const prefix of ['/u', '/users']) {
      const res = await api('GET', `${prefix}/by-external/1234567890123456789.json`);
      expect(res.status).toBe(200);
      expect((await json(res)).user).toMatchObject({ id: u.id, username: 'bob' });
    }
    const missing = await api('GET', '/u/by-external/42.json');
    expect(missing.status).toBe(404);
    expect((await json(missing)).error_type).toBe('not_found');
  });

  it('log_out ends the user’s forum sessions', async () => {
    // Sign in through the browser flow first.
    sim.connectUrl = 'http://127.0.0.1:1/sso';
    const start = await fetch(`${base}/session/sso`, { redirect: 'manual' });
    const cookie = start.headers.get('set-cookie')!.split(';')[0];
    const sent = new URLSearchParams(
      Buffer.from(
        new URL(start.headers.get('location')!).searchParams.get('sso')!,
        'base64',
      ).toString(),
    );
    const back = signed({ nonce: sent.get('nonce')!, ...ava });
    const login = await fetch(`${base}/session/sso_login?${new URLSearchParams(back)}`, {
      redirect: 'manual',
      headers: { Cookie: cookie },
    });
    expect(login.status).toBe(302);
    const me = () => fetch(`${base}/session/current.json`, { headers: { Cookie: cookie } });
    expect((await me()).status).toBe(200);

    const id = sim.findByExternalId(ava.external_id)!.id;
    const res = await api('POST', `/admin/users/${id}/log_out`);
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({ success: 'OK' });
    expect((await me()).status).toBe(404);
    expect(sim.stats.apiLogOuts).toBe(1);
    expect((await api('POST', '/admin/users/999/log_out')).status).toBe(404);
  });

  it('group members: add, 422 when all are members already, remove', async () => {
    sim.addUser({ username: 'bob', email: 'bob@example.com' });
    sim.addUser({ username: 'cy', email: 'cy@example.com', groups: ['veterans'] });
    const group = await json(await api('GET', '/groups/Veterans.json'));
    expect(group.group).toMatchObject({ name: 'veterans', id: expect.any(Number), user_count: 1 });
    const id = group.group.id;

    const add = await api('PUT', `/groups/${id}/members.json`, { usernames: 'bob,cy' });
    expect(add.status).toBe(200);
    expect((await json(add)).usernames).toEqual(['bob']);
    expect(sim.users.find((u) => u.username === 'bob')!.groups).toEqual(['veterans']);
    expect((await api('PUT', `/groups/${id}/members.json`, { usernames: 'bob,cy' })).status).toBe(
      422,
    );

    const del = await json(await api('DELETE', `/groups/${id}/members.json`, { usernames: 'cy' }));
    expect(del.usernames).toEqual(['cy']);
    expect(sim.users.find((u) => u.username === 'cy')!.groups).toEqual([]);
    expect((await api('GET', '/groups/nonexistent.json')).status).toBe(404);
    expect((await api('PUT', `/groups/999/members.json`, { usernames: 'bob' })).status).toBe(404);
  });

  it('403 without a valid key or with a non-admin Api-Username', async () => {
    expect(
      (await api('GET', '/u/by-external/1.json', undefined, { 'Api-Key': 'wrong' })).status,
    ).toBe(403);
    sim.addUser({ username: 'pleb', email: 'pleb@example.com' });
    sim.addUser({ username: 'boss', email: 'boss@example.com', admin: true });
    expect(
      (await api('GET', '/u/by-external/1.json', undefined, { 'Api-Username': 'pleb' })).status,
    ).toBe(403);
    expect(
      (await api('GET', '/u/by-external/1.json', undefined, { 'Api-Username': 'boss' })).status,
    ).toBe(404);
    sim.apiKey = undefined;
    expect((await api('GET', '/u/by-external/1.json')).status).toBe(403);
  });

  it('one rate-limit budget per site: 429 with Retry-After and wait_seconds', async () => {
    sim.apiRateLimitPerMinute = 3;
    for (let i = 0; i < 3; i++)
      expect((await api('GET', '/u/by-external/1.json')).status).toBe(404);
    t += 20_000;
    const limited = await api('GET', '/u/by-external/1.json', undefined, {
      'Api-Username': 'system',
    });
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('40');
    expect(await json(limited)).toMatchObject({
      error_type: 'rate_limit',
      extras: { wait_seconds: 40 },
    });
    expect(sim.stats.apiRateLimited).toBe(1);
    t += 40_000;
    expect((await api('GET', '/u/by-external/1.json')).status).toBe(404);
  });

  it('apiFailure injects 429 plain text and 5xx', async () => {
    sim.knobs.apiFailure = { status: 429, retryAfter: 7, plainText: true };
    const r = await api('GET', '/u/by-external/1.json');
    expect(r.status).toBe(429);
    expect(r.headers.get('retry-after')).toBe('7');
    expect(await r.text()).toMatch(/too many requests/i);
    sim.knobs.apiFailure = { status: 503 };
    expect((await api('POST', '/admin/users/sync_sso', signed(ava))).status).toBe(503);
    expect(sim.users).toHaveLength(0);
  });
  it('current.json for an API request: the acting user, 403 invalid_access for a bad key', async () => {
    const res = await api('GET', '/session/current.json');
    expect(res.status).toBe(200);
    expect((await json(res)).current_user).toMatchObject({
      id: -1,
      username: 'system',
      admin: true,
    });
    sim.addUser({ username: 'Boss', email: 'boss@example.com', admin: true });
    const boss = await json(
      await api('GET', '/session/current.json', undefined, { 'Api-Username': 'boss' }),
    );
    expect(boss.current_user).toMatchObject({ username: 'Boss', admin: true });

    const bad = await api('GET', '/session/current.json', undefined, { 'Api-Key': 'wrong-key' });
    expect(bad.status).toBe(403);
    expect(await json(bad)).toMatchObject({ error_type: 'invalid_access' });
    sim.addUser({ username: 'pleb', email: 'pleb@example.com' });
    expect(
      (await api('GET', '/session/current.json', undefined, { 'Api-Username': 'pleb' })).status,
    ).toBe(403);
    // Without a key and without a browser session: nobody is signed in.
    expect((await fetch(`${base}/session/current.json`)).status).toBe(404);
    expect(sim.stats.apiRequests).toBe(4);
  });

  it('site_settings: the DiscourseConnect settings as strings, the secret masked, rate limited', async () => {
    sim.connectUrl = 'https://app.example.com/discourse/sso';
    sim.logoutRedirect = undefined;
    sim.overridesGroups = true;
    const res = await api('GET', '/admin/site_settings.json');
    expect(res.status).toBe(200);
    const list: { setting: string; value: string; type: string; description: string }[] = (
      await json(res)
    ).site_settings;
    const value = (name: string) => list.find((s) => s.setting === name)?.value;
    expect(value('enable_discourse_connect')).toBe('true');
    expect(value('discourse_connect_url')).toBe('https://app.example.com/discourse/sso');
    expect(value('logout_redirect')).toBe('');
    expect(value('discourse_connect_overrides_groups')).toBe('true');
    expect(value('auth_overrides_email')).toBe('false');
    for (const s of list)
      expect(s).toMatchObject({ type: expect.any(String), description: expect.any(String) });
    expect(JSON.stringify(list)).not.toContain(SECRET);
    expect(value('discourse_connect_secret')).toMatch(/^\*+$/);

    sim.knobs.connectEnabled = false;
    sim.logoutRedirect = 'https://app.example.com/discourse/logout';
    const again = await json(
      await api(
        'GET',
        '/admin/site_settings.json?filter_names[]=logout_redirect&filter_names[]=enable_discourse_connect',
      ),
    );
    expect(again.site_settings.map((s: { setting: string }) => s.setting).sort()).toEqual([
      'enable_discourse_connect',
      'logout_redirect',
    ]);
    expect(
      again.site_settings.find((s: { setting: string }) => s.setting === 'logout_redirect').value,
    ).toBe('https://app.example.com/discourse/logout');

    expect(
      (await api('GET', '/admin/site_settings.json', undefined, { 'Api-Key': 'wrong' })).status,
    ).toBe(403);
    sim.apiRateLimitPerMinute = 2;
    expect((await api('GET', '/admin/site_settings.json')).status).toBe(429);
    expect(sim.stats.apiRateLimited).toBe(1);
  });
});
