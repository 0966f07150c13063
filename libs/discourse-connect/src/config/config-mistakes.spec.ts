import { discourseConnectOptionsFromEnv, findCutEnvValues } from './discourse-connect.config';
import { DiscourseConnectConfigurationError } from './configuration.error';

const env = {
  DISCOURSE_URL: 'https://forum.example.com',
  DISCOURSE_CONNECT_SECRET: 'a-long-enough-secret',
  DISCORD_CLIENT_ID: '123',
  DISCORD_CLIENT_SECRET: 'shh',
  PUBLIC_URL: 'https://example.com',
  SESSION_SECRET: 'x'.repeat(32),
};

const messageOf = (overrides: Record<string, string>): string => {
  try {
    discourseConnectOptionsFromEnv({ ...env, ...overrides });
    return '';
  } catch (error) {
    expect(error).toBeInstanceOf(DiscourseConnectConfigurationError);
    return (error as Error).message;
  }
};

describe('configuration mistakes forum admins make', () => {
  it('works with a trailing slash on DISCOURSE_URL, and with a subfolder forum', () => {
    expect(
      discourseConnectOptionsFromEnv({ ...env, DISCOURSE_URL: 'https://forum.example.com/' })
        .forums[0].url,
    ).toBe('https://forum.example.com/');
    expect(messageOf({ DISCOURSE_URL: 'https://example.com/forum' })).toBe('');
  });

  it.each([
    '/latest',
    '/session/sso',
    '/session/sso_login',
    '/admin/site_settings',
    '/t/welcome/1',
    '/login',
  ])('stops on DISCOURSE_URL pointing at a forum page (%s), saying to use the base URL', (path) => {
    const message = messageOf({ DISCOURSE_URL: `https://forum.example.com${path}` });
    expect(message).toContain('DISCOURSE_URL');
    expect(message).toContain('https://forum.example.com');
  });

  it('stops on a query in DISCOURSE_URL and a path in PUBLIC_URL, naming the variable', () => {
    expect(messageOf({ DISCOURSE_URL: 'https://forum.example.com/?x=1' })).toContain(
      'DISCOURSE_URL',
    );
    expect(messageOf({ PUBLIC_URL: 'https://example.com/app' })).toContain('PUBLIC_URL');
  });

  it('stops on an http PUBLIC_URL with an https forum, except on this machine', () => {
    const message = messageOf({ PUBLIC_URL: 'http://example.com' });
    expect(message).toContain('PUBLIC_URL=https://example.com');
    expect(messageOf({ PUBLIC_URL: 'http://localhost:3000' })).toBe('');
    expect(messageOf({ PUBLIC_URL: 'http://127.0.0.1:3000' })).toBe('');
  });

  it('stops on a secret under 10 characters, naming it', () => {
    expect(messageOf({ DISCOURSE_CONNECT_SECRET: 'short' })).toContain('DISCOURSE_CONNECT_SECRET');
  });

  it('finds secrets that a .env parser would cut at "#", and leaves quoted ones and comments alone', () => {
    const text = [
      'DISCOURSE_CONNECT_SECRET=abc#def123456',
      'SESSION_SECRET="quoted#is-fine-0123456789abcdef0123"',
      'DISCORD_CLIENT_SECRET=plain # a comment',
      'OTHER=not#ours',
      '# DISCOURSE_API_KEY=commented#out',
    ].join('\n');
    const problems = findCutEnvValues(text);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain('DISCOURSE_CONNECT_SECRET');
    expect(problems[0]).toContain('double quotes');
  });
});
