import type { DiscourseConnectModuleOptions } from '../discourse-connect-options.interface';
import { DiscourseConnectConfigurationError } from './configuration.error';
import { DiscourseConnectSettings } from './discourse-connect.settings';

const valid = (): DiscourseConnectModuleOptions => ({
  forums: [{ url: 'https://forum.example.com/', secret: 'forum-secret-0123456789' }],
  discord: { clientId: 'client-id', clientSecret: 'client-secret' },
  publicUrl: 'https://app.example.com/',
  session: { secret: 's'.repeat(32) },
});

/** The options with one change applied to a fresh copy. */
const withChange = (change: (o: any) => void): DiscourseConnectModuleOptions => {
  const options = valid();
  change(options);
  return options;
};

function configurationError(options: unknown): DiscourseConnectConfigurationError {
  try {
    new DiscourseConnectSettings(options as DiscourseConnectModuleOptions);
  } catch (error) {
    expect(error).toBeInstanceOf(DiscourseConnectConfigurationError);
    return error as DiscourseConnectConfigurationError;
  }
  throw new Error('expected a DiscourseConnectConfigurationError');
}

describe('DiscourseConnectSettings', () => {
  it('fills in the defaults', () => {
    const s = new DiscourseConnectSettings(valid());
    expect(s.publicUrl).toBe('https://app.example.com');
    expect(s.secureCookies).toBe(true);
    expect(s.forums).toEqual([
      expect.objectContaining({
        name: 'forum.example.com',
        url: 'https://forum.example.com',
        origin: 'https://forum.example.com',
        path: '',
        secret: 'forum-secret-0123456789',
        api: undefined,
      }),
    ]);
    expect(s.discord).toMatchObject({
      baseUrl: 'https://discord.com',
      authorizationUrl: 'https://discord.com/oauth2/authorize',
      tokenUrl: 'https://discord.com/api/oauth2/token',
      apiUrl: 'https://discord.com/api/v10',
      // Unset: the callback route where the app mounts it (DiscourseConnectRoutes).
      callbackUrl: undefined,
      scopes: ['identify', 'email'],
      timeoutMs: 10_000,
    });
    expect(s.discord.userAgent).toMatch(
      /^nestjs-discourse-connect \(https:\/\/app\.example\.com, /,
    );
    expect(s.session).toEqual({
      secret: 's'.repeat(32),
      cookieName: 'dc.sid',
      maxAgeSeconds: 14 * 24 * 3600,
      store: undefined,
      installMiddleware: true,
      readCacheMs: 1000,
    });
    expect(s.afterSignInPath).toBe('/');
    expect(s.afterSignOutPath).toBe('/');
    expect(s.forumByName()).toBe(s.forums[0]);
    expect(s.forumByName('forum.example.com')).toBe(s.forums[0]);
    expect(s.forumByName('nope')).toBeUndefined();
  });

  it('keeps given values, a subfolder forum, an API key and extra scopes once each', () => {
    const s = new DiscourseConnectSettings(
      withChange((o) => {
        o.publicUrl = 'http://localhost:3000';
        o.forums = [
          {
            url: 'https://example.com/forum/',
            secret: 'forum-secret-0123456789',
            name: 'main',
            api: { key: 'abcdefgh' },
          },
          { url: 'https://other.example.com', secret: 'other-secret-0123456789' },
        ];
        o.discord.extraScopes = ['email', 'guilds'];
        o.discord.baseUrl = 'http://127.0.0.1:9999/';
        o.session.cookieName = 'app.sid';
        o.session.maxAgeSeconds = 3600;
        o.afterSignInPath = '/welcome';
      }),
    );
    expect(s.secureCookies).toBe(false);
    expect(s.forums[0]).toMatchObject({
      name: 'main',
      url: 'https://example.com/forum',
      path: '/forum',
    });
    expect(s.forums[0].api).toEqual({
      key: 'abcdefgh',
      username: 'system',
      timeoutMs: 10_000,
      ratePerMinute: 60,
    });
    expect(s.forums[1].name).toBe('other.example.com');
    expect(s.discord.scopes).toEqual(['identify', 'email', 'guilds']);
    expect(s.discord.apiUrl).toBe('http://127.0.0.1:9999/api/v10');
    expect(s.session).toMatchObject({ cookieName: 'app.sid', maxAgeSeconds: 3600 });
    expect(s.afterSignInPath).toBe('/welcome');
  });

  it('refuses missing options altogether', () => {
    expect(configurationError(undefined).message).toMatch(/needs options/);
  });

  it.each<[string, (o: any) => void, RegExp]>([
    ['publicUrl missing', (o) => delete o.publicUrl, /publicUrl/],
    ['publicUrl not a URL', (o) => (o.publicUrl = 'app.example.com'), /publicUrl/],
    ['publicUrl with a path', (o) => (o.publicUrl = 'https://app.example.com/app'), /publicUrl/],
    ['publicUrl ftp', (o) => (o.publicUrl = 'ftp://app.example.com'), /publicUrl/],
    [
      'publicUrl with credentials',
      (o) => (o.publicUrl = 'https://u:p@app.example.com'),
      /publicUrl/,
    ],
    ['publicUrl with a query', (o) => (o.publicUrl = 'https://app.example.com/?x=1'), /publicUrl/],
    ['forums missing', (o) => delete o.forums, /forums/],
    ['forums empty', (o) => (o.forums = []), /forums/],
    [
      'forums not an array',
      (o) => (o.forums = { url: 'https://f.example.com', secret: 'x'.repeat(20) }),
      /forums/,
    ],
    ['forums[0] null', (o) => (o.forums = [null]), /forums\[0\]\.url/],
    ['forums[0].url missing', (o) => delete o.forums[0].url, /forums\[0\]\.url/],
    [
      'forums[0].url javascript:',
      (o) => (o.forums[0].url = 'javascript:alert(1)'),
      /forums\[0\]\.url/,
    ],
    [
      'forums[0].url with a fragment',
      (o) => (o.forums[0].url = 'https://f.example.com/#x'),
      /forums\[0\]\.url/,
    ],
    ['forums[0].secret missing', (o) => delete o.forums[0].secret, /forums\[0\]\.secret/],
    [
      'forums[0].secret under 10 characters',
      (o) => (o.forums[0].secret = '123456789'),
      /forums\[0\]\.secret/,
    ],
    [
      'forums[0].secret not a string',
      (o) => (o.forums[0].secret = 1234567890123),
      /forums\[0\]\.secret/,
    ],
    [
      'forums[1].name used twice',
      (o) => o.forums.push({ url: 'https://forum.example.com/other', secret: 'x'.repeat(12) }),
      /forums\[1\]\.name/,
    ],
    ['forums[0].name empty', (o) => (o.forums[0].name = ''), /forums\[0\]\.name/],
    ['forums[0].name not a string', (o) => (o.forums[0].name = 7), /forums\[0\]\.name/],
    [
      'forums[0].api.key too short',
      (o) => (o.forums[0].api = { key: 'short' }),
      /forums\[0\]\.api\.key/,
    ],
    [
      'forums[0].api.timeoutMs negative',
      (o) => (o.forums[0].api = { key: 'abcdefgh', timeoutMs: -1 }),
      /forums\[0\]\.api\.timeoutMs/,
    ],
    ['discord missing', (o) => delete o.discord, /discord\.clientId/],
    ['discord.clientId missing', (o) => delete o.discord.clientId, /discord\.clientId/],
    ['discord.clientSecret missing', (o) => (o.discord.clientSecret = ''), /discord\.clientSecret/],
    [
      'discord.baseUrl not http',
      (o) => (o.discord.baseUrl = 'file:///etc/passwd'),
      /discord\.baseUrl/,
    ],
    [
      'discord.callbackUrl not a URL',
      (o) => (o.discord.callbackUrl = '/auth/discord/callback'),
      /discord\.callbackUrl/,
    ],
    ['discord.timeoutMs zero', (o) => (o.discord.timeoutMs = 0), /discord\.timeoutMs/],
    ['discord.timeoutMs NaN', (o) => (o.discord.timeoutMs = Number.NaN), /discord\.timeoutMs/],
    [
      'discord.extraScopes not a list',
      (o) => (o.discord.extraScopes = 'guilds'),
      /discord\.extraScopes/,
    ],
    ['session missing', (o) => delete o.session, /session\.secret/],
    [
      'session.secret under 32 characters',
      (o) => (o.session.secret = 's'.repeat(31)),
      /session\.secret/,
    ],
    [
      'session.cookieName with a semicolon',
      (o) => (o.session.cookieName = 'a;b'),
      /session\.cookieName/,
    ],
    ['session.cookieName empty', (o) => (o.session.cookieName = ''), /session\.cookieName/],
    [
      'session.maxAgeSeconds negative',
      (o) => (o.session.maxAgeSeconds = -5),
      /session\.maxAgeSeconds/,
    ],
    [
      'session.maxAgeSeconds NaN',
      (o) => (o.session.maxAgeSeconds = Number.NaN),
      /session\.maxAgeSeconds/,
    ],
    [
      'afterSignInPath absolute',
      (o) => (o.afterSignInPath = 'https://evil.example/'),
      /afterSignInPath/,
    ],
    [
      'afterSignInPath scheme-relative',
      (o) => (o.afterSignInPath = '//evil.example'),
      /afterSignInPath/,
    ],
    [
      'afterSignOutPath with a backslash',
      (o) => (o.afterSignOutPath = '/\\evil.example'),
      /afterSignOutPath/,
    ],
    ['afterSignOutPath empty', (o) => (o.afterSignOutPath = ''), /afterSignOutPath/],
  ])('%s → a configuration error naming the option', (_name, change, option) => {
    const error = configurationError(withChange(change));
    expect(error.name).toBe('DiscourseConnectConfigurationError');
    expect(error.message).toMatch(option);
    // Never echoes a secret back.
    expect(error.message).not.toContain('forum-secret-0123456789');
    expect(error.message).not.toContain('s'.repeat(31));
  });
});
