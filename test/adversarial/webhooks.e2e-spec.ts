import { createHash, createHmac } from 'node:crypto';
import fc from 'fast-check';
import { DataSource } from 'typeorm';
import { DiscourseConnectEvents } from 'nestjs-discourse-connect/internal';
import { DiscourseConnectActionsService } from 'nestjs-discourse-connect/internal';
import { TypeOrmUserStore } from 'nestjs-discourse-connect/internal';
import { DISCORD_FIXTURES } from 'nestjs-discourse-connect-simulators';
import { TestBrowser } from '../support/browser';
import { HTTP_ADAPTERS, type Harness } from '../support/harness';
import {
  expectCleanErrorBody,
  expectNothingWritten,
  snapshot,
  startAdversarialHarness,
  WEBHOOK_SECRET,
} from './adversarial-support';

/**
 * Forged and replayed forum webhooks. Discourse sends no timestamp and signs only the body: the
 * event id, event name and instance headers can be changed by whoever holds a captured delivery. So
 * replay protection rests on the body: each signed body once (by SHA-256), and a body older than the
 * stored state (its `updated_at`/`last_seen_at`) is not applied; event ids are also taken once.
 * Already covered in test/alignment.e2e-spec.ts: a genuine delivery, the simulator's own
 * redelivery answered 409, and an all-zero signature.
 */

const { migrated } = DISCORD_FIXTURES;
const sign = (body: string, secret = WEBHOOK_SECRET) =>
  `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;

describe.each(HTTP_ADAPTERS)('adversarial: webhooks (%s)', (adapter) => {
  let h: Harness;
  let nextId = 700_000;

  /** `forum.user-changed` events fired by the module. */
  const fired: { forumUserId: number; forumUsername: string }[] = [];

  beforeAll(async () => {
    h = await startAdversarialHarness(adapter);
    const actions = h.app.get(DiscourseConnectActionsService, { strict: false });
    const emit = actions.emit.bind(actions);
    jest.spyOn(actions, 'emit').mockImplementation((event, payload) => {
      if (event === DiscourseConnectEvents.ForumUserChanged)
        fired.push(payload as (typeof fired)[number]);
      emit(event, payload);
    });
    h.discord.knobs.autoApproveAs = migrated.id;
    await new TestBrowser().visit(`${h.forum.baseUrl}/session/sso?return_path=%2F`);
  });
  afterAll(async () => h?.close());

  const body = (username = 'mallory', id = 4242) =>
    JSON.stringify({ user: { id, username, external_id: migrated.id } });

  async function deliver(
    raw: string,
    headers: Record<string, string | undefined>,
  ): Promise<{ status: number; text: string }> {
    const base: Record<string, string> = {
      'content-type': 'application/json',
      'x-discourse-instance': h.forum.baseUrl,
      'x-discourse-event-type': 'user',
      'x-discourse-event': 'user_updated',
      'x-discourse-event-id': String(nextId++),
      'x-discourse-event-signature': sign(raw),
    };
    for (const [k, v] of Object.entries(headers)) {
      if (v === undefined) delete base[k];
      else base[k] = v;
    }
    const res = await fetch(`${h.appUrl}/discourse/webhooks`, {
      method: 'POST',
      headers: base,
      body: raw,
    });
    return { status: res.status, text: await res.text() };
  }

  const forumLink = async () =>
    (
      await h.app
        .get(DataSource)
        .query(
          'SELECT forum_user_id, forum_username FROM discourse_connect_users WHERE discord_id = ?',
          [migrated.id],
        )
    )[0];

  it.each<[string, (raw: string) => Record<string, string | undefined>, string?]>([
    ['no signature header', () => ({ 'x-discourse-event-signature': undefined })],
    ['an empty signature', () => ({ 'x-discourse-event-signature': '' })],
    [
      'the signature made with another secret',
      (raw) => ({ 'x-discourse-event-signature': sign(raw, 'another-webhook-secret') }),
    ],
    [
      'the right HMAC in uppercase hex',
      (raw) => ({
        'x-discourse-event-signature': sign(raw).replace(/[0-9a-f]{64}/, (x) => x.toUpperCase()),
      }),
    ],
    [
      'the right HMAC without the sha256= prefix',
      (raw) => ({ 'x-discourse-event-signature': sign(raw).slice(7) }),
    ],
    [
      'the right HMAC labelled sha1=',
      (raw) => ({ 'x-discourse-event-signature': sign(raw).replace('sha256=', 'sha1=') }),
    ],
    ['a truncated signature', (raw) => ({ 'x-discourse-event-signature': sign(raw).slice(0, -2) })],
    [
      'the signature with a character appended',
      (raw) => ({ 'x-discourse-event-signature': `${sign(raw)}0` }),
    ],
    [
      'the signature of another body',
      () => ({ 'x-discourse-event-signature': sign(body('someone-else')) }),
    ],
    [
      'the signature of the same JSON with other spacing',
      (raw) => ({ 'x-discourse-event-signature': sign(JSON.stringify(JSON.parse(raw), null, 1)) }),
    ],
    [
      'the signature given twice',
      (raw) => ({ 'x-discourse-event-signature': `${sign(raw)}, ${sign(raw)}` }),
    ],
    [
      'the signature of the body with the secret as the message',
      () => ({ 'x-discourse-event-signature': sign(WEBHOOK_SECRET, body()) }),
    ],
  ])('%s is refused (403), nothing stored', async (_n, headers) => {
    const before = await snapshot(h);
    const linkBefore = await forumLink();
    const raw = body();
    const res = await deliver(raw, headers(raw));
    expect(res.status).toBe(403);
    expect(res.text).toContain('signature does not match');
    expectCleanErrorBody(res.text);
    await expectNothingWritten(h, before, { sessions: true });
    expect(await forumLink()).toEqual(linkBefore);
  });

  it('a body changed by one byte after signing is refused', async () => {
    const before = await snapshot(h);
    const raw = body();
    const res = await deliver(raw.replace('mallory', 'mallorz'), {
      'x-discourse-event-signature': sign(raw),
    });
    expect(res.status).toBe(403);
    await expectNothingWritten(h, before, { sessions: true });
  });

  it('a replayed delivery (same event id) is refused with 409, even with another validly signed body', async () => {
    const id = String(nextId++);
    const first = body('legit-name', 501);
    expect((await deliver(first, { 'x-discourse-event-id': id })).status).toBe(200);
    expect(await forumLink()).toEqual({ forum_user_id: 501, forum_username: 'legit-name' });

    const before = await snapshot(h);
    for (const raw of [first, body('replayed-name', 502)]) {
      const res = await deliver(raw, { 'x-discourse-event-id': id });
      expect(res.status).toBe(409);
      expect(res.text).toContain('already received');
      expectCleanErrorBody(res.text);
    }
    // As another event name too: the id alone identifies the delivery.
    expect(
      (await deliver(first, { 'x-discourse-event-id': id, 'x-discourse-event': 'user_created' }))
        .status,
    ).toBe(409);
    await expectNothingWritten(h, before, { sessions: true });
    expect(await forumLink()).toEqual({ forum_user_id: 501, forum_username: 'legit-name' });
  });

  it.each<[string, Record<string, string | undefined>, number]>([
    ['an event id that is not a number', { 'x-discourse-event-id': '12; DROP TABLE x' }, 400],
    ['an event id with a sign', { 'x-discourse-event-id': '+123' }, 400],
    ['no event id', { 'x-discourse-event-id': undefined }, 400],
    ['an event name with capitals', { 'x-discourse-event': 'User_Updated' }, 400],
    [
      'an instance that is not the configured forum',
      { 'x-discourse-instance': 'https://evil.example' },
      404,
    ],
    ['a body that is not JSON (text/plain)', { 'content-type': 'text/plain' }, 415],
  ])('a validly signed delivery with %s is refused', async (_n, headers, status) => {
    const before = await snapshot(h);
    const res = await deliver(body(), headers);
    expect(res.status).toBe(status);
    expectCleanErrorBody(res.text);
    await expectNothingWritten(h, before, { sessions: true });
  });
  describe('replay rests on the signed body, not on its headers', () => {
    const userBody = (id: number, username: string, extra: Record<string, unknown> = {}) =>
      JSON.stringify({ user: { id, username, external_id: migrated.id, ...extra } });

    it.each<[string, () => Record<string, string | undefined>]>([
      ['a new event id', () => ({})],
      [
        'a new event id and another event name (user_created)',
        () => ({ 'x-discourse-event': 'user_created' }),
      ],
      [
        'a new event id and an event the module ignores (user_logged_in)',
        () => ({ 'x-discourse-event': 'user_logged_in' }),
      ],
      [
        'a new event id and the instance with a trailing path',
        () => ({ 'x-discourse-instance': `${h.forum.baseUrl}/other/path` }),
      ],
      ['a new event id and no instance header', () => ({ 'x-discourse-instance': undefined })],
      ['a new event id and no event-type header', () => ({ 'x-discourse-event-type': undefined })],
    ])(
      'an old signed body replayed after a newer one with %s is refused (409), nothing changes',
      async (_n, headers) => {
        const forumId = 600 + (nextId % 1000);
        const old = userBody(forumId, 'first-name');
        expect((await deliver(old, {})).status).toBe(200);
        expect((await deliver(userBody(forumId, 'second-name'), {})).status).toBe(200);
        expect(await forumLink()).toEqual({
          forum_user_id: forumId,
          forum_username: 'second-name',
        });

        const before = await snapshot(h);
        const firedBefore = fired.length;
        const res = await deliver(old, headers());
        expect(res.status).toBe(409);
        expect(res.text).toContain('already received');
        expectCleanErrorBody(res.text);
        await expectNothingWritten(h, before, { sessions: true });
        expect(await forumLink()).toEqual({
          forum_user_id: forumId,
          forum_username: 'second-name',
        });
        expect(fired.length).toBe(firedBefore);
      },
    );

    it.each<[string, Record<string, unknown>, Record<string, unknown>]>([
      [
        'updated_at',
        { updated_at: '2024-03-01T10:00:00.000Z' },
        { updated_at: '2024-03-01T10:00:00.001Z' },
      ],
      [
        'last_seen_at',
        { last_seen_at: '2024-03-01T10:00:00.000Z' },
        { last_seen_at: '2024-03-02T10:00:00.000Z' },
      ],
      [
        'no timestamp after one with a timestamp',
        { last_seen_at: null },
        { last_seen_at: '2024-03-02T10:00:00.000Z' },
      ],
      [
        'updated_at, when last_seen_at went back',
        { updated_at: '2024-03-01T00:00:00.000Z', last_seen_at: '2024-01-01T00:00:00.000Z' },
        { updated_at: '2024-03-05T00:00:00.000Z', last_seen_at: '2023-01-01T00:00:00.000Z' },
      ],
    ])(
      'a body older by %s delivered after a newer one is not applied and fires nothing',
      async (_n, older, newer) => {
        const forumId = 1600 + (nextId % 1000);
        expect((await deliver(userBody(forumId, 'newer-name', newer), {})).status).toBe(200);
        const firedBefore = fired.length;
        const usersBefore = (await snapshot(h)).users;
        const res = await deliver(userBody(forumId, 'older-name', older), {});
        expect(res.status).toBe(200);
        expect(JSON.parse(res.text)).toEqual({ status: 'stale' });
        expect((await snapshot(h)).users).toEqual(usersBefore);
        expect(await forumLink()).toEqual({ forum_user_id: forumId, forum_username: 'newer-name' });
        expect(fired.length).toBe(firedBefore);
        // A newer body still applies.
        const newest = {
          last_seen_at: '2030-01-01T00:00:00.000Z',
          updated_at: '2030-01-01T00:00:00.000Z',
        };
        expect((await deliver(userBody(forumId, 'newest-name', newest), {})).status).toBe(200);
        expect(await forumLink()).toEqual({
          forum_user_id: forumId,
          forum_username: 'newest-name',
        });
        expect(fired.at(-1)).toMatchObject({ forumUserId: forumId, forumUsername: 'newest-name' });
      },
    );

    it('a processed body is remembered for the retention (7 days), then pruned by its own age', async () => {
      const ds = h.app.get(DataSource);
      const forumId = 2600 + (nextId % 1000);
      const raw = (name: string) =>
        userBody(forumId, name, { last_seen_at: '2031-01-01T00:00:00.000Z' });
      const hash = (b: string) => createHash('sha256').update(b).digest('hex');
      const day = 24 * 60 * 60 * 1000;
      const forum = (
        await ds.query('SELECT forum FROM discourse_connect_webhook_events LIMIT 1')
      )[0].forum;
      await ds.query(
        'INSERT INTO discourse_connect_webhook_bodies (forum, body_sha256, received_at) VALUES (?, ?, ?)',
        [forum, hash(raw('six-days')), Date.now() - 6 * day],
      );
      await ds.query(
        'INSERT INTO discourse_connect_webhook_bodies (forum, body_sha256, received_at) VALUES (?, ?, ?)',
        [forum, hash(raw('eight-days')), Date.now() - 8 * day],
      );
      expect((await deliver(raw('six-days'), {})).status).toBe(409);
      expect((await deliver(raw('eight-days'), {})).status).toBe(200);
      const [{ n }] = await ds.query(
        'SELECT COUNT(*) AS n FROM discourse_connect_webhook_bodies WHERE received_at < ?',
        [Date.now() - 7 * day],
      );
      expect(Number(n)).toBe(0);
    });

    it('event ids are remembered for the retention (7 days), then pruned by their own age', async () => {
      const ds = h.app.get(DataSource);
      const day = 24 * 60 * 60 * 1000;
      const forum = (
        await ds.query('SELECT forum FROM discourse_connect_webhook_events LIMIT 1')
      )[0].forum;
      const recentId = String(nextId++);
      const oldId = String(nextId++);
      const insert =
        'INSERT INTO discourse_connect_webhook_events (forum, event_id, event, received_at) VALUES (?, ?, ?, ?)';
      await ds.query(insert, [forum, recentId, 'user_updated', Date.now() - 6 * day]);
      await ds.query(insert, [forum, oldId, 'user_updated', Date.now() - 8 * day]);
      // Any delivery prunes, in its own transaction.
      expect((await deliver(body('prune-trigger', 2900 + (nextId % 50)), {})).status).toBe(200);
      const ids = (
        await ds.query(
          'SELECT event_id FROM discourse_connect_webhook_events WHERE event_id IN (?, ?)',
          [recentId, oldId],
        )
      ).map((r: { event_id: string }) => r.event_id);
      expect(ids).toEqual([recentId]);
      const [{ n }] = await ds.query(
        'SELECT COUNT(*) AS n FROM discourse_connect_webhook_events WHERE received_at < ?',
        [Date.now() - 7 * day],
      );
      expect(Number(n)).toBe(0);
      // A recent id is still refused.
      expect(
        (await deliver(body('again', 2950), { 'x-discourse-event-id': recentId })).status,
      ).toBe(409);
    });

    it('a failure while applying leaves nothing behind: the same delivery can be retried', async () => {
      const forumId = 3600 + (nextId % 1000);
      const raw = userBody(forumId, 'retried-name');
      const id = String(nextId++);
      const before = await snapshot(h);
      const spy = jest
        .spyOn(TypeOrmUserStore.prototype, 'linkForumAccount')
        .mockRejectedValueOnce(new Error('disk full'));
      try {
        const res = await deliver(raw, { 'x-discourse-event-id': id });
        expect(res.status).toBe(500);
        expectCleanErrorBody(res.text);
      } finally {
        spy.mockRestore();
      }
      await expectNothingWritten(h, before, { sessions: true });
      expect((await deliver(raw, { 'x-discourse-event-id': id })).status).toBe(200);
      expect(await forumLink()).toEqual({ forum_user_id: forumId, forum_username: 'retried-name' });
    });
  });

  describe('the shape of a signed body is checked before anything is written', () => {
    const rawUser = (fields: string) => `{"user":{${fields}}}`;
    const ext = `"external_id":"${migrated.id}"`;

    it.each<[string, string]>([
      ['id 1e999 (Infinity once parsed)', rawUser(`"id":1e999,"username":"mallory",${ext}`)],
      ['id 1e308', rawUser(`"id":1e308,"username":"mallory",${ext}`)],
      ['id -1', rawUser(`"id":-1,"username":"mallory",${ext}`)],
      ['id 0', rawUser(`"id":0,"username":"mallory",${ext}`)],
      ['id 5.5', rawUser(`"id":5.5,"username":"mallory",${ext}`)],
      ['id 2^31 (beyond a 32-bit column)', rawUser(`"id":2147483648,"username":"mallory",${ext}`)],
      ['id 2^53 + 1', rawUser(`"id":9007199254740993,"username":"mallory",${ext}`)],
      ['id "12" as a string', rawUser(`"id":"12","username":"mallory",${ext}`)],
      ['id null', rawUser(`"id":null,"username":"mallory",${ext}`)],
      ['id an object', rawUser(`"id":{"id":12},"username":"mallory",${ext}`)],
      ['id an array', rawUser(`"id":[12],"username":"mallory",${ext}`)],
      ['username a number', rawUser(`"id":12,"username":12,${ext}`)],
      ['username an array', rawUser(`"id":12,"username":["mallory"],${ext}`)],
      ['username empty', rawUser(`"id":12,"username":"",${ext}`)],
      [
        'username of 10,000 characters',
        rawUser(`"id":12,"username":"${'m'.repeat(10_000)}",${ext}`),
      ],
      [
        'external_id a number',
        rawUser(`"id":12,"username":"mallory","external_id":${migrated.id}`),
      ],
      [
        'external_id an object',
        rawUser(`"id":12,"username":"mallory","external_id":{"id":"${migrated.id}"}`),
      ],
      [
        'external_id of 10,000 digits',
        rawUser(`"id":12,"username":"mallory","external_id":"${'9'.repeat(10_000)}"`),
      ],
      ['name an object', rawUser(`"id":12,"username":"mallory","name":{"a":1},${ext}`)],
      ['updated_at not a time', rawUser(`"id":12,"username":"mallory","updated_at":"soon",${ext}`)],
      [
        'last_seen_at a number',
        rawUser(`"id":12,"username":"mallory","last_seen_at":1e999,${ext}`),
      ],
      ['user an array', '{"user":[12,"mallory"]}'],
      ['user a string', '{"user":"mallory"}'],
      ['no user', '{"users":{"id":12,"username":"mallory"}}'],
    ])('%s → 400, nothing written, the event id stays usable', async (_n, raw) => {
      const before = await snapshot(h);
      const firedBefore = fired.length;
      const id = String(nextId++);
      const res = await deliver(raw, { 'x-discourse-event-id': id });
      expect(res.status).toBe(400);
      expect(res.text).toMatch(/The webhook (body|user|username|has no user|external_id)/);
      expectCleanErrorBody(res.text);
      await expectNothingWritten(h, before, { sessions: true });
      expect(fired.length).toBe(firedBefore);
      // The refused delivery recorded nothing: the forum's retry with a good body is taken.
      expect(
        (
          await deliver(body(`retry-${id}`, 4000 + (Number(id) % 1000)), {
            'x-discourse-event-id': id,
          })
        ).status,
      ).toBe(200);
    });

    it('a bad shape gets a readable HTML page when a browser asks', async () => {
      const res = await fetch(`${h.appUrl}/discourse/webhooks`, {
        method: 'POST',
        headers: {
          accept: 'text/html',
          'content-type': 'application/json',
          'x-discourse-instance': h.forum.baseUrl,
          'x-discourse-event': 'user_updated',
          'x-discourse-event-id': String(nextId++),
          'x-discourse-event-signature': sign('{"user":{"id":1e999,"username":"x"}}'),
        },
        body: '{"user":{"id":1e999,"username":"x"}}',
      });
      expect(res.status).toBe(400);
      const text = await res.text();
      expect(res.headers.get('content-type')).toContain('text/html');
      expect(text).toContain('user id is not a positive integer');
      expectCleanErrorBody(text);
    });

    it.each(['0', '-1', '5.5', '1e3', '012', '9007199254740992', '99999999999999999999'])(
      'the event id header %p → 400, nothing written',
      async (id) => {
        const before = await snapshot(h);
        const res = await deliver(body('header-edge', 4999), { 'x-discourse-event-id': id });
        expect(res.status).toBe(400);
        expectCleanErrorBody(res.text);
        await expectNothingWritten(h, before, { sessions: true });
      },
    );

    it('any JSON value as the user id or username of a signed body: 2xx only for a valid shape, else 400, never a 5xx', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            fc.jsonValue(),
            fc.double(),
            fc.integer({ min: -(2 ** 33), max: 2 ** 33 }),
            fc.constantFrom(1e308, -0, 2 ** 53),
          ),
          fc.oneof(fc.jsonValue(), fc.string({ maxLength: 80 })),
          async (id, username) => {
            const raw = JSON.stringify({
              user: { id, username, external_id: migrated.id },
            }).replace('"id":null', '"id":1e999');
            const before = await snapshot(h);
            const res = await deliver(raw, {});
            expect(res.status).toBeLessThan(500);
            const parsed = JSON.parse(raw).user;
            const valid =
              Number.isSafeInteger(parsed.id) &&
              parsed.id >= 1 &&
              parsed.id <= 2147483647 &&
              typeof parsed.username === 'string' &&
              parsed.username.length >= 1 &&
              parsed.username.length <= 60 &&
              !/[\u0000-\u001f\u007f]/.test(parsed.username);
            if (!valid) {
              expect(res.status).toBe(400);
              await expectNothingWritten(h, before, { sessions: true });
            } else expect([200, 409]).toContain(res.status);
          },
        ),
        { numRuns: 40 },
      );
    });
  });
});
