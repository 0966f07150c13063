/**
 * The sandbox's Vanilla forum, from the source (the browser test of `npm start` runs the built app):
 * the sandbox starts a simulated Vanilla forum next to the others, the home page links to it, and
 * the Discord sign-in lands the member on it with the roles of its role map.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { DISCORD_FIXTURES } from 'nestjs-discourse-connect-simulators';
import { AppModule } from '../src/app.module';
import { startSandbox, type Sandbox } from '../src/sandbox';
import { TestBrowser } from './support/browser';
import { freePortRun } from './support/ports';
jest.setTimeout(30_000);

const { migrated } = DISCORD_FIXTURES;

describe('the sandbox Vanilla forum', () => {
  const cwd = process.cwd();
  const saved = { ...process.env };
  let dir: string;
  let sandbox: Sandbox;
  let app: INestApplication;
  let appUrl: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dc-vanilla-sandbox-'));
    // The sandbox keeps its secrets and database under ./data.
    process.chdir(dir);
    const port = await freePortRun();
    sandbox = await startSandbox(port);
    Object.assign(process.env, sandbox.env);
    app = await NestFactory.create(AppModule.forRoot(), { logger: false });
    await app.listen(port, '127.0.0.1');
    appUrl = sandbox.env.PUBLIC_URL;
  });

  afterAll(async () => {
    await app?.close();
    await sandbox?.close();
    process.chdir(cwd);
    process.env = saved;
    rmSync(dir, { recursive: true, force: true });
  });

  it('links to the Vanilla forum from the home page and signs the member in there', async () => {
    const browser = new TestBrowser();
    const home = await browser.visit(`${appUrl}/`);
    const link = /id="vanilla-forum-link" href="([^"]+)">Visit the Vanilla forum/.exec(home.body);
    expect(link?.[1]).toBe('/vanilla/forum');
    const forum = sandbox.vanillaForum;
    const visit = await browser.visit(`${appUrl}${link![1]}`);
    expect(visit.url).toBe(`${forum.forumRootUrl}/`);
    expect(visit.body).toContain('Sandbox Vanilla forum');

    sandbox.discord.knobs.autoApproveAs = migrated.id;
    const signIn = await browser.visit(`${forum.forumRootUrl}/entry/signin?target=%2F`);
    const jwt = signIn.hops.map((hop) => hop.location).find((l) => l?.includes('#jwt='))!;
    const page = await browser.visit(
      `${forum.forumRootUrl}/entry/connect/jsconnect?client_id=sandbox-vanilla&jwt=${jwt.split('#jwt=')[1]}`,
    );
    expect(page.url).toBe(`${forum.forumRootUrl}/`);
    // The sandbox maps the moderator role; everyone gets Member.
    expect(forum.findByUniqueId(migrated.id)!.roles).toEqual(['Moderator', 'Member']);
    const signedInHome = await browser.visit(`${appUrl}/`);
    expect(signedInHome.body).toContain('Go to the Vanilla forum');
  });
});
