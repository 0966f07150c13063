import { DISCORD_FIXTURES } from 'nestjs-discourse-connect-simulators';
import { TestBrowser } from './support/browser';
import { HTTP_ADAPTERS, startHarness, type Harness } from './support/harness';

const { migrated, animated } = DISCORD_FIXTURES;

describe.each(HTTP_ADAPTERS)('forum usernames from Discord names (%s)', (adapter) => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness('forRoot', { adapter });
  });
  afterAll(async () => h.close());
  beforeEach(() => {
    h.discord.reset();
    h.forum.reset();
  });

  async function signIn(id: string) {
    h.discord.knobs.autoApproveAs = id;
    const page = await new TestBrowser().visit(`${h.forum.baseUrl}/session/sso?return_path=%2F`);
    expect(page.status).toBe(200);
    expect(h.forum.stats.ssoErrors).toBe(0);
    return h.forum.stats.lastPayload!.username;
  }

  it('sends a name the forum keeps, the same at every sign-in, for Unicode, emoji and 32-character names', async () => {
    h.discord.updateUser(migrated.id, { username: 'Ünïcødé 🔥 name with thirty-two ch' });
    h.discord.updateUser(animated.id, { username: 'ünïcødé 🔥 name with thirty-two xx' });
    const first = await signIn(migrated.id);
    expect(first).toMatch(/^Unicde_name_wit_[0-9a-z]{4}$/);
    expect(await signIn(migrated.id)).toBe(first);
    // The forum took the name as sent: it did not have to suggest one.
    expect(h.forum.findByExternalId(migrated.id)!.username).toBe(first);

    // Another member whose name comes out with the same first 15 characters (but for case) gets another.
    const other = await signIn(animated.id);
    expect(other.toLowerCase()).not.toBe(first.toLowerCase()); // Discourse ignores case
    expect(other).toMatch(/^unicde_name_wit_[0-9a-z]{4}$/);
    expect(h.forum.findByExternalId(animated.id)!.username).toBe(other);
  });
});
