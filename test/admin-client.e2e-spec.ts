import { DiscourseAdminService, DiscourseConnectSettings } from 'nestjs-discourse-connect/internal';
import { DISCOURSE_MESSAGES } from 'nestjs-discourse-connect-simulators';
import { CheckCommand } from '../src/cli/check.command';
import { API_KEY, FORUM_SECRET, startHarness, type Harness } from './support/harness';

/**
 * The admin client against the simulated forum, which answers as Discourse does: the shared-secret
 * probe behind `check`, and the group member methods.
 */
describe('the admin client against the simulated forum', () => {
  let h: Harness;
  let admin: DiscourseAdminService;
  beforeAll(async () => {
    h = await startHarness('forRoot', {
      forumOptions: { apiKey: API_KEY, apiRateLimitPerMinute: 0 },
      moduleOptions: (o) => ({
        ...o,
        forums: o.forums.map((f) => ({ ...f, api: { key: API_KEY, timeoutMs: 2000 } })),
        sync: { ratePerMinute: 6000 },
      }),
    });
    admin = h.app.get(DiscourseAdminService);
  });
  afterAll(async () => h.close());
  beforeEach(() => {
    h.forum.reset();
    h.forum.secret = FORUM_SECRET;
    process.exitCode = undefined;
  });
  afterAll(() => {
    process.exitCode = undefined;
  });

  async function runCheck(): Promise<string> {
    const lines: string[] = [];
    const log = jest.spyOn(console, 'log').mockImplementation((...args) => {
      lines.push(args.join(' '));
    });
    try {
      await new CheckCommand(h.app.get(DiscourseConnectSettings), admin).run();
    } finally {
      log.mockRestore();
    }
    return lines.join('\n');
  }

  describe('checkSharedSecret (the probe behind check)', () => {
    it('match: the forum refuses our correctly signed blank id with the blank-id message', async () => {
      expect(await admin.checkSharedSecret()).toBe('match');
      expect(h.forum.stats.syncSsoCalls).toBe(2);
      expect(h.forum.users).toHaveLength(0);
      const out = await runCheck();
      expect(out).toMatch(/\[ok\]\s+DISCOURSE_CONNECT_SECRET matches/);
    });

    it('mismatch: our signature gets the same login error as a deliberately wrong one', async () => {
      h.forum.secret = 'the-forum-has-another-secret-0123';
      expect(await admin.checkSharedSecret()).toBe('mismatch');
      const out = await runCheck();
      expect(out).toMatch(/\[FAIL\]\s+DISCOURSE_CONNECT_SECRET does not match/);
      expect(out).not.toContain('Could not tell');
      expect(process.exitCode).toBe(1);
      expect(h.forum.users).toHaveLength(0);
    });

    it('disabled: 404 with an empty body when DiscourseConnect is off', async () => {
      h.forum.knobs.connectEnabled = false;
      expect(await admin.checkSharedSecret()).toBe('disabled');
      expect(await runCheck()).toMatch(/\[FAIL\]\s+DiscourseConnect is not enabled/);
    });

    it("does not rely on the forum's wording: it holds for any login-error text", () => {
      // The verdict compares the two answers; the texts themselves are Discourse's translations.
      expect(DISCOURSE_MESSAGES.loginError).not.toMatch(/signature/i);
      expect(DISCOURSE_MESSAGES.blankId).not.toBe(DISCOURSE_MESSAGES.loginError);
    });
  });

  describe('group members', () => {
    it('addGroupMembers adds users to a group by name, and adding members again is not an error', async () => {
      const ava = h.forum.addUser({ username: 'ava', email: 'ava@example.com' });
      const bob = h.forum.addUser({ username: 'bob', email: 'bob@example.com' });
      await admin.addGroupMembers('members', ['ava', 'bob']);
      expect(ava.groups).toContain('members');
      expect(bob.groups).toContain('members');
      await expect(admin.addGroupMembers('members', ['ava'])).resolves.toBeUndefined();
      await expect(admin.addGroupMembers('members', [])).resolves.toBeUndefined();
    });

    it('removeGroupMembers removes users from a group by name', async () => {
      const ava = h.forum.addUser({ username: 'ava2', email: 'ava2@example.com' });
      await admin.addGroupMembers('veterans', ['ava2']);
      expect(ava.groups).toContain('veterans');
      await admin.removeGroupMembers('veterans', ['ava2']);
      expect(ava.groups).not.toContain('veterans');
    });

    it('names the group the forum does not have', async () => {
      h.forum.addUser({ username: 'cy', email: 'cy@example.com' });
      await expect(admin.addGroupMembers('no-such-group', ['cy'])).rejects.toThrow(
        /no-such-group.*404/,
      );
    });
  });
});
