import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DiscourseConnectSettings } from '../config/discourse-connect.settings';
import { DiscoursePayloadBuilder } from '../payload/discourse-payload.builder';
import { decodePayload, verifySignature } from '../protocol';
import type { LocalUser } from '../users/local-user.interface';
import { DiscourseAdminService } from './discourse-admin.service';
import { AdminApiRateLimiter } from './rate-limiter';
import {
  DiscourseApiError,
  DiscourseApiNotConfiguredError,
  DiscourseRateLimitError,
} from './discourse-api.errors';
import { filtersFixture, memberFixture } from '../../test-support/fixtures';

/**
 * The admin API client against a small local forum written here: what it sends (form-encoded
 * `sso`/`sig` signed with the forum's secret, `Api-Key`/`Api-Username`), and how it reads answers
 * (429 → rate limit with the forum's wait, 5xx → retryable, 4xx → refused, 404 by-external → null).
 */
const SECRET = 'admin-spec-forum-secret-0123';
const API_KEY = 'admin-spec-api-key-0123456789';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

describe('DiscourseAdminService', () => {
  let server: Server;
  let forumUrl: string;
  const seen: Seen[] = [];
  let answer: (req: Seen, res: ServerResponse) => void;

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk) => (body += chunk));
      req.on('end', () => {
        const r = { method: req.method!, url: req.url!, headers: req.headers, body };
        seen.push(r);
        answer(r, res);
      });
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    forumUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(() => new Promise<void>((done) => server.close(() => done())));

  beforeEach(() => {
    seen.length = 0;
  });

  const json = (
    res: ServerResponse,
    status: number,
    body: unknown,
    headers: Record<string, string> = {},
  ) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };

  function client(api = true, limiter?: AdminApiRateLimiter): DiscourseAdminService {
    const settings = new DiscourseConnectSettings({
      forums: [
        {
          url: forumUrl,
          secret: SECRET,
          ...(api ? { api: { key: API_KEY, timeoutMs: 2000 } } : {}),
        },
      ],
      discord: { clientId: 'id', clientSecret: 'secret' },
      publicUrl: 'https://example.com',
      session: { secret: 's'.repeat(32) },
    });
    const filters = filtersFixture();
    return new DiscourseAdminService(
      settings,
      new DiscoursePayloadBuilder(settings, filters),
      limiter,
    );
  }

  const member: LocalUser = memberFixture({ emailVerified: false });

  it('posts a form-encoded sync_sso signed with the forum secret, with the API credentials', async () => {
    answer = (_req, res) => json(res, 200, { id: 7, username: 'nelly' });
    await expect(client().syncSso(member)).resolves.toMatchObject({ id: 7, username: 'nelly' });
    const [req] = seen;
    expect(req).toMatchObject({ method: 'POST', url: '/admin/users/sync_sso' });
    expect(req.headers['api-key']).toBe(API_KEY);
    expect(req.headers['api-username']).toBe('system');
    expect(req.headers['content-type']).toMatch(/^application\/x-www-form-urlencoded/);
    const form = new URLSearchParams(req.body);
    expect(() => verifySignature(form.get('sso')!, form.get('sig')!, SECRET)).not.toThrow();
    const fields = decodePayload(form.get('sso')!);
    expect(fields).toMatchObject({
      external_id: member.discordId,
      email: member.email,
      require_activation: 'true',
    });
    expect(fields).not.toHaveProperty('nonce');
  });

  it('reads a 429 as a rate limit with the wait the forum asked for', async () => {
    answer = (_req, res) =>
      json(res, 429, { extras: { wait_seconds: 12 } }, { 'retry-after': '12' });
    const error = await client()
      .syncSso(member)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DiscourseRateLimitError);
    expect((error as DiscourseRateLimitError).waitSeconds).toBe(12);
  });

  it('reads a 5xx as retryable and a 4xx as refused, with the forum message and never the key', async () => {
    answer = (_req, res) => json(res, 503, { errors: ['down for maintenance'] });
    const down = (await client()
      .syncSso(member)
      .catch((e: unknown) => e)) as DiscourseApiError;
    expect(down).toBeInstanceOf(DiscourseApiError);
    expect(down.retryable).toBe(true);
    answer = (_req, res) => json(res, 422, { failed: 'FAILED', message: 'Login error' });
    const refused = (await client()
      .syncSso(member)
      .catch((e: unknown) => e)) as DiscourseApiError;
    expect(refused.status).toBe(422);
    expect(refused.retryable).toBe(false);
    expect(`${down.message} ${refused.message}`).not.toContain(API_KEY);
  });

  it('finds a user by external id (null when the forum has none) and logs them out', async () => {
    answer = (req, res) => {
      if (req.url === `/u/by-external/${member.discordId}.json`)
        return json(res, 200, { user: { id: 9, username: 'nelly' } });
      if (req.url === '/u/by-external/1.json') return json(res, 404, { errors: ['not found'] });
      if (req.url === '/admin/users/9/log_out') return json(res, 200, { success: 'OK' });
      json(res, 500, {});
    };
    const admin = client();
    await expect(admin.getUserByExternalId('1')).resolves.toBeNull();
    await expect(admin.logOutByExternalId(member.discordId)).resolves.toBe(true);
    expect(seen.map((r) => `${r.method} ${r.url}`)).toContain('POST /admin/users/9/log_out');
  });

  it('is off for a forum without an API key', async () => {
    const admin = client(false);
    expect(admin.isEnabled()).toBe(false);
    await expect(admin.syncSso(member)).rejects.toBeInstanceOf(DiscourseApiNotConfiguredError);
    expect(seen).toEqual([]);
  });
  // Member lifecycle: suspend, unsuspend, anonymize, delete by external id.
  describe('member lifecycle', () => {
    /** A forum with one member (external id `member.discordId`, forum id 9) and its answers. */
    const lifecycleForum = (state: { id: number | null }) => (req: Seen, res: ServerResponse) => {
      if (req.url === `/u/by-external/${member.discordId}.json`) {
        return state.id === null
          ? json(res, 404, { errors: ['not found'] })
          : json(res, 200, { user: { id: state.id, username: 'nelly' } });
      }
      const m = /^\/admin\/users\/(\d+)(\/\w+|\.json)$/.exec(req.url);
      if (!m || Number(m[1]) !== state.id) return json(res, 404, { errors: ['not found'] });
      if (m[2] === '/suspend')
        return json(res, 200, { suspension: { suspended: true, suspended_till: 'x' } });
      if (m[2] === '/unsuspend') return json(res, 200, { suspension: { suspended: false } });
      if (m[2] === '/anonymize') return json(res, 200, { success: 'OK', username: 'anon123' });
      if (req.method === 'DELETE') return json(res, 200, { deleted: true });
      json(res, 500, {});
    };

    it('suspends the account found by external id, with the end date and the reason', async () => {
      answer = lifecycleForum({ id: 9 });
      const until = new Date('2030-01-02T03:04:05.000Z');
      await expect(client().suspend(member.discordId, until, 'Left the server')).resolves.toEqual({
        found: true,
        forumUserId: 9,
        username: 'nelly',
      });
      const put = seen.find((r) => r.method === 'PUT')!;
      expect(put.url).toBe('/admin/users/9/suspend');
      expect(Object.fromEntries(new URLSearchParams(put.body))).toEqual({
        suspend_until: '2030-01-02T03:04:05.000Z',
        reason: 'Left the server',
      });
      expect(put.headers['api-key']).toBe(API_KEY);
    });

    it('answers { found: false } for a member without an account, without a write', async () => {
      answer = lifecycleForum({ id: null });
      const admin = client();
      await expect(admin.suspend(member.discordId, new Date(), 'r')).resolves.toEqual({
        found: false,
      });
      await expect(admin.unsuspend(member.discordId)).resolves.toEqual({ found: false });
      await expect(admin.anonymize(member.discordId)).resolves.toEqual({ found: false });
      await expect(admin.deleteUser(member.discordId)).resolves.toEqual({ found: false });
      expect(seen.every((r) => r.method === 'GET')).toBe(true);
    });

    it('unsuspends, anonymizes (the anonymous name) and deletes with its posts', async () => {
      const state = { id: 9 as number | null };
      answer = lifecycleForum(state);
      const admin = client();
      await expect(admin.unsuspend(member.discordId)).resolves.toMatchObject({ found: true });
      await expect(admin.anonymize(member.discordId)).resolves.toEqual({
        found: true,
        forumUserId: 9,
        username: 'anon123',
      });
      await expect(admin.deleteUser(member.discordId)).resolves.toMatchObject({ found: true });
      const writes = seen.filter((r) => r.method !== 'GET');
      expect(writes.map((r) => `${r.method} ${r.url}`)).toEqual([
        'PUT /admin/users/9/unsuspend',
        'PUT /admin/users/9/anonymize',
        'DELETE /admin/users/9.json',
      ]);
      expect(new URLSearchParams(writes[2].body).get('delete_posts')).toBe('true');
    });

    it('acts on the account the forum names now, never on a remembered id (detached or replaced)', async () => {
      const state = { id: 9 as number | null };
      answer = lifecycleForum(state);
      const admin = client();
      await admin.unsuspend(member.discordId); // remembers 9
      state.id = 12; // the account was replaced on the forum (9 may still exist, anonymized)
      seen.length = 0;
      await expect(admin.deleteUser(member.discordId)).resolves.toMatchObject({ forumUserId: 12 });
      await expect(admin.suspend(member.discordId, new Date(), 'r')).resolves.toMatchObject({
        forumUserId: 12,
      });
      expect(seen.map((r) => `${r.method} ${r.url}`)).toEqual([
        `GET /u/by-external/${member.discordId}.json`,
        'DELETE /admin/users/12.json',
        `GET /u/by-external/${member.discordId}.json`,
        'PUT /admin/users/12/suspend',
      ]);
    });

    it('drops the remembered id when a lookup by external id finds nothing', async () => {
      const state = { id: 9 as number | null };
      answer = (req, res) =>
        req.url === '/admin/users/9/log_out'
          ? json(res, 200, { success: 'OK' })
          : lifecycleForum(state)(req, res);
      const admin = client();
      await admin.getUserByExternalId(member.discordId); // remembers 9
      state.id = null; // anonymized: detached from the member, account 9 kept
      await expect(admin.getUserByExternalId(member.discordId)).resolves.toBeNull();
      seen.length = 0;
      await expect(admin.logOutByExternalId(member.discordId)).resolves.toBe(false);
      expect(seen.map((r) => `${r.method} ${r.url}`)).toEqual([
        `GET /u/by-external/${member.discordId}.json`,
      ]);
    });

    it('reports a refusal (a staff account) as a DiscourseApiError, not retryable', async () => {
      answer = (req, res) =>
        req.method === 'GET'
          ? json(res, 200, { user: { id: 9, username: 'nelly' } })
          : json(res, 403, { errors: ['You are not permitted to view the requested resource.'] });
      const error = (await client()
        .anonymize(member.discordId)
        .catch((e: unknown) => e)) as DiscourseApiError;
      expect(error).toBeInstanceOf(DiscourseApiError);
      expect(error.status).toBe(403);
      expect(error.retryable).toBe(false);
      answer = (req, res) =>
        req.method === 'GET'
          ? json(res, 200, { user: { id: 9, username: 'nelly' } })
          : json(res, 200, { deleted: false });
      await expect(client().deleteUser(member.discordId)).rejects.toMatchObject({ status: 422 });
    });

    it('finds a forum user by username (null when the forum has none)', async () => {
      answer = (req, res) =>
        req.url === '/u/anon42.json'
          ? json(res, 200, { user: { id: 9, username: 'anon42' } })
          : json(res, 404, { errors: ['not found'] });
      const admin = client();
      await expect(admin.getUserByUsername('anon42')).resolves.toMatchObject({ id: 9 });
      await expect(admin.getUserByUsername('nelly')).resolves.toBeNull();
    });

    it('goes through the forum admin API rate limiter for every call', async () => {
      answer = lifecycleForum({ id: 9 });
      const limiter = new AdminApiRateLimiter(6000);
      const perForum = limiter.forForum(new URL(forumUrl).hostname);
      const acquire = jest.spyOn(perForum, 'acquire');
      const admin = client(true, limiter);
      await admin.suspend(member.discordId, new Date(Date.now() + 1000), 'r');
      await admin.unsuspend(member.discordId);
      expect(acquire).toHaveBeenCalledTimes(seen.length);
      expect(seen.length).toBe(4); // each call looks the member up afresh, then writes
    });
  });
});
