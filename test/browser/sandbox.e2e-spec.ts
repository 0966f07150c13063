import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { DISCORD_FIXTURES } from 'nestjs-discourse-connect-simulators';
import { buildOnce } from '../support/build';
import { describeWithChromium, launchChromium } from '../support/chromium';
import { freePortRun } from '../support/ports';

/**
 * The sandbox as a person uses it: `npm start` with no Discord credentials, then a real browser
 * (Debian's Chromium) clicking through the forum, the simulated Discord consent page and the app.
 */

const ROOT = resolve(__dirname, '../..');
const MAIN = join(ROOT, 'dist/src/main.js');
const RESULTS = join(ROOT, 'test-results');
const { migrated } = DISCORD_FIXTURES;

/**
 * The environment of a person who has set nothing (no Discord credentials, no app configuration)
 * but the HTTP adapter: unset means Fastify, so `fastify` is tested as the default.
 */
function userEnvironment(port: number, adapter: 'fastify' | 'express'): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port) };
  for (const key of Object.keys(env)) {
    if (
      /^(DISCORD_|DISCOURSE_|DATABASE_URL$|PUBLIC_URL$|SESSION_SECRET$|TRUST_PROXY$|HTTP_ADAPTER$|REDIS_URL$|NODE_ENV$|JEST_)/.test(
        key,
      )
    ) {
      delete env[key];
    }
  }
  if (adapter === 'express') env.HTTP_ADAPTER = 'express';
  return env;
}

describeWithChromium.each(['fastify', 'express'] as const)(
  'sandbox in a real browser (%s)',
  (adapter) => {
    let app: ChildProcess | undefined;
    let exited: Promise<void> = Promise.resolve();
    let workDir: string | undefined;
    let output = '';
    let browser: Browser | undefined;
    let context: BrowserContext;
    let page: Page;
    let appUrl: string;
    let forumUrl: string;
    let teamForumUrl: string;

    beforeAll(async () => {
      // What `npm start` does first (once per test run).
      buildOnce();

      const port = await freePortRun();
      workDir = mkdtempSync(join(tmpdir(), 'dc-sandbox-'));
      const child = spawn(process.execPath, [MAIN], {
        cwd: workDir,
        env: userEnvironment(port, adapter),
        detached: true, // its own process group, so afterAll can stop all of it
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      app = child;
      exited = new Promise((done) => child.once('exit', () => done()));
      const printed = await new Promise<string>((done, fail) => {
        const timer = setTimeout(
          () => fail(new Error(`The sandbox did not start within 30 s. Output:\n${output}`)),
          30_000,
        );
        const onData = (chunk: Buffer) => {
          output += chunk.toString();
          const match = /Open (http:\/\/127\.0\.0\.1:\d+)\/ in your browser/.exec(output);
          if (match) {
            clearTimeout(timer);
            done(match[1]);
          }
        };
        child.stdout!.on('data', onData);
        child.stderr!.on('data', onData);
        child.once('exit', (code) => {
          clearTimeout(timer);
          fail(
            new Error(
              `The sandbox exited with code ${code} before it was ready. Output:\n${output}`,
            ),
          );
        });
      });
      appUrl = printed;
      expect(appUrl).toBe(`http://127.0.0.1:${port}`);
      forumUrl = `http://127.0.0.1:${port + 2}`;
      // In a subfolder, so its session cookie does not replace the first forum's (same host).
      teamForumUrl = `http://127.0.0.1:${port + 3}/team`;
      // It prints one URL: the app's.
      expect(output.match(/https?:\/\/\S+/g)).toEqual([`${appUrl}/`]);

      browser = await launchChromium();
      context = await browser.newContext();
      context.setDefaultTimeout(10_000);
      page = await context.newPage();
    }, 60_000);

    afterAll(async () => {
      await browser?.close();
      if (app?.pid !== undefined && app.exitCode === null && app.signalCode === null) {
        const pid = app.pid;
        try {
          process.kill(-pid, 'SIGTERM');
        } catch {
          // already gone
        }
        let timer: NodeJS.Timeout | undefined;
        const stopped = await Promise.race([
          exited.then(() => true),
          new Promise<boolean>((r) => (timer = setTimeout(() => r(false), 5_000))),
        ]);
        clearTimeout(timer);
        if (!stopped) {
          try {
            process.kill(-pid, 'SIGKILL');
          } catch {
            // already gone
          }
          await exited;
        }
      }
      if (workDir) rmSync(workDir, { recursive: true, force: true });
    }, 20_000);

    /** On the simulated Discord consent page, choose the migrated fixture account. */
    async function approveOnDiscord(): Promise<void> {
      await page.waitForSelector(`button[data-user-id="${migrated.id}"]`);
      expect(await page.title()).toContain('Simulated Discord');
      await page.click(`button[data-user-id="${migrated.id}"]`);
    }

    async function expectAppSignedOut(): Promise<void> {
      await page.goto(`${appUrl}/`);
      await expect(page.locator('#current-user-none').textContent()).resolves.toContain(
        'You are not signed in.',
      );
      expect(await page.locator('#current-user').count()).toBe(0);
    }

    it(`runs on ${adapter}`, async () => {
      // The startup line is JSON written asynchronously, possibly after the URL.
      for (let i = 0; i < 40 && !output.includes('"adapter"'); i++)
        await new Promise((r) => setTimeout(r, 50));
      expect(output).toContain(`"adapter":"${adapter}"`);
    });

    it('signs in on the forum through the simulated Discord consent page', async () => {
      await page.goto(`${forumUrl}/`);
      expect(await page.locator('#current-user').count()).toBe(0);
      await page.getByRole('link', { name: 'Log In' }).click();
      await approveOnDiscord();
      await page.waitForURL(`${forumUrl}/`);
      await expect(page.locator('#current-user').textContent()).resolves.toBe(migrated.username);
      await expect(page.locator('#current-email').textContent()).resolves.toBe(migrated.email);
      mkdirSync(RESULTS, { recursive: true });
      await page.screenshot({
        path: join(RESULTS, `sandbox-forum-signed-in-${adapter}.png`),
        fullPage: true,
      });
    }, 20_000);

    it('lands signed in on the second forum with the same Discord sign-in, with its own groups', async () => {
      let authorizations = 0;
      const count = (request: { url(): string }) => {
        if (request.url().includes('/oauth2/authorize')) authorizations++;
      };
      page.on('request', count);
      await page.goto(`${teamForumUrl}/`);
      expect(await page.title()).toContain('Sandbox team forum');
      expect(await page.locator('#current-user').count()).toBe(0);
      await page.getByRole('link', { name: 'Log In' }).click();
      await page.waitForURL(`${teamForumUrl}/`);
      page.off('request', count);
      // No second trip to Discord: the app's session signed the member in.
      expect(authorizations).toBe(0);
      await expect(page.locator('#current-user').textContent()).resolves.toBe(migrated.username);
      // The team forum's own group map (DISCOURSE_FORUM_TEAM_GROUP_MAP) decided its groups.
      await expect(page.locator('#current-groups').textContent()).resolves.toBe('team');
      // Still signed in on the first forum.
      await page.goto(`${forumUrl}/`);
      await expect(page.locator('#current-user').textContent()).resolves.toBe(migrated.username);
      mkdirSync(RESULTS, { recursive: true });
      await page.goto(`${teamForumUrl}/`);
      await page.screenshot({
        path: join(RESULTS, `sandbox-team-forum-signed-in-${adapter}.png`),
        fullPage: true,
      });
    }, 20_000);

    it("links to both forums from the app's home page, each landing signed in", async () => {
      await page.goto(`${appUrl}/`);
      await page.getByRole('link', { name: 'Go to forum: team' }).click();
      await page.waitForURL(`${teamForumUrl}/`);
      await expect(page.locator('#current-user').textContent()).resolves.toBe(migrated.username);
    }, 20_000);

    it("shows the same person on the app's home page, whose forum link lands on the forum signed in", async () => {
      await page.goto(`${appUrl}/`);
      await expect(page.locator('#current-user').textContent()).resolves.toBe(migrated.global_name);
      await expect(page.locator('body').textContent()).resolves.toContain(`@${migrated.username}`);
      await page.getByRole('link', { name: 'Go to the forum' }).click();
      await page.waitForURL(`${forumUrl}/`);
      await expect(page.locator('#current-user').textContent()).resolves.toBe(migrated.username);
    }, 20_000);

    it('signs out on the app with the Sign out button', async () => {
      await page.goto(`${appUrl}/`);
      await page.click('#sign-out');
      await page.waitForURL(`${appUrl}/`);
      await expect(page.locator('#current-user-none').textContent()).resolves.toContain(
        'You are not signed in.',
      );
      await expectAppSignedOut();
    }, 20_000);

    it('signing out on the app signed the forum out too (through its admin API)', async () => {
      // The sandbox forum has an admin API key, so the app's sign-out queued a forum log-out.
      for (let i = 0; i < 50; i++) {
        await page.goto(`${forumUrl}/`);
        if ((await page.locator('#current-user').count()) === 0) break;
        await page.waitForTimeout(100);
      }
      expect(await page.locator('#current-user').count()).toBe(0);
    }, 20_000);

    it('signing out on the forum signs the app out too', async () => {
      await page.goto(`${forumUrl}/`);
      await page.getByRole('link', { name: 'Log In' }).click();
      // Discord skips its consent screen for an account that already approved this app in this browser.
      await page.waitForFunction(
        "location.pathname.endsWith('/oauth2/authorize') || document.querySelector('#current-user') !== null",
      );
      if (page.url().includes('/oauth2/authorize')) await approveOnDiscord();
      await page.waitForURL(`${forumUrl}/`);
      await expect(page.locator('#current-user').textContent()).resolves.toBe(migrated.username);
      await page.goto(`${appUrl}/`);
      await expect(page.locator('#current-user').textContent()).resolves.toBe(migrated.global_name);

      await page.goto(`${forumUrl}/`);
      await page.getByRole('button', { name: 'Log Out' }).click();
      // The forum's logout_redirect is the app's /discourse/logout, which signs out and goes home.
      await page.waitForURL(`${appUrl}/`);
      await expect(page.locator('#current-user-none').textContent()).resolves.toContain(
        'You are not signed in.',
      );
      await expectAppSignedOut();
      await page.goto(`${forumUrl}/`);
      expect(await page.locator('#current-user').count()).toBe(0);
    }, 30_000);

    it("a role taken away on the simulated Discord's members page takes the forum group away, with nobody signing in", async () => {
      const discordUrl = `http://127.0.0.1:${Number(new URL(appUrl).port) + 1}`;
      await page.goto(`${forumUrl}/u/${migrated.username}`);
      await expect(page.locator('#user-groups').textContent()).resolves.toBe('members, moderators');
      const discordPage = await context.newPage();
      await discordPage.goto(`${discordUrl}/sandbox/members`);
      const row = discordPage.locator(`tr[data-user-id="${migrated.id}"]`);
      await row.locator('input[data-role="Moderator"]').uncheck();
      await row.locator('button[data-action="save"]').click();
      await discordPage.locator('#notice').filter({ hasText: 'saved' }).waitFor();
      // The bot connection brings the change to the forum; the forum's user page reloads by itself.
      await page
        .locator('#user-groups')
        .filter({ hasText: /^members$/ })
        .waitFor({ timeout: 20_000 });
      mkdirSync(RESULTS, { recursive: true });
      await page.screenshot({
        path: join(RESULTS, `sandbox-forum-group-removed-${adapter}.png`),
        fullPage: true,
      });
      await discordPage.close();
    }, 40_000);
  },
);
