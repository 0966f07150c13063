/**
 * The package as a Nest app outside this repository gets it: `npm run pack:lib` makes the tarball,
 * a new app (test/consumer/app, copied to a temporary folder) installs it with its peers from the
 * registry, type-checks against the package's declarations with a strict tsconfig, boots, and signs
 * a member in end to end through the simulators (forum → /discourse/sso → Discord → forum), on
 * Express and on Fastify, with `app.setGlobalPrefix('community')`, and with its own user store.
 *
 * The installed tarball is the only way the app reaches the library: the app has no path into the
 * repository and its node_modules holds the package as installed from the tarball.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import {
  cpSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import {
  DISCORD_FIXTURES,
  DiscordSimulator,
  DiscourseSimulator,
} from 'nestjs-discourse-connect-simulators';
import { TestBrowser } from '../support/browser';
import { freePort } from '../support/ports';

const run = promisify(execFile);
const ROOT = resolve(__dirname, '../..');
const FORUM_SECRET = 'consumer-forum-secret-0123456789';
const SESSION_SECRET = 'consumer-session-secret-0123456789abcdef';
const { migrated } = DISCORD_FIXTURES;

/** The peers a host installs, at the versions this repository is tested with. */
function hostPackageJson(tarball: string): object {
  const root = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  const deps: Record<string, string> = { ...root.dependencies, ...root.devDependencies };
  const pick = (names: string[]) => Object.fromEntries(names.map((n) => [n, deps[n]]));
  return {
    name: 'consumer-app',
    version: '1.0.0',
    private: true,
    dependencies: {
      'nestjs-discourse-connect': `file:${tarball}`,
      ...pick([
        '@nestjs/common',
        '@nestjs/core',
        '@nestjs/config',
        '@nestjs/event-emitter',
        '@nestjs/typeorm',
        '@nestjs/platform-express',
        '@nestjs/platform-fastify',
        '@fastify/cookie',
        '@fastify/session',
        'typeorm',
        'better-sqlite3',
        'reflect-metadata',
        'rxjs',
      ]),
    },
    devDependencies: pick(['typescript', '@types/node']),
    allowScripts: { 'better-sqlite3': true },
  };
}

const registryUnreachable = (output: string) =>
  /ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ETIMEDOUT|ENETUNREACH|network/i.test(output);

interface Variant {
  name: string;
  adapter: 'express' | 'fastify';
  prefix?: string;
  userStore?: 'memory';
}

const VARIANTS: Variant[] = [
  { name: 'Express', adapter: 'express' },
  { name: 'Fastify', adapter: 'fastify' },
  { name: 'Fastify with a global prefix', adapter: 'fastify', prefix: 'community' },
  { name: 'Express with a global prefix', adapter: 'express', prefix: 'community' },
  { name: 'Express with its own user store', adapter: 'express', userStore: 'memory' },
];

describe('the packed library in a new Nest app', () => {
  let appDir = '';
  let skipped: string | null = null;

  beforeAll(async () => {
    const packed = await run('npm', ['run', '--silent', 'pack:lib'], {
      cwd: ROOT,
      maxBuffer: 16 * 1024 * 1024,
    });
    const tarball = packed.stdout.trim().split('\n').pop()!;
    expect(tarball).toMatch(/^\/.*nestjs-discourse-connect-[\d.]+\.tgz$/);

    appDir = realpathSync(mkdtempSync(join(tmpdir(), 'dc-consumer-')));
    expect(appDir.startsWith(ROOT)).toBe(false);
    cpSync(join(__dirname, 'app'), appDir, { recursive: true });
    writeFileSync(join(appDir, 'package.json'), JSON.stringify(hostPackageJson(tarball), null, 2));
    try {
      await run(
        'npm',
        ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'],
        {
          cwd: appDir,
          maxBuffer: 64 * 1024 * 1024,
        },
      );
    } catch (error) {
      const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string };
      if (registryUnreachable(stderr) && !process.env.CI) {
        skipped = 'the npm registry cannot be reached';
        console.warn(`[consumer] SKIPPED: ${skipped} (set CI to make this a failure).`);
        return;
      }
      throw new Error(`npm install in the consumer app failed:\n${stdout}${stderr}`, {
        cause: error,
      });
    }
    // The package came from the tarball, not from a link into this repository.
    const installed = realpathSync(join(appDir, 'node_modules/nestjs-discourse-connect'));
    expect(installed.startsWith(appDir)).toBe(true);
    expect(JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')).name).toBe(
      'nestjs-discourse-connect',
    );
    try {
      await run(
        process.execPath,
        [join(appDir, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'],
        { cwd: appDir },
      );
    } catch (error) {
      const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string };
      throw new Error(
        `the consumer app does not type-check against the package:\n${stdout}${stderr}`,
        { cause: error },
      );
    }
  }, 600_000);

  afterAll(() => {
    if (appDir) rmSync(appDir, { recursive: true, force: true });
  });

  it('holds no tests, simulators or host code in the tarball', () => {
    if (skipped) return;
    const files = listFiles(join(appDir, 'node_modules/nestjs-discourse-connect'));
    expect(files).toContain('dist/index.js');
    expect(files).toContain('dist/index.d.ts');
    expect(files).toContain('README.md');
    expect(
      files.filter((f) => /\.spec\.|e2e-spec|simulator|\/test\/|^src\/|\.map$/.test(f)),
    ).toEqual([]);
  });

  describe.each(VARIANTS)('$name', (variant) => {
    let app: ChildProcess | undefined;
    let output = '';
    let appUrl = '';
    let mount = '';
    let databaseFile = '';
    const discord = new DiscordSimulator();
    const forum = new DiscourseSimulator({ secret: FORUM_SECRET });

    beforeAll(async () => {
      if (skipped) return;
      const discordUrl = await discord.listen(0);
      const forumUrl = await forum.listen(0);
      const port = await freePort();
      appUrl = `http://127.0.0.1:${port}`;
      mount = variant.prefix ? `${appUrl}/${variant.prefix}` : appUrl;
      discord.redirectUris = [`${mount}/auth/discord/callback`];
      forum.connectUrl = `${mount}/discourse/sso`;
      forum.logoutRedirect = `${mount}/discourse/logout`;
      databaseFile = join(
        appDir,
        `${variant.adapter}-${variant.prefix ?? 'root'}-${variant.userStore ?? 'typeorm'}.sqlite`,
      );
      const child = spawn(process.execPath, ['dist/main.js'], {
        cwd: appDir,
        env: {
          PATH: process.env.PATH,
          NODE_ENV: 'production',
          PORT: String(port),
          HTTP_ADAPTER: variant.adapter,
          GLOBAL_PREFIX: variant.prefix ?? '',
          USER_STORE: variant.userStore ?? '',
          DATABASE_FILE: databaseFile,
          DISCOURSE_URL: forumUrl,
          DISCOURSE_CONNECT_SECRET: FORUM_SECRET,
          DISCORD_CLIENT_ID: 'sandbox-client-id',
          DISCORD_CLIENT_SECRET: 'sandbox-client-secret',
          DISCORD_BASE_URL: discordUrl,
          PUBLIC_URL: appUrl,
          SESSION_SECRET,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      app = child;
      await new Promise<void>((done, fail) => {
        const timer = setTimeout(
          () => fail(new Error(`the consumer app did not start:\n${output}`)),
          60_000,
        );
        const onData = (chunk: Buffer) => {
          output += chunk.toString();
          if (output.includes('listening on')) {
            clearTimeout(timer);
            done();
          }
        };
        child.stdout!.on('data', onData);
        child.stderr!.on('data', onData);
        child.once('exit', (code) => {
          clearTimeout(timer);
          fail(new Error(`the consumer app exited (${code}):\n${output}`));
        });
      });
    }, 120_000);

    afterAll(async () => {
      if (app && app.exitCode === null) {
        const exited = new Promise((done) => app!.once('exit', done));
        app.kill('SIGTERM');
        await exited;
      }
      await Promise.all([discord.close(), forum.close()]);
    });

    it('signs a member in on the forum through Discord and back', async () => {
      if (skipped) return;
      discord.knobs.autoApproveAs = migrated.id;
      const browser = new TestBrowser();
      const page = await browser.visit(
        `${forum.baseUrl}/session/sso?return_path=${encodeURIComponent('/t/welcome/1')}`,
      );
      // On failure, the hops and the page say where it stopped.
      expect({
        status: page.status,
        url: page.url,
        hops: page.hops,
        body: page.status === 200 ? '' : page.body.slice(0, 600),
      }).toMatchObject({
        status: 200,
        url: `${forum.baseUrl}/t/welcome/1`,
      });
      const prefix = variant.prefix ? `/${variant.prefix}` : '';
      expect(page.hops.map((hop) => new URL(hop.url).pathname)).toEqual([
        '/session/sso',
        `${prefix}/discourse/sso`,
        `${prefix}/auth/discord`,
        '/oauth2/authorize',
        `${prefix}/auth/discord/callback`,
        `${prefix}/discourse/sso`,
        '/session/sso_login',
        '/t/welcome/1',
      ]);
      expect(forum.findByExternalId(migrated.id)).toMatchObject({ email: migrated.email });

      const me = await browser.request(`${mount}/me`);
      const body = (await me.json()) as { discordId: string | null; inMemoryStore: string[] };
      expect(body.discordId).toBe(migrated.id);
      const db = new Database(databaseFile, { readonly: true });
      try {
        const rows = db.prepare('SELECT discord_id FROM discourse_connect_users').all() as {
          discord_id: string;
        }[];
        if (variant.userStore === 'memory') {
          // The host's store served the member; the module's table stayed empty.
          expect(body.inMemoryStore).toEqual([migrated.id]);
          expect(rows).toEqual([]);
        } else {
          expect(body.inMemoryStore).toEqual([]);
          expect(rows.map((r) => r.discord_id)).toEqual([migrated.id]);
        }
      } finally {
        db.close();
      }
      expect(output).not.toMatch(/DeprecationWarning|FSTDEP|\bERROR\b/);
    });
  });
});

function listFiles(dir: string, base = ''): string[] {
  return readdirSync(join(dir, base)).flatMap((name) => {
    const rel = base ? `${base}/${name}` : name;
    return statSync(join(dir, rel)).isDirectory() ? listFiles(dir, rel) : [rel];
  });
}
