import { createHmac } from 'node:crypto';
import { DataSource } from 'typeorm';
import { DISCORD_FIXTURES } from '../../libs/simulators/src';
import { TestBrowser } from '../support/browser';
import { HTTP_ADAPTERS, type Harness } from '../support/harness';
import { expectCleanErrorBody, expectNothingWritten, snapshot, startAdversarialHarness, WEBHOOK_SECRET } from './adversarial-support';

/**
 * Forged and replayed forum webhooks. Discourse sends no timestamp, so "stale" cannot be judged by
 * age: replay protection is by event id (each id once per forum), and the signature covers the exact
 * body. Already covered in test/alignment.e2e-spec.ts: a genuine delivery, the simulator's own
 * redelivery answered 409, and an all-zero signature.
 */

const { migrated } = DISCORD_FIXTURES;
const sign = (body: string, secret = WEBHOOK_SECRET) => `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;

describe.each(HTTP_ADAPTERS)('adversarial: webhooks (%s)', (adapter) => {
  let h: Harness;
  let nextId = 700_000;

  beforeAll(async () => {
    h = await startAdversarialHarness(adapter);
    h.discord.knobs.autoApproveAs = migrated.id;
    await new TestBrowser().visit(`${h.forum.baseUrl}/session/sso?return_path=%2F`);
  });
  afterAll(async () => h?.close());

  const body = (username = 'mallory', id = 4242) => JSON.stringify({ user: { id, username, external_id: migrated.id } });

  async function deliver(raw: string, headers: Record<string, string | undefined>): Promise<{ status: number; text: string }> {
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
    const res = await fetch(`${h.appUrl}/discourse/webhooks`, { method: 'POST', headers: base, body: raw });
    return { status: res.status, text: await res.text() };
  }

  const forumLink = async () =>
    (
      await h.app
        .get(DataSource)
        .query('SELECT forum_user_id, forum_username FROM discourse_connect_users WHERE discord_id = ?', [migrated.id])
    )[0];

  it.each<[string, (raw: string) => Record<string, string | undefined>, string?]>([
    ['no signature header', () => ({ 'x-discourse-event-signature': undefined })],
    ['an empty signature', () => ({ 'x-discourse-event-signature': '' })],
    ['the signature made with another secret', (raw) => ({ 'x-discourse-event-signature': sign(raw, 'another-webhook-secret') })],
    ['the right HMAC in uppercase hex', (raw) => ({ 'x-discourse-event-signature': sign(raw).replace(/[0-9a-f]{64}/, (x) => x.toUpperCase()) })],
    ['the right HMAC without the sha256= prefix', (raw) => ({ 'x-discourse-event-signature': sign(raw).slice(7) })],
    ['the right HMAC labelled sha1=', (raw) => ({ 'x-discourse-event-signature': sign(raw).replace('sha256=', 'sha1=') })],
    ['a truncated signature', (raw) => ({ 'x-discourse-event-signature': sign(raw).slice(0, -2) })],
    ['the signature with a character appended', (raw) => ({ 'x-discourse-event-signature': `${sign(raw)}0` })],
    ['the signature of another body', () => ({ 'x-discourse-event-signature': sign(body('someone-else')) })],
    ['the signature of the same JSON with other spacing', (raw) => ({ 'x-discourse-event-signature': sign(JSON.stringify(JSON.parse(raw), null, 1)) })],
    ['the signature given twice', (raw) => ({ 'x-discourse-event-signature': `${sign(raw)}, ${sign(raw)}` })],
    ['the signature of the body with the secret as the message', () => ({ 'x-discourse-event-signature': sign(WEBHOOK_SECRET, body()) })],
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
    const res = await deliver(raw.replace('mallory', 'mallorz'), { 'x-discourse-event-signature': sign(raw) });
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
    expect((await deliver(first, { 'x-discourse-event-id': id, 'x-discourse-event': 'user_created' })).status).toBe(409);
    await expectNothingWritten(h, before, { sessions: true });
    expect(await forumLink()).toEqual({ forum_user_id: 501, forum_username: 'legit-name' });
  });

  it.each<[string, Record<string, string | undefined>, number]>([
    ['an event id that is not a number', { 'x-discourse-event-id': '12; DROP TABLE x' }, 400],
    ['an event id with a sign', { 'x-discourse-event-id': '+123' }, 400],
    ['no event id', { 'x-discourse-event-id': undefined }, 400],
    ['an event name with capitals', { 'x-discourse-event': 'User_Updated' }, 400],
    ['an instance that is not the configured forum', { 'x-discourse-instance': 'https://evil.example' }, 404],
    ['a body that is not JSON (text/plain)', { 'content-type': 'text/plain' }, 415],
  ])('a validly signed delivery with %s is refused', async (_n, headers, status) => {
    const before = await snapshot(h);
    const res = await deliver(body(), headers);
    expect(res.status).toBe(status);
    expectCleanErrorBody(res.text);
    await expectNothingWritten(h, before, { sessions: true });
  });
});
