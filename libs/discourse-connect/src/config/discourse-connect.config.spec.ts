import { DiscourseConnectConfigurationError } from './configuration.error';
import {
  discourseConnectOptionsFromEnv,
  validateDiscourseConnectEnv,
} from './discourse-connect.config';
import { DiscourseConnectSettings } from './discourse-connect.settings';
import { oneForumEnvFixture } from '../../test-support/fixtures';

const REQUIRED = [
  'DISCOURSE_URL',
  'DISCOURSE_CONNECT_SECRET',
  'DISCORD_CLIENT_ID',
  'DISCORD_CLIENT_SECRET',
  'PUBLIC_URL',
  'SESSION_SECRET',
];

function errorFor(env: Record<string, unknown>): DiscourseConnectConfigurationError {
  try {
    validateDiscourseConnectEnv(env);
  } catch (error) {
    expect(error).toBeInstanceOf(DiscourseConnectConfigurationError);
    return error as DiscourseConnectConfigurationError;
  }
  throw new Error('expected a DiscourseConnectConfigurationError');
}

/** The message's line about `name`, if any. */
const lineAbout = (message: string, name: string): string | undefined =>
  message.split('\n').find((line) => line.startsWith(`  - ${name} `));

describe('validateDiscourseConnectEnv', () => {
  it('accepts a complete environment and ignores unrelated variables', () => {
    const v = validateDiscourseConnectEnv({
      ...oneForumEnvFixture(),
      PATH: '/usr/bin',
      HOME: '/root',
    });
    expect(v.DISCOURSE_URL).toBe('https://forum.example.com');
    expect(Object.keys(v)).not.toContain('PATH');
  });

  it('names every missing variable in one message, each with how to fix it', () => {
    const error = errorFor({});
    expect(error.message.match(/\n {2}- /g)).toHaveLength(REQUIRED.length);
    for (const name of REQUIRED) {
      const line = lineAbout(error.message, name);
      expect(line).toMatch(new RegExp(`^ {2}- ${name} is not set: it must `));
      // A hint worth reading, not the validator's generic "must be a string".
      expect(line).not.toMatch(/must be a string$/);
    }
    expect(lineAbout(error.message, 'DISCORD_BASE_URL')).toBeUndefined();
    expect(lineAbout(error.message, 'DISCOURSE_API_KEY')).toBeUndefined();
  });

  it('treats empty variables as missing', () => {
    const error = errorFor({ ...oneForumEnvFixture(), SESSION_SECRET: '', DISCORD_CLIENT_ID: '' });
    expect(lineAbout(error.message, 'SESSION_SECRET')).toMatch(
      /is not set: it must be at least 32 random characters/,
    );
    expect(lineAbout(error.message, 'DISCORD_CLIENT_ID')).toMatch(
      /is not set: it must be the client id/,
    );
    expect(lineAbout(error.message, 'PUBLIC_URL')).toBeUndefined();
  });

  it('reports missing and invalid variables together in ONE message', () => {
    const env = oneForumEnvFixture();
    delete (env as Partial<typeof env>).DISCORD_CLIENT_SECRET;
    const error = errorFor({
      ...env,
      DISCOURSE_URL: 'not a url',
      SESSION_SECRET: 'short',
      DISCOURSE_CONNECT_SECRET: '123456789',
    });
    expect(error.message.split('\n')[0]).toMatch(/^Invalid configuration/);
    expect(lineAbout(error.message, 'DISCORD_CLIENT_SECRET')).toMatch(/is not set/);
    expect(lineAbout(error.message, 'DISCOURSE_URL')).toMatch(
      /is invalid: it must be the forum's base URL/,
    );
    expect(lineAbout(error.message, 'SESSION_SECRET')).toMatch(
      /is invalid: it must be at least 32/,
    );
    expect(lineAbout(error.message, 'DISCOURSE_CONNECT_SECRET')).toMatch(
      /is invalid: it must be at least 10 characters/,
    );
    expect(lineAbout(error.message, 'PUBLIC_URL')).toBeUndefined();
  });

  it.each<[string, Record<string, string>, string, RegExp]>([
    [
      'a secret under 10 characters',
      { DISCOURSE_CONNECT_SECRET: 'x'.repeat(9) },
      'DISCOURSE_CONNECT_SECRET',
      /at least 10/,
    ],
    [
      'SESSION_SECRET under 32',
      { SESSION_SECRET: 'x'.repeat(31) },
      'SESSION_SECRET',
      /at least 32/,
    ],
    [
      'DISCOURSE_URL without a scheme',
      { DISCOURSE_URL: 'forum.example.com' },
      'DISCOURSE_URL',
      /base URL/,
    ],
    ['DISCOURSE_URL not a URL', { DISCOURSE_URL: 'my forum' }, 'DISCOURSE_URL', /base URL/],
    [
      'DISCOURSE_URL javascript:',
      { DISCOURSE_URL: 'javascript:alert(1)' },
      'DISCOURSE_URL',
      /base URL/,
    ],
    [
      'DISCOURSE_URL ftp',
      { DISCOURSE_URL: 'ftp://forum.example.com' },
      'DISCOURSE_URL',
      /base URL/,
    ],
    ['PUBLIC_URL not a URL', { PUBLIC_URL: 'localhost:3000' }, 'PUBLIC_URL', /reachable/],
    [
      'DISCORD_BASE_URL not a URL',
      { DISCORD_BASE_URL: 'discord' },
      'DISCORD_BASE_URL',
      /http\(s\) URL/,
    ],
    [
      'DISCOURSE_API_KEY too short',
      { DISCOURSE_API_KEY: 'abc' },
      'DISCOURSE_API_KEY',
      /admin API key/,
    ],
  ])('%s is named with its rule', (_name, change, name, rule) => {
    const error = errorFor({ ...oneForumEnvFixture(), ...change });
    expect(error.message.match(/\n {2}- /g)).toHaveLength(1);
    expect(lineAbout(error.message, name)).toMatch(/is invalid: it /);
    expect(lineAbout(error.message, name)).toMatch(rule);
    // Secrets are not repeated back.
    if (/SECRET|KEY/.test(name)) expect(error.message).not.toContain(change[name]);
  });

  it('accepts a localhost URL without a top-level domain', () => {
    expect(() =>
      validateDiscourseConnectEnv({
        ...oneForumEnvFixture(),
        DISCOURSE_URL: 'http://localhost:4200',
      }),
    ).not.toThrow();
  });
});

describe('discourseConnectOptionsFromEnv', () => {
  it('builds module options the settings accept', () => {
    const options = discourseConnectOptionsFromEnv({
      ...oneForumEnvFixture(),
      DISCORD_BASE_URL: 'http://127.0.0.1:9000',
    });
    expect(options).toMatchObject({
      forums: [{ url: 'https://forum.example.com', secret: 'forum-secret-0123456789' }],
      discord: {
        clientId: '123456789012345678',
        clientSecret: 'discord-client-secret',
        baseUrl: 'http://127.0.0.1:9000',
      },
      publicUrl: 'http://localhost:3000',
      session: { secret: 'x'.repeat(32) },
    });
    expect(() => new DiscourseConnectSettings(options)).not.toThrow();
  });

  it('adds the admin API only with a key', () => {
    expect(discourseConnectOptionsFromEnv(oneForumEnvFixture()).forums[0].api).toBeUndefined();
    const withKey = discourseConnectOptionsFromEnv({
      ...oneForumEnvFixture(),
      DISCOURSE_API_KEY: 'abcdefgh12345678',
    });
    expect(withKey.forums[0].api).toMatchObject({ key: 'abcdefgh12345678' });
  });

  it('throws the same one-message error for a bad environment', () => {
    expect(() => discourseConnectOptionsFromEnv({})).toThrow(DiscourseConnectConfigurationError);
  });
});
