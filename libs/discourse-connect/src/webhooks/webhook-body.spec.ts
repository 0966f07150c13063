import fc from 'fast-check';
import { checkWebhookBody, MAX_FORUM_USER_ID, parseEventId } from './webhook-body';

const user = (fields: Record<string, unknown>) => ({
  user: { id: 7, username: 'alice', ...fields },
});

describe('parseEventId', () => {
  it.each(['1', '42', '9007199254740991'])('accepts %s', (id) => expect(parseEventId(id)).toBe(id));
  it.each([
    undefined,
    '',
    '0',
    '-1',
    '+1',
    '01',
    '5.5',
    '1e3',
    '9007199254740992',
    '99999999999999999999',
    ' 1',
    '1 ',
  ])('refuses %p', (id) => expect(parseEventId(id)).toBeNull());
});

describe('checkWebhookBody', () => {
  it('accepts a Discourse user body and reads its ordering key', () => {
    const check = checkWebhookBody(
      user({
        external_id: '80351110224678912',
        name: null,
        updated_at: '2024-05-01T10:00:00.000Z',
        last_seen_at: '2024-05-02T10:00:00.000Z',
      }),
      true,
    );
    expect(check).toEqual({
      ok: true,
      user: {
        id: 7,
        username: 'alice',
        discordId: '80351110224678912',
        version: Date.parse('2024-05-02T10:00:00.000Z'),
        suspendedTill: null,
      },
    });
  });

  it('reads suspended_till (member lifecycle): present while suspended, null when absent', () => {
    const check = checkWebhookBody(user({ suspended_till: '3024-01-01T00:00:00.000Z' }), true);
    expect(check.ok && check.user?.suspendedTill).toBe(Date.parse('3024-01-01T00:00:00.000Z'));
    const none = checkWebhookBody(user({}), true);
    expect(none.ok && none.user?.suspendedTill).toBeNull();
  });

  it('has no ordering key without timestamps, and does not link a non-snowflake external_id', () => {
    expect(checkWebhookBody(user({ external_id: 'abc', last_seen_at: null }), true)).toEqual({
      ok: true,
      user: { id: 7, username: 'alice', discordId: null, version: null, suspendedTill: null },
    });
  });

  it('lets an event the module does not apply through without a user', () => {
    expect(checkWebhookBody({ topic: {} }, false)).toEqual({ ok: true, user: null });
    expect(checkWebhookBody({ topic: {} }, true).ok).toBe(false);
  });

  it.each<[string, unknown]>([
    ['not an object', []],
    ['null', null],
    ['user not an object', { user: 'x' }],
    ['user an array', { user: [1] }],
    ['id Infinity (1e999)', JSON.parse('{"user":{"id":1e999,"username":"a"}}')],
    ['id 1e308', user({ id: 1e308 })],
    ['id -1', user({ id: -1 })],
    ['id 0', user({ id: 0 })],
    ['id 5.5', user({ id: 5.5 })],
    ['id above 32 bits', user({ id: MAX_FORUM_USER_ID + 1 })],
    ['id as a string', user({ id: '12' })],
    ['id nested', user({ id: { n: 1 } })],
    ['username missing', { user: { id: 1 } }],
    ['username empty', user({ username: '' })],
    ['username huge', user({ username: 'a'.repeat(10_000) })],
    ['username with a control character', user({ username: 'a\u0000b' })],
    ['username a number', user({ username: 12 })],
    ['username an array', user({ username: ['a'] })],
    ['external_id a number', user({ external_id: 80351110224678912 })],
    ['external_id huge', user({ external_id: '1'.repeat(10_000) })],
    ['name an object', user({ name: { a: 1 } })],
    ['updated_at not a time', user({ updated_at: 'yesterday' })],
    ['updated_at a number', user({ updated_at: 1714557600000 })],
    ['last_seen_at impossible date', user({ last_seen_at: '2024-13-45T99:00:00Z' })],
    ['suspended_till not a time', user({ suspended_till: 'forever' })],
  ])('refuses %s', (_name, body) => {
    expect(checkWebhookBody(body, true).ok).toBe(false);
  });

  it('accepts exactly the positive 32-bit integer ids (property)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.double(), fc.integer({ min: -(2 ** 40), max: 2 ** 40 })), (id) => {
        const ok = checkWebhookBody(user({ id }), true).ok;
        expect(ok).toBe(Number.isInteger(id) && id >= 1 && id <= MAX_FORUM_USER_ID);
      }),
    );
  });
});
