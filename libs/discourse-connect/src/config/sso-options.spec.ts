import { DiscourseConnectSettings } from './discourse-connect.settings';
import type { DiscourseConnectModuleOptions } from '../discourse-connect-options.interface';

const base: DiscourseConnectModuleOptions = {
  forums: [{ url: 'https://forum.example.com', secret: 'forum-secret-0123456789' }],
  discord: { clientId: 'client-id', clientSecret: 'client-secret' },
  publicUrl: 'https://app.example.com',
  session: { secret: 's'.repeat(32) },
};

describe('the sso options', () => {
  it("default to 25 minutes for a resumed request and Discourse's username lengths", () => {
    expect(new DiscourseConnectSettings(base).sso).toEqual({
      resumeWithinSeconds: 1500,
      minUsernameLength: 3,
      maxUsernameLength: 20,
    });
  });

  it('take the values given', () => {
    const sso = { resumeWithinSeconds: 300, minUsernameLength: 2, maxUsernameLength: 30 };
    expect(new DiscourseConnectSettings({ ...base, sso }).sso).toEqual(sso);
  });

  it.each([
    [{ resumeWithinSeconds: 0 }, /sso\.resumeWithinSeconds must be a positive number of seconds/],
    [{ minUsernameLength: 0 }, /sso\.minUsernameLength must be the forum's min_username_length/],
    [{ minUsernameLength: 8, maxUsernameLength: 6 }, /min ≤ max ≤ 60/],
    [{ maxUsernameLength: 61 }, /min ≤ max ≤ 60/],
    [{ maxUsernameLength: 12.5 }, /whole numbers/],
  ])('refuse %j', (sso, message) => {
    expect(() => new DiscourseConnectSettings({ ...base, sso })).toThrow(message);
  });
});
