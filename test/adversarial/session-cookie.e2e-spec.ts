import { DataSource } from 'typeorm';
import { DISCORD_FIXTURES } from 'nestjs-discourse-connect-simulators';
import { TestBrowser } from '../support/browser';
import { HTTP_ADAPTERS, startHarness, type Harness } from '../support/harness';
import { isSignedIn as isSignedInOn } from './adversarial-support';

/**
 * The session cookie on an https site is `__Host-dc.sid` (Secure, Path=/, no Domain), so a sibling
 * subdomain can neither plant nor shadow it. The old name `dc.sid` is still read for one release
 * when the new one is absent (an upgrade signs nobody out) and moved to the new name; it never wins
 * over the new one. The app runs behind one trusted proxy that terminates TLS (X-Forwarded-Proto).
 */

const { migrated, legacy } = DISCORD_FIXTURES;
const HOST = '127.0.0.1';
const HTTPS = { 'x-forwarded-proto': 'https' };
const NEW = '__Host-dc.sid';
const OLD = 'dc.sid';

describe.each(HTTP_ADAPTERS)('adversarial: __Host- session cookie on https (%s)', (adapter) => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness('forRoot', {
      adapter,
      trustProxy: true,
      moduleOptions: (o) => ({ ...o, publicUrl: o.publicUrl.replace(/^http:/, 'https:') }),
    });
    h.discord.redirectUris.push(`${h.appUrl.replace(/^http:/, 'https:')}/auth/discord/callback`);
  });
  afterAll(async () => h?.close());

  const cookieLines = (res: Response, name: string) =>
    res.headers.getSetCookie().filter((l) => l.startsWith(`${name}=`));

  async function signIn(
    as: string,
  ): Promise<{ browser: TestBrowser; start: Response; callback: Response }> {
    h.discord.knobs.autoApproveAs = as;
    const browser = new TestBrowser();
    const start = await browser.request(`${h.appUrl}/auth/discord`, { headers: HTTPS });
    expect(start.status).toBe(302);
    const approved = await fetch(start.headers.get('location')!, { redirect: 'manual' });
    const back = new URL(approved.headers.get('location')!);
    const callback = await browser.request(`${h.appUrl}${back.pathname}${back.search}`, {
      headers: HTTPS,
    });
    expect(callback.status).toBe(302);
    return { browser, start, callback };
  }

  const isSignedIn = (browser: TestBrowser) => isSignedInOn(h, browser, HTTPS);
  const sidOf = (value: string) => /^s:([^.]+)\./.exec(decodeURIComponent(value))?.[1];
  const rowExists = async (value: string) =>
    (
      await h.app
        .get(DataSource)
        .query('SELECT sid FROM discourse_connect_sessions WHERE sid = ?', [sidOf(value)])
    ).length === 1;

  it('is named __Host-dc.sid with Secure, Path=/ and no Domain, at sign-in start and after sign-in', async () => {
    const { browser, start, callback } = await signIn(migrated.id);
    for (const res of [start, callback]) {
      expect(cookieLines(res, OLD)).toEqual([]);
      const [line] = cookieLines(res, NEW);
      expect(line).toBeDefined();
      expect(line).toMatch(/; Secure/i);
      expect(line).toMatch(/; Path=\/(;|$)/i);
      expect(line).not.toMatch(/; Domain=/i);
      expect(line).toMatch(/; HttpOnly/i);
    }
    expect(await isSignedIn(browser)).toBe(true);
  });

  it('the old name alone is still accepted (an upgrade signs nobody out) and moved to the new name', async () => {
    const { browser } = await signIn(migrated.id);
    const value = browser.cookie(HOST, NEW)!;
    const upgraded = new TestBrowser();
    upgraded.cookies.set(HOST, new Map([[OLD, value]]));
    const res = await upgraded.request(`${h.appUrl}/discourse/forum`, { headers: HTTPS });
    expect(res.headers.get('location')).toContain('/session/sso?');
    expect(cookieLines(res, NEW)[0]).toMatch(/; Secure/i);
    expect(cookieLines(res, OLD)[0]).toMatch(/Expires=Thu, 01 Jan 1970/i);
    expect([...upgraded.cookies.get(HOST)!.keys()]).toEqual([NEW]);
    expect(decodeURIComponent(upgraded.cookie(HOST, NEW)!)).toBe(decodeURIComponent(value));
    expect(await isSignedIn(upgraded)).toBe(true);
  });

  it('a cookie of the old name planted by a sibling subdomain never wins over the __Host- one, whatever its place', async () => {
    const victim = (await signIn(migrated.id)).browser.cookie(HOST, NEW)!;
    const attacker = (await signIn(legacy.id)).browser.cookie(HOST, NEW)!;
    // Signing out with the mixed header ends the session it was read as.
    const mixed = new TestBrowser();
    mixed.cookies.set(
      HOST,
      new Map([
        [OLD, attacker],
        [NEW, victim],
      ]),
    );
    expect([...mixed.cookies.get(HOST)!.keys()]).toEqual([OLD, NEW]);
    const out = await mixed.request(`${h.appUrl}/auth/logout`, {
      method: 'POST',
      headers: { ...HTTPS, origin: h.appUrl.replace(/^http:/, 'https:') },
    });
    expect(out.status).toBe(303);
    expect(await rowExists(victim)).toBe(false);
    expect(await rowExists(attacker)).toBe(true);
  });

  it('sign-out expires both names, with the attributes a __Host- cookie needs', async () => {
    const { browser } = await signIn(migrated.id);
    const out = await browser.request(`${h.appUrl}/auth/logout`, {
      method: 'POST',
      headers: { ...HTTPS, origin: h.appUrl.replace(/^http:/, 'https:') },
    });
    expect(out.status).toBe(303);
    const cleared = cookieLines(out, NEW).find((l) => /Expires=Thu, 01 Jan 1970/i.test(l));
    expect(cleared).toMatch(/; Secure/i);
    expect(cleared).toMatch(/; Path=\//i);
    expect(cookieLines(out, OLD).some((l) => /Expires=Thu, 01 Jan 1970/i.test(l))).toBe(true);
    expect(await isSignedIn(browser)).toBe(false);
  });

  it.each([
    ['a value with an encoded line break', 'x%0D%0ASet-Cookie%3A%20a%3Db'],
    ['attributes in the value', 's%3Aabc%3B%20Domain%3Devil.example'],
    ['an empty value', ''],
  ])(
    'an old-name cookie holding %s is ignored: 200-class answer, no cookie written from it',
    async (_n, value) => {
      const res = await fetch(`${h.appUrl}/discourse/forum`, {
        headers: { ...HTTPS, cookie: `${OLD}=${value}` },
        redirect: 'manual',
      });
      expect(res.status).toBe(302);
      expect(res.headers.get('location')).not.toContain('/session/sso?');
      expect(res.headers.getSetCookie()).toEqual([]);
    },
  );
});
