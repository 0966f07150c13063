import { createHash, createHmac, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser } from 'playwright-core';
import {
  DISCORD_FIXTURES,
  DiscordSimulator,
  DiscourseSimulator,
  SIM_GUILD_ROLES,
} from 'nestjs-discourse-connect-simulators';
import { describeWithChromium, launchChromium } from '../support/chromium';

const SECRET = 'browser-spec-secret-0123456789';

/**
 * Both simulators clicked through in a real Chromium, with a minimal provider written here (not the
 * library): forum → provider → Discord consent page → provider → forum, signed in.
 */
describeWithChromium('simulators in a real browser', () => {
  const discord = new DiscordSimulator();
  const forum = new DiscourseSimulator({ secret: SECRET, title: 'Browser forum' });
  let provider: Server;
  let providerUrl: string;
  let discordUrl: string;
  let browser: Browser;

  beforeAll(async () => {
    discordUrl = await discord.listen(0);
    await forum.listen(0);
    const pending = new Map<string, { verifier: string; sso: URLSearchParams }>();
    provider = createServer((req, res) => {
      void (async () => {
        const url = new URL(req.url!, providerUrl);
        if (url.pathname === '/discourse/sso') {
          const sso = url.searchParams.get('sso')!;
          if (
            createHmac('sha256', SECRET).update(sso).digest('hex') !== url.searchParams.get('sig')
          ) {
            res.writeHead(403).end('bad sig');
            return;
          }
          const verifier = randomBytes(32).toString('base64url');
          const state = randomBytes(8).toString('hex');
          pending.set(state, {
            verifier,
            sso: new URLSearchParams(Buffer.from(sso, 'base64').toString()),
          });
          const q = new URLSearchParams({
            client_id: 'sandbox-client-id',
            redirect_uri: `${providerUrl}/cb`,
            response_type: 'code',
            scope: 'identify email',
            state,
            code_challenge: createHash('sha256').update(verifier).digest('base64url'),
            code_challenge_method: 'S256',
          });
          res.writeHead(302, { Location: `${discordUrl}/oauth2/authorize?${q}` }).end();
          return;
        }
        if (url.pathname === '/cb') {
          const p = pending.get(url.searchParams.get('state') ?? '');
          if (!p || !url.searchParams.get('code')) {
            res
              .writeHead(200, { 'Content-Type': 'text/html' })
              .end(`<h1 id="denied">${url.searchParams.get('error')}</h1>`);
            return;
          }
          const tok = (await (
            await fetch(`${discordUrl}/api/oauth2/token`, {
              method: 'POST',
              headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
              body: new URLSearchParams({
                client_id: 'sandbox-client-id',
                client_secret: 'sandbox-client-secret',
                grant_type: 'authorization_code',
                code: url.searchParams.get('code')!,
                redirect_uri: `${providerUrl}/cb`,
                code_verifier: p.verifier,
              }).toString(),
            })
          ).json()) as { access_token: string };
          const me = (await (
            await fetch(`${discordUrl}/api/v10/users/@me`, {
              headers: { Authorization: `Bearer ${tok.access_token}` },
            })
          ).json()) as { id: string; username: string; global_name: string | null; email: string };
          const payload = new URLSearchParams({
            nonce: p.sso.get('nonce')!,
            external_id: me.id,
            email: me.email,
            username: me.username,
            name: me.global_name ?? me.username,
            add_groups: 'members',
          }).toString();
          const sso = Buffer.from(payload).toString('base64');
          const sig = createHmac('sha256', SECRET).update(sso).digest('hex');
          res
            .writeHead(302, {
              Location: `${p.sso.get('return_sso_url')}?${new URLSearchParams({ sso, sig })}`,
            })
            .end();
          return;
        }
        res.writeHead(404).end();
      })();
    });
    await new Promise<void>((done) => provider.listen(0, '127.0.0.1', done));
    providerUrl = `http://127.0.0.1:${(provider.address() as AddressInfo).port}`;
    discord.redirectUris = [`${providerUrl}/cb`];
    forum.connectUrl = `${providerUrl}/discourse/sso`;
    browser = await launchChromium();
  }, 30_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise<void>((done) => provider?.close(() => done()));
    await Promise.all([discord.close(), forum.close()]);
  });

  it('signs in by clicking a fixture on the consent page, and signs out', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${forum.baseUrl}/t/welcome-to-the-forum/1`);
    await page.getByText('Log In').click();
    await page.waitForURL(/\/oauth2\/authorize/);
    expect(await page.title()).toContain('Simulated Discord');
    await page.click(`button[data-user-id="${DISCORD_FIXTURES.animated.id}"]`);
    await page.waitForURL(`${forum.baseUrl}/t/welcome-to-the-forum/1`);
    expect(await page.textContent('#current-user')).toBe('sparkle');
    expect(await page.textContent('#current-name')).toBe('Spärkle ✨');
    expect(await page.textContent('#current-groups')).toBe('members');

    await page.click('#logout');
    await page.waitForURL(`${forum.baseUrl}/`);
    expect(await page.textContent('#session-status')).toContain('Not signed in');
    await context.close();
  }, 30_000);

  it("changes roles on the Discord members page, and the forum's user page shows a group change by itself", async () => {
    const { animated } = DISCORD_FIXTURES;
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${discordUrl}/sandbox/members`);
    const row = page.locator(`tr[data-user-id="${animated.id}"]`);
    await row.locator('input[data-role="Veteran"]').check();
    await row.locator('button[data-action="save"]').click();
    await page.locator('#notice').filter({ hasText: 'saved' }).waitFor();
    expect(discord.guild.rolesOf(animated.id)).toEqual([SIM_GUILD_ROLES.veteran]);
    expect(await row.locator('input[data-role="Veteran"]').isChecked()).toBe(true);

    // Signed in on the forum, the member opens their profile, which follows changes made elsewhere.
    await page.goto(`${forum.baseUrl}/session/sso?return_path=%2F`);
    await page.click(`button[data-user-id="${animated.id}"]`);
    await page.waitForURL(`${forum.baseUrl}/`);
    await page.click('#current-user-page');
    expect(await page.textContent('#user-groups')).toBe('members');
    // What a provider's background sync does on the forum, without any click in this browser.
    forum.findByExternalId(animated.id)!.groups.push('veterans');
    await page.locator('#user-groups').filter({ hasText: 'members, veterans' }).waitFor();
    discord.reset();
    await context.close();
  }, 30_000);

  it('Cancel on the consent page comes back with access_denied', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${forum.baseUrl}/session/sso?return_path=%2F`);
    await page.click('#cancel');
    await page.waitForURL(/\/cb\?/);
    expect(await page.textContent('#denied')).toBe('access_denied');
    await context.close();
  }, 30_000);
});
