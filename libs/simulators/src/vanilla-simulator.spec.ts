import { createHmac } from 'node:crypto';
import { readVanillaJwt, signVanillaJwt, VanillaSimulator } from './vanilla-simulator';

const SECRET = 'vanilla-sim-secret-0123456789';
const CLIENT = 'sim-client';

/** A cookie-keeping client of one simulator, following no redirects. */
function client(base: string) {
  const jar = new Map<string, string>();
  return async (path: string, init: RequestInit = {}) => {
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await fetch(`${base}${path}`, {
      ...init,
      redirect: 'manual',
      headers: { ...(init.headers as Record<string, string>), ...(cookie ? { cookie } : {}) },
    });
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const [name, value] = [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)];
      if (value === '' || /max-age=0/i.test(line)) jar.delete(name);
      else jar.set(name, value);
    }
    return res;
  };
}

/** The site's answer: a token signed the way the reference library signs it. */
function answer(
  st: unknown,
  u: object,
  change: { secret?: string; kid?: string; iat?: number; lifetime?: number } = {},
) {
  const iat = change.iat ?? Math.floor(Date.now() / 1000);
  return signVanillaJwt(
    { u, st, v: 'test:3', iat, exp: iat + (change.lifetime ?? 600) },
    change.kid ?? CLIENT,
    change.secret ?? SECRET,
  );
}

describe('simulated Vanilla forum (jsConnect v3)', () => {
  const forum = new VanillaSimulator({
    clientId: CLIENT,
    secret: SECRET,
    authenticateUrl: 'https://site.example.com/vanilla/connect',
  });
  let base: string;

  beforeAll(async () => {
    base = await forum.listen(0);
  });
  afterAll(() => forum.close());
  beforeEach(() => forum.reset());

  /** Starts sign-in; returns the client and the request's claims. */
  async function start(target = '/discussion/1') {
    const get = client(base);
    const res = await get(`/sso?target=${encodeURIComponent(target)}`);
    expect(res.status).toBe(302);
    const location = new URL(res.headers.get('location')!);
    expect(`${location.origin}${location.pathname}`).toBe(
      'https://site.example.com/vanilla/connect',
    );
    const jwt = location.searchParams.get('jwt')!;
    const read = readVanillaJwt(jwt, SECRET, 'HS256');
    if ('error' in read) throw new Error(read.error);
    return { get, jwt, ...read };
  }

  it('signs its request with the connection secret: header kid, typ, alg; st, rurl, v, iat, exp', async () => {
    const { jwt, header, claims } = await start();
    expect(Buffer.from(jwt.split('.')[0], 'base64url').toString()).toBe(
      `{"kid":"${CLIENT}","typ":"JWT","alg":"HS256"}`,
    );
    expect(header.kid).toBe(CLIENT);
    expect(Object.keys(claims)).toEqual(['st', 'rurl', 'v', 'iat', 'exp']);
    expect(claims.exp).toBe((claims.iat as number) + 600);
    expect(claims.rurl).toBe(`${base}/entry/jsconnect-redirect?client_id=${CLIENT}`);
    expect(claims.st).toEqual({ n: expect.any(String), t: '/discussion/1' });
    const input = jwt.split('.').slice(0, 2).join('.');
    expect(jwt.split('.')[2]).toBe(createHmac('sha256', SECRET).update(input).digest('base64url'));
  });

  it('signs in the user of a valid answer, mapped by id the next time, and lands on the target', async () => {
    const { get, claims } = await start();
    const user = { id: '42', name: 'ann', email: 'ann@example.com', photo: 'https://x/a.png' };
    const res = await get(
      `/entry/connect/jsconnect?client_id=${CLIENT}&jwt=${answer(claims.st, user)}`,
    );
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toBe('/discussion/1');
    expect(await (await get('/')).text()).toContain('id="current-user">ann<');
    expect(forum.findByUniqueId('42')).toMatchObject({ name: 'ann', roles: ['Member'] });

    const again = await start();
    await again.get(
      `/entry/connect/jsconnect?client_id=${CLIENT}&jwt=${answer(again.claims.st, { ...user, name: 'other', roles: ['Moderator', 'Nope'] })}`,
    );
    expect(forum.users).toHaveLength(1);
    expect(forum.findByUniqueId('42')!.roles).toEqual(['Moderator']);
  });

  it.each([
    ['another secret', { secret: 'another-secret-0123456789' }, 'Signature verification failed'],
    ['another kid', { kid: 'other' }, 'another connection'],
    ['an expired answer', { iat: 1_600_000_000 }, 'Expired token'],
    ['an answer valid too long', { lifetime: 6000 }, 'too long'],
  ])('refuses %s', async (_what, change, message) => {
    const { get, claims } = await start();
    const res = await get(
      `/entry/connect/jsconnect?client_id=${CLIENT}&jwt=${answer(claims.st, { id: '1', name: 'ann', email: 'a@x.y' }, change)}`,
    );
    expect(res.status).toBe(400);
    expect(await res.text()).toContain(message);
    expect(forum.stats.logins).toBe(0);
  });

  it('refuses an answer whose nonce is not this browser’s, and a nonce used twice', async () => {
    const { get, claims } = await start();
    const user = { id: '1', name: 'ann', email: 'a@x.y' };
    const forged = answer({ n: 'someone-else' }, user);
    expect((await get(`/entry/connect/jsconnect?client_id=${CLIENT}&jwt=${forged}`)).status).toBe(
      400,
    );
    // The cookie's nonce was spent by that attempt.
    const late = answer(claims.st, user);
    expect((await get(`/entry/connect/jsconnect?client_id=${CLIENT}&jwt=${late}`)).status).toBe(
      400,
    );
    expect(forum.stats.errors).toBe(2);
  });

  it('treats u: {} as a guest, and refuses an email in use unless AutoConnect is on', async () => {
    const guest = await start();
    const res = await guest.get(
      `/entry/connect/jsconnect?client_id=${CLIENT}&jwt=${answer(guest.claims.st, {})}`,
    );
    expect(await res.text()).toContain('not signed in on the site');
    expect(forum.stats.guests).toBe(1);

    forum.addUser({ name: 'owner', email: 'owner@example.com' });
    const claim = { id: '7', name: 'claimer', email: 'owner@example.com' };
    const off = await start();
    const refused = await off.get(
      `/entry/connect/jsconnect?client_id=${CLIENT}&jwt=${answer(off.claims.st, claim)}`,
    );
    expect(await refused.text()).toContain('AutoConnect is off');
    forum.autoConnect = true;
    const on = await start();
    await on.get(`/entry/connect/jsconnect?client_id=${CLIENT}&jwt=${answer(on.claims.st, claim)}`);
    expect(forum.findByUniqueId('7')!.name).toBe('owner');
    forum.autoConnect = false;
  });

  it('asks before signing out without the transient key, then goes to a trusted target only', async () => {
    const { get, claims } = await start();
    await get(
      `/entry/connect/jsconnect?client_id=${CLIENT}&jwt=${answer(claims.st, { id: '1', name: 'ann', email: 'a@x.y' })}`,
    );
    const ask = await get('/entry/signout?target=https%3A%2F%2Fevil.example.com%2F');
    expect(await ask.text()).toContain('Are you sure you want to sign out?');
    const key = /name="TransientKey" value="([^"]+)"/.exec(
      await (await get('/entry/signout')).text(),
    )![1];
    const out = await get('/entry/signout', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        TransientKey: key,
        target: 'https://evil.example.com/',
      }).toString(),
    });
    expect(out.headers.get('location')).toBe('/');
    expect(await (await get('/')).text()).toContain('Not signed in');
  });
});
