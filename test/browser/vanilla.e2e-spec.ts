import type { Browser, BrowserContext, Page } from 'playwright-core';
import { DISCORD_FIXTURES } from 'nestjs-discourse-connect-simulators';
import { describeWithChromium, launchChromium } from '../support/chromium';
import { HTTP_ADAPTERS, startHarness, type Harness } from '../support/harness';

const { migrated } = DISCORD_FIXTURES;

/**
 * One Discord sign-in, two forums, in a real Chromium: the simulated Discourse forum signs the
 * member in through DiscourseConnect, then the simulated Vanilla forum through jsConnect v3 (its page
 * script reads the answer from the URL fragment, as Vanilla's does) without asking Discord again.
 */
describeWithChromium.each(HTTP_ADAPTERS)(
  'Discourse and Vanilla in a real browser (%s)',
  (adapter) => {
    let h: Harness;
    let browser: Browser;
    let context: BrowserContext;
    let page: Page;

    beforeAll(async () => {
      h = await startHarness('forRoot', { adapter, vanilla: {} });
      browser = await launchChromium();
      context = await browser.newContext();
      context.setDefaultTimeout(10_000);
      page = await context.newPage();
    }, 30_000);

    afterAll(async () => {
      await browser?.close();
      await h?.close();
    });

    it('signs in on both forums with one Discord sign-in', async () => {
      await page.goto(`${h.forum.baseUrl}/`);
      await page.getByRole('link', { name: 'Log In' }).click();
      await page.waitForSelector(`button[data-user-id="${migrated.id}"]`);
      await page.click(`button[data-user-id="${migrated.id}"]`);
      await page.waitForURL(`${h.forum.baseUrl}/`);
      await expect(page.locator('#current-user').textContent()).resolves.toBe(migrated.username);

      // From here on, Discord is not asked again.
      let authorizations = 0;
      page.on('request', (request) => {
        if (request.url().includes('/oauth2/authorize')) authorizations++;
      });
      await page.goto(`${h.vanilla!.forumRootUrl}/discussion/1`);
      await expect(page.locator('#session-status').textContent()).resolves.toContain(
        'Not signed in',
      );
      await page.getByRole('link', { name: 'Sign In' }).click();
      await page.waitForURL(`${h.vanilla!.forumRootUrl}/discussion/1`);
      const name = await page.locator('#current-user').textContent();
      expect(name).toMatch(/^ava_migrated_[a-z0-9]{4}$/);
      await expect(page.locator('#current-email').textContent()).resolves.toBe(migrated.email);
      await expect(page.locator('#current-unique-id').textContent()).resolves.toBe(migrated.id);
      expect(authorizations).toBe(0);
      expect(h.vanilla!.stats.logins).toBe(1);

      // Signing out on Vanilla bounces to the site's sign-out URL, which signs out here too.
      await page.getByRole('link', { name: 'Sign Out' }).click();
      await page.waitForURL(`${h.appUrl}/`);
      await page.goto(`${h.mountUrl}/vanilla/forum?target=%2Fdiscussion%2F2`);
      await page.waitForURL(`${h.vanilla!.forumRootUrl}/discussion/2`);
      await expect(page.locator('#session-status').textContent()).resolves.toContain(
        'Not signed in',
      );
    }, 30_000);
  },
);
