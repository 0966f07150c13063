/**
 * The command line as an operator runs it: the built `dist/src/cli.js` in a child process, with its
 * configuration in the environment, a SQLite file of its own and a simulated Discourse forum.
 */
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DiscourseSimulator } from 'nestjs-discourse-connect-simulators';
import { seededDiscordId, seedLocalUsers } from '../support/seed-local-users';
import { buildOnce } from '../support/build';
import { API_KEY } from '../support/harness';

const ROOT = resolve(__dirname, '../..');
const CLI = join(ROOT, 'dist/src/cli.js');

const CONNECT_SECRET = 'cli-e2e-connect-secret-0123456789';
const SESSION_SECRET = 'cli-e2e-session-secret-0123456789abcdef';
const PUBLIC_URL = 'http://127.0.0.1:39871';
const RATE = 600;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** A Discord-like snowflake for user n (18 digits, never a JS number). */

jest.setTimeout(60_000);

describe('CLI (dist/src/cli.js)', () => {
  const forum = new DiscourseSimulator({
    secret: CONNECT_SECRET,
    apiKey: API_KEY,
    apiRateLimitPerMinute: RATE,
    connectUrl: `${PUBLIC_URL}/discourse/sso`,
    logoutRedirect: `${PUBLIC_URL}/discourse/logout`,
  });
  let forumUrl: string;
  let dir: string;
  let databaseFile: string;

  function resetForum(): void {
    forum.reset();
    forum.secret = CONNECT_SECRET;
    forum.apiKey = API_KEY;
    forum.apiRateLimitPerMinute = RATE;
    forum.connectUrl = `${PUBLIC_URL}/discourse/sso`;
    forum.logoutRedirect = `${PUBLIC_URL}/discourse/logout`;
  }

  /** The environment an operator would set; nothing leaks in from the test runner's own env. */
  function env(overrides: Record<string, string> = {}): NodeJS.ProcessEnv {
    const base = Object.fromEntries(
      Object.entries(process.env).filter(
        ([k]) =>
          !/^(DISCOURSE_|DISCORD_)/.test(k) &&
          !['PUBLIC_URL', 'SESSION_SECRET', 'DATABASE_URL', 'PORT'].includes(k),
      ),
    );
    return {
      ...base,
      DISCOURSE_URL: forumUrl,
      DISCOURSE_CONNECT_SECRET: CONNECT_SECRET,
      DISCOURSE_API_KEY: API_KEY,
      DISCOURSE_API_USERNAME: 'system',
      DISCOURSE_API_RATE_PER_MINUTE: String(RATE),
      DISCORD_CLIENT_ID: 'cli-e2e-client-id',
      DISCORD_CLIENT_SECRET: 'cli-e2e-client-secret',
      DISCORD_BASE_URL: 'http://127.0.0.1:9',
      PUBLIC_URL,
      SESSION_SECRET,
      DATABASE_URL: `sqlite:${databaseFile}`,
      ...overrides,
    };
  }

  /** Runs the CLI without blocking this process (the simulated forum lives here). */
  function cli(args: string[], overrides: Record<string, string> = {}): Promise<Run> {
    const started = Date.now();
    return new Promise((done, fail) => {
      const child = spawn(process.execPath, [CLI, ...args], {
        cwd: dir,
        env: env(overrides),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
      const timer = setTimeout(() => child.kill('SIGKILL'), 45_000);
      child.on('error', fail);
      child.on('close', (code) => {
        clearTimeout(timer);
        done({ code, stdout, stderr, ms: Date.now() - started });
      });
    });
  }

  /** A browser signed in to the forum as `externalId` (the forum's own sign-in, signed by the test). */
  async function signInToForum(externalId: string, email: string): Promise<string> {
    const start = await fetch(`${forumUrl}/session/sso?return_path=/`, { redirect: 'manual' });
    const cookie = start.headers.get('set-cookie')!.split(';')[0];
    const sent = new URL(start.headers.get('location')!).searchParams.get('sso')!;
    const nonce = new URLSearchParams(Buffer.from(sent, 'base64').toString('utf8')).get('nonce')!;
    const sso = Buffer.from(
      new URLSearchParams({ nonce, external_id: externalId, email }).toString(),
    ).toString('base64');
    const sig = createHmac('sha256', CONNECT_SECRET).update(sso).digest('hex');
    const login = await fetch(
      `${forumUrl}/session/sso_login?${new URLSearchParams({ sso, sig })}`,
      {
        redirect: 'manual',
        headers: { Cookie: cookie },
      },
    );
    expect(login.status).toBe(302);
    return cookie;
  }

  const currentUserStatus = async (cookie: string) =>
    (await fetch(`${forumUrl}/session/current.json`, { headers: { Cookie: cookie } })).status;

  const users = Array.from({ length: 120 }, (_, i) => seededDiscordId(i + 1));

  beforeAll(async () => {
    buildOnce();
    forumUrl = await forum.listen(0);
    dir = mkdtempSync(join(tmpdir(), 'cli-e2e-'));
    databaseFile = join(dir, 'data', 'cli.sqlite');
    // The first run migrates the database; then the users go straight into it.
    const first = await cli(['failed']);
    expect(first).toMatchObject({ code: 0 });
    expect(first.stdout).toContain('No failed jobs.');
    // They have accounts on the forum (its name is its host name): syncs go only where they do.
    seedLocalUsers(databaseFile, users, { linkForum: new URL(forumUrl).hostname });
  }, 120_000);

  afterAll(async () => {
    await forum.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  beforeEach(() => resetForum());

  it('--help lists the commands and exits 0', async () => {
    const run = await cli(['--help']);
    expect(run.code).toBe(0);
    for (const command of ['sync', 'logout', 'suspend', 'unsuspend', 'forget', 'check', 'failed'])
      expect(run.stdout).toMatch(new RegExp(`^\\s+${command}\\b`, 'm'));
  });

  /** The `sync --all` run, kept for the progress check below. */
  let syncAll: Run | undefined;

  it('sync --all pushes every user once, within the admin API rate', async () => {
    const run = (syncAll = await cli(['sync', '--all']));
    expect(run.stderr).not.toMatch(/^\s+at /m);
    expect(run.code).toBe(0);
    for (const id of users) expect(forum.findByExternalId(id)).toBeDefined();
    expect(forum.users).toHaveLength(users.length);
    expect(forum.stats.syncSsoCalls).toBe(users.length);
    expect(forum.stats.apiRateLimited).toBe(0);
    expect(run.stdout).toContain('Queued 120 users; 0 failed job(s)');
    // 120 calls spaced for 600/min take at least 119 intervals of 100 ms.
    expect(run.ms).toBeGreaterThanOrEqual(((users.length - 1) * 60_000) / RATE - 300);
  });

  // With stderr piped (CI, `2>log`, `| tee`) `sync --all` still shows progress. Uses the run above.
  it('sync --all reports progress on stderr even when stderr is not a terminal', () => {
    expect(syncAll).toBeDefined();
    expect(syncAll!.stderr).toMatch(/sync --all \[.*\] \d+\/120 users/);
    expect(syncAll!.stderr).toMatch(/120\/120 users/);
  });

  it('sync <id> pushes that one user; logout <id> ends their forum sessions', async () => {
    const id = users[7];
    const synced = await cli(['sync', id]);
    expect(synced.code).toBe(0);
    expect(synced.stdout).toContain(`Synced ${id}.`);
    expect(forum.stats.syncSsoCalls).toBe(1);
    const user = forum.findByExternalId(id)!;
    expect(user).toMatchObject({ email: expect.stringMatching(/@example\.com$/), active: true });

    const cookie = await signInToForum(id, user.email);
    expect(await currentUserStatus(cookie)).toBe(200);

    const out = await cli(['logout', id]);
    expect(out.code).toBe(0);
    expect(out.stdout).toContain(`Logged out ${id}.`);
    expect(forum.stats.apiLogOuts).toBe(1);
    expect(await currentUserStatus(cookie)).toBe(404);
  });

  it('sync skips a user with no forum account; sync --create creates it', async () => {
    const id = seededDiscordId(900);
    seedLocalUsers(databaseFile, [id]); // no link: the user never visited the forum
    const skipped = await cli(['sync', id]);
    expect(skipped.code).toBe(0);
    expect(forum.stats.syncSsoCalls).toBe(0);
    expect(forum.findByExternalId(id)).toBeUndefined();

    const created = await cli(['sync', id, '--create']);
    expect(created.code).toBe(0);
    expect(forum.stats.syncSsoCalls).toBe(1);
    expect(forum.findByExternalId(id)).toBeDefined();
  });

  it("suspend / unsuspend / forget <id> act on the member's forum account", async () => {
    const id = users[9];
    expect((await cli(['sync', id, '--create'])).code).toBe(0);
    const account = forum.findByExternalId(id)!;
    const forumName = new URL(forumUrl).hostname;

    const suspended = await cli(['suspend', id, '--until', '2031-01-01', '--reason', 'Spam wave']);
    expect(suspended).toMatchObject({ code: 0 });
    expect(suspended.stdout).toContain(`${forumName}: ${id} suspended`);
    expect(account).toMatchObject({
      suspendedTill: Date.parse('2031-01-01'),
      suspendReason: 'Spam wave',
    });

    const lifted = await cli(['unsuspend', id]);
    expect(lifted).toMatchObject({ code: 0 });
    expect(lifted.stdout).toContain(`${forumName}: ${id} unsuspended`);
    expect(forum.isSuspended(account)).toBe(false);

    const forgotten = await cli(['forget', id]);
    expect(forgotten).toMatchObject({ code: 0 });
    expect(forgotten.stdout).toContain(`${forumName}: account anonymized`);
    expect(account.externalId).toBeNull();
    const gone = await cli(['sync', id]);
    expect(gone.stderr).toContain(`No local user has the Discord id ${id}`);
  });

  it('suspend refuses a bad date or id with one message and exit 1', async () => {
    for (const args of [
      ['suspend', users[10], '--until', 'tomorrow'],
      ['suspend', users[10], '--until', '2001-01-01'],
      ['forget', 'someone'],
    ]) {
      const run = await cli(args);
      expect(run.code).toBe(1);
      expect(run.stderr).not.toMatch(/^\s+at /m);
    }
    expect(forum.stats.apiLifecycleCalls).toEqual([]);
  });

  it('sync <unknown id> says so and exits 1', async () => {
    const run = await cli(['sync', '999999999999999999']);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('No local user has the Discord id 999999999999999999');
    expect(forum.stats.syncSsoCalls).toBe(0);
  });

  describe('check', () => {
    const failLines = (run: Run) => run.stdout.split('\n').filter((l) => l.includes('[FAIL]'));

    it('passes against a correctly configured forum', async () => {
      const run = await cli(['check']);
      expect(failLines(run)).toEqual([]);
      expect(run.stdout).toContain('No problems found.');
      expect(run.stdout).toMatch(/API key is accepted \(acting as system\)/);
      expect(run.stdout).toMatch(/DISCOURSE_CONNECT_SECRET matches/);
      expect(run.code).toBe(0);
    });

    it('fails naming DISCOURSE_CONNECT_SECRET when the secrets differ', async () => {
      const run = await cli(['check'], { DISCOURSE_CONNECT_SECRET: 'not-the-forum-secret-0123' });
      // As Discourse does, the forum answers a bad signature with its login-error text, not the
      // parser's: the verdict comes from comparing that with a deliberately wrong signature's answer.
      expect(failLines(run).some((l) => /DISCOURSE_CONNECT_SECRET does not match/.test(l))).toBe(
        true,
      );
      expect(run.stdout).not.toContain('Could not tell');
      expect(forum.stats.syncSsoCalls).toBe(2);
      expect(run.code).toBe(1);
      expect(forum.users).toHaveLength(0);
    });

    it('matches the secret with two probes and creates nothing', async () => {
      const run = await cli(['check']);
      expect(run.stdout).toMatch(/\[ok\]\s+DISCOURSE_CONNECT_SECRET matches/);
      expect(forum.stats.syncSsoCalls).toBe(2);
      expect(forum.users).toHaveLength(0);
    });

    it("reads the forum's username lengths and flags one the module does not make names for", async () => {
      const fits = await cli(['check']);
      expect(fits.stdout).toMatch(/\[ok\]\s+min_username_length is 3\./);
      expect(fits.stdout).toMatch(/\[ok\]\s+max_username_length is 20\./);
      forum.usernameLengths = { min: 3, max: 15 };
      try {
        const run = await cli(['check']);
        expect(
          failLines(run).some((l) =>
            /max_username_length is "15"; .*at most 20 characters: set the module's sso\.maxUsernameLength/.test(
              l,
            ),
          ),
        ).toBe(true);
        expect(run.code).toBe(1);
      } finally {
        forum.usernameLengths = { min: 3, max: 20 };
      }
    });

    it('fails when DiscourseConnect is off on the forum', async () => {
      forum.knobs.connectEnabled = false;
      const run = await cli(['check']);
      expect(failLines(run).some((l) => /DiscourseConnect is not enabled/.test(l))).toBe(true);
      expect(run.code).toBe(1);
    });

    it('says what to check by hand when there is no API key', async () => {
      const run = await cli(['check'], { DISCOURSE_API_KEY: '', DISCOURSE_API_USERNAME: '' });
      expect(run.stdout).toMatch(/\[\?\]\s+No DISCOURSE_API_KEY/);
      expect(run.stdout).toContain('Check by hand');
      expect(run.stdout).toContain(`${PUBLIC_URL}/discourse/sso`);
    });

    it('flags discourse_connect_url when the forum points elsewhere', async () => {
      forum.connectUrl = 'https://elsewhere.example.com/discourse/sso';
      const run = await cli(['check']);
      const fails = failLines(run);
      expect(fails).toHaveLength(1);
      expect(fails[0]).toContain('discourse_connect_url');
      expect(fails[0]).toContain(`${PUBLIC_URL}/discourse/sso`);
      expect(run.code).toBe(1);
    });

    it('says the API key was refused', async () => {
      const run = await cli(['check'], { DISCOURSE_API_KEY: 'wrong-admin-api-key-000' });
      expect(failLines(run).some((l) => /API key was refused/.test(l))).toBe(true);
      expect(run.code).toBe(1);
    });

    it('says the forum could not be reached', async () => {
      const run = await cli(['check'], { DISCOURSE_URL: 'http://127.0.0.1:9' });
      expect(
        failLines(run).some((l) => /could not be reached/.test(l) && l.includes('DISCOURSE_URL')),
      ).toBe(true);
      expect(run.code).toBe(1);
    });
  });

  it('a bad variable stops it with one message naming the variable, no stack trace', async () => {
    const run = await cli(['check'], { DISCOURSE_CONNECT_SECRET: 'short' });
    expect(run.code).toBe(1);
    const all = run.stdout + run.stderr;
    expect(all.match(/DISCOURSE_CONNECT_SECRET/g)).toHaveLength(1);
    expect(all.match(/Invalid configuration/g)).toHaveLength(1);
    expect(all).not.toMatch(/^\s+at /m);
    expect(all).not.toContain('ExceptionHandler');
    expect(forum.stats.apiRequests).toBe(0);
  });
});
