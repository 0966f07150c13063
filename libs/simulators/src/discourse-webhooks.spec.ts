import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DiscourseSimulator } from './discourse-simulator';

const SECRET = 'forum-shared-secret-0123456789';
const KEY = 'admin-api-key-0123456789';
const HOOK_SECRET = 'webhook-secret-0123456789';

/** The test signs on its own: no code shared with the simulator. */
function signed(fields: Record<string, string>): { sso: string; sig: string } {
  const sso = Buffer.from(new URLSearchParams(fields).toString()).toString('base64');
  return { sso, sig: createHmac('sha256', SECRET).update(sso).digest('hex') };
}

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
}

/** A receiver that records what it is sent and answers `status` (after `delayMs`). */
class Receiver {
  received: Received[] = [];
  status = 200;
  delayMs = 0;
  url = '';
  private server: Server | undefined;

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
        setTimeout(() => {
          res.writeHead(this.status, { 'Content-Type': 'text/plain' });
          res.end('ok');
        }, this.delayMs);
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/discourse/webhooks`;
    return this.url;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server?.close(() => resolve());
      this.server?.closeAllConnections();
    });
  }
}

describe('DiscourseSimulator webhooks', () => {
  const receiver = new Receiver();
  const sim = new DiscourseSimulator({ secret: SECRET, apiKey: KEY, apiRateLimitPerMinute: 0 });
  let base: string;

  beforeAll(async () => {
    base = await sim.listen(0);
    await receiver.start();
  });
  afterAll(async () => {
    await sim.flushWebhooks();
    await Promise.all([sim.close(), receiver.close()]);
  });
  beforeEach(() => {
    sim.webhooks = { url: receiver.url, secret: HOOK_SECRET };
  });
  afterEach(async () => {
    await sim.flushWebhooks();
    sim.reset();
    receiver.received = [];
    receiver.status = 200;
    receiver.delayMs = 0;
  });

  function api(method: string, path: string, form?: Record<string, string>) {
    return fetch(`${base}${path}`, {
      method,
      headers: {
        'Api-Key': KEY,
        'Api-Username': 'system',
        ...(form ? { 'Content-Type': 'application/x-www-form-urlencoded' } : {}),
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

  it('sync_sso sends user_created then user_updated, signed over the exact body', async () => {
    expect((await api('POST', '/admin/users/sync_sso', signed(ava))).status).toBe(200);
    expect(
      (await api('POST', '/admin/users/sync_sso', signed({ ...ava, admin: 'true' }))).status,
    ).toBe(200);
    await sim.flushWebhooks();

    expect(receiver.received).toHaveLength(2);
    const byEvent = new Map(receiver.received.map((r) => [r.headers['x-discourse-event'], r]));
    const created = byEvent.get('user_created')!;
    const updated = byEvent.get('user_updated')!;
    for (const r of [created, updated]) {
      expect(r.headers['content-type']).toBe('application/json');
      expect(r.headers['x-discourse-instance']).toBe(base);
      expect(r.headers['x-discourse-event-type']).toBe('user');
      const expected = createHmac('sha256', HOOK_SECRET).update(r.body).digest('hex');
      expect(r.headers['x-discourse-event-signature']).toBe(`sha256=${expected}`);
    }
    expect(Number(created.headers['x-discourse-event-id'])).toBeLessThan(
      Number(updated.headers['x-discourse-event-id']),
    );
    const user = sim.findByExternalId(ava.external_id)!;
    expect(JSON.parse(created.body).user).toMatchObject({
      id: user.id,
      username: 'ava',
      name: 'Ava',
      email: 'ava@example.com',
      external_id: ava.external_id,
      admin: false,
      moderator: false,
      active: true,
    });
    expect(JSON.parse(updated.body).user).toMatchObject({ id: user.id, admin: true });
    expect(sim.stats.webhookDeliveries).toHaveLength(2);
    expect(sim.stats.webhookDeliveries).toEqual(
      expect.arrayContaining([
        { event: 'user_created', id: 1, status: 200 },
        { event: 'user_updated', id: 2, status: 200 },
      ]),
    );
  });

  it('does not hold up the request that caused the event', async () => {
    receiver.delayMs = 1500;
    const started = Date.now();
    expect((await api('POST', '/admin/users/sync_sso', signed(ava))).status).toBe(200);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(sim.stats.webhookDeliveries).toHaveLength(0);
    await sim.flushWebhooks();
    expect(sim.stats.webhookDeliveries).toEqual([{ event: 'user_created', id: 1, status: 200 }]);
  });

  it('sso_login and admin group changes send events too', async () => {
    sim.applyPayload({ ...ava, nonce: 'x' });
    const bob = sim.addUser({ username: 'bob', email: 'bob@example.com' }); // existed already: no event
    const group = (await (await api('GET', '/groups/members.json')).json()) as {
      group: { id: number };
    };
    expect(
      (await api('PUT', `/groups/${group.group.id}/members.json`, { usernames: 'bob' })).status,
    ).toBe(200);
    await sim.flushWebhooks();
    const events = receiver.received.map((r) => [
      r.headers['x-discourse-event'],
      JSON.parse(r.body).user.username,
    ]);
    expect(events).toEqual(
      expect.arrayContaining([
        ['user_created', 'ava'],
        ['user_updated', 'bob'],
      ]),
    );
    expect(events).toHaveLength(2);
    const bobBody = receiver.received.find((r) => JSON.parse(r.body).user.id === bob.id)!;
    expect(JSON.parse(bobBody.body).user.groups).toEqual([
      expect.objectContaining({ name: 'members' }),
    ]);
  });

  // Member lifecycle: suspend, unsuspend, anonymize, delete through the admin API.
  it('suspend / unsuspend / delete send user_suspended / user_unsuspended / user_destroyed, the body telling the state', async () => {
    const user = sim.applyPayload({ ...ava, nonce: 'x' });
    await sim.flushWebhooks();
    receiver.received = [];
    const until = new Date(Date.now() + 86_400_000).toISOString();
    const suspended = await api('PUT', `/admin/users/${user.id}/suspend`, {
      suspend_until: until,
      reason: 'Banned on Discord',
    });
    expect(suspended.status).toBe(200);
    expect(await suspended.json()).toMatchObject({
      suspension: { suspended: true, suspend_reason: 'Banned on Discord', suspended_till: until },
    });
    await sim.flushWebhooks();
    expect((await api('PUT', `/admin/users/${user.id}/unsuspend`)).status).toBe(200);
    await sim.flushWebhooks();
    const deleted = await api('DELETE', `/admin/users/${user.id}.json`, { delete_posts: 'true' });
    expect(await deleted.json()).toEqual({ deleted: true });
    await sim.flushWebhooks();

    const seen = receiver.received.map((r) => ({
      event: r.headers['x-discourse-event'],
      user: JSON.parse(r.body).user,
      signed:
        r.headers['x-discourse-event-signature'] ===
        `sha256=${createHmac('sha256', HOOK_SECRET).update(r.body).digest('hex')}`,
    }));
    expect(seen.map((e) => [e.event, e.signed])).toEqual([
      ['user_suspended', true],
      ['user_unsuspended', true],
      ['user_destroyed', true],
    ]);
    expect(seen[0].user).toMatchObject({
      suspended_till: until,
      suspend_reason: 'Banned on Discord',
    });
    expect(seen[1].user).not.toHaveProperty('suspended_till');
    expect(seen[2].user).toMatchObject({ id: user.id, external_id: ava.external_id });
    expect(sim.findByExternalId(ava.external_id)).toBeUndefined();
    expect((await api('GET', `/admin/users/${user.id}.json`)).status).toBe(404);
  });

  it('anonymize renames the user and clears the DiscourseConnect record: the same external_id makes a new account', async () => {
    const user = sim.applyPayload({ ...ava, nonce: 'x' });
    await sim.flushWebhooks();
    receiver.received = [];
    const res = await api('PUT', `/admin/users/${user.id}/anonymize`);
    const body = (await res.json()) as { success: string; username: string };
    expect(body).toEqual({ success: 'OK', username: expect.stringMatching(/^anon\d+$/) });
    expect(user).toMatchObject({ username: body.username, name: null, externalId: null });
    expect((await api('GET', `/u/by-external/${ava.external_id}.json`)).status).toBe(404);
    await sim.flushWebhooks();
    expect(receiver.received).toEqual([]); // Discourse has no webhook event for anonymization
    const again = sim.applyPayload({ ...ava, nonce: 'y' });
    expect(again.id).not.toBe(user.id);
    expect(again.username).toBe('ava');
  });

  it('staff cannot be suspended, anonymized or deleted; unknown ids are a 404', async () => {
    const admin = sim.addUser({ username: 'boss', email: 'boss@example.com', admin: true });
    for (const [method, path] of [
      ['PUT', `/admin/users/${admin.id}/suspend`],
      ['PUT', `/admin/users/${admin.id}/anonymize`],
      ['DELETE', `/admin/users/${admin.id}.json`],
    ] as const) {
      expect((await api(method, path, { suspend_until: '2100-01-01T00:00:00Z' })).status).toBe(403);
    }
    expect((await api('PUT', '/admin/users/999/unsuspend')).status).toBe(404);
  });

  it('redeliverWebhook replays the same id, body and signature', async () => {
    sim.applyPayload(ava);
    await sim.flushWebhooks();
    sim.redeliverWebhook(1);
    await sim.flushWebhooks();
    expect(receiver.received).toHaveLength(2);
    const [first, replay] = receiver.received;
    expect(replay.body).toBe(first.body);
    expect(replay.headers['x-discourse-event-id']).toBe(first.headers['x-discourse-event-id']);
    expect(replay.headers['x-discourse-event-signature']).toBe(
      first.headers['x-discourse-event-signature'],
    );
    expect(sim.stats.webhookDeliveries[1]).toEqual({
      event: 'user_created',
      id: 1,
      status: 200,
      redelivery: true,
    });
    expect(() => sim.redeliverWebhook(99)).toThrow(/99/);
  });

  it('records failures and unreachable URLs without throwing', async () => {
    receiver.status = 500;
    sim.applyPayload(ava);
    await sim.flushWebhooks();
    expect(sim.stats.webhookDeliveries).toEqual([{ event: 'user_created', id: 1, status: 500 }]);

    sim.webhooks = { url: 'http://127.0.0.1:1/hook', secret: HOOK_SECRET };
    sim.applyPayload(ava);
    await sim.flushWebhooks();
    expect(sim.stats.webhookDeliveries[1]).toMatchObject({
      event: 'user_updated',
      id: 2,
      status: 0,
      error: expect.any(String),
    });
  });

  it('nothing is sent when the webhook is off or not configured; no signature without a secret', async () => {
    sim.knobs.webhooksEnabled = false;
    sim.applyPayload(ava);
    sim.knobs.webhooksEnabled = true;
    sim.webhooks = undefined;
    sim.applyPayload(ava);
    await sim.flushWebhooks();
    expect(receiver.received).toHaveLength(0);
    expect(sim.stats.webhookDeliveries).toHaveLength(0);

    sim.webhooks = { url: receiver.url, secret: '' };
    sim.applyPayload(ava);
    await sim.flushWebhooks();
    expect(receiver.received).toHaveLength(1);
    expect(receiver.received[0].headers['x-discourse-event-signature']).toBeUndefined();
  });
});
