import {
  discordAvatarUrl,
  displayNameOf,
  hashDiscordMetadata,
  pickDiscordMetadata,
  type DiscordMetadata,
} from './discord-profile';

/** A `/users/@me` answer as Discord sends it, cosmetic and churning fields included. */
const rawUser = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  id: '293847561029384756',
  username: 'ava.migrated',
  discriminator: '0',
  global_name: 'Ava',
  avatar: '4f2c1b9e8d7a6c5b4a3f2e1d0c9b8a7f',
  email: 'ava@example.com',
  verified: true,
  locale: 'en-US',
  mfa_enabled: true,
  flags: 64,
  public_flags: 64,
  premium_type: 0,
  banner: null,
  accent_color: 123456,
  avatar_decoration_data: { asset: 'x', sku_id: '1' },
  clan: null,
  ...over,
});

const CDN = 'https://cdn.discordapp.com';

describe('discordAvatarUrl', () => {
  it('a static avatar is a .png of size 512', () => {
    expect(
      discordAvatarUrl({
        id: '293847561029384756',
        avatar: '4f2c1b9e8d7a6c5b4a3f2e1d0c9b8a7f',
        discriminator: '0',
      }),
    ).toBe(`${CDN}/avatars/293847561029384756/4f2c1b9e8d7a6c5b4a3f2e1d0c9b8a7f.png?size=512`);
  });

  it('an animated (a_) avatar is a .gif', () => {
    expect(
      discordAvatarUrl({
        id: '293847561029384756',
        avatar: 'a_1f2e3d4c5b6a79880716253443526170',
        discriminator: '0',
      }),
    ).toBe(`${CDN}/avatars/293847561029384756/a_1f2e3d4c5b6a79880716253443526170.gif?size=512`);
  });

  it.each([
    // Expected values computed outside JavaScript: (id >> 22) % 6.
    ['293847561029384756', 3],
    ['1234567890123456789', 1],
    ['18446744073709551615', 3],
    // Above 2^53: a Number would round this id and give 3.
    ['8772388474482327453', 2],
    ['0', 0],
  ])('a migrated user without avatar gets default avatar (id >> 22) %% 6 (%s → %d)', (id, n) => {
    expect(discordAvatarUrl({ id, avatar: null, discriminator: '0' })).toBe(
      `${CDN}/embed/avatars/${n}.png`,
    );
  });

  it.each([
    ['1337', 2],
    ['0001', 1],
    ['9999', 4],
    ['0005', 0],
  ])(
    'a legacy user without avatar gets default avatar discriminator %% 5 (#%s → %d)',
    (discriminator, n) => {
      expect(discordAvatarUrl({ id: '81384788765712384', avatar: null, discriminator })).toBe(
        `${CDN}/embed/avatars/${n}.png`,
      );
    },
  );

  it('changes exactly when the avatar changes', () => {
    const base = { id: '293847561029384756', discriminator: '0' };
    const a = discordAvatarUrl({ ...base, avatar: 'aaaa' });
    expect(discordAvatarUrl({ ...base, avatar: 'aaaa' })).toBe(a);
    expect(discordAvatarUrl({ ...base, avatar: 'bbbb' })).not.toBe(a);
    expect(discordAvatarUrl({ ...base, avatar: null })).not.toBe(a);
  });

  it('escapes an avatar hash that is not a plain token', () => {
    const url = discordAvatarUrl({ id: '1', avatar: '../../x?y', discriminator: '0' });
    expect(url.startsWith(`${CDN}/avatars/1/`)).toBe(true);
    expect(url).not.toContain('../');
  });
});

describe('pickDiscordMetadata', () => {
  it('keeps only the whitelisted fields', () => {
    expect(pickDiscordMetadata(rawUser())).toEqual({
      id: '293847561029384756',
      username: 'ava.migrated',
      global_name: 'Ava',
      discriminator: '0',
      avatar: '4f2c1b9e8d7a6c5b4a3f2e1d0c9b8a7f',
      email: 'ava@example.com',
      verified: true,
      locale: 'en-US',
    });
  });

  it('never carries an access or refresh token, even from a whole passport profile', () => {
    const profile = {
      ...rawUser(),
      accessToken: 'secret-access-token',
      refreshToken: 'secret-refresh',
      fetchedAt: 'now',
      provider: 'discord',
    };
    const picked = pickDiscordMetadata(profile);
    const text = JSON.stringify(picked);
    expect(text).not.toContain('secret-access-token');
    expect(text).not.toContain('secret-refresh');
    expect(Object.keys(picked).sort()).toEqual(
      [
        'avatar',
        'discriminator',
        'email',
        'global_name',
        'id',
        'locale',
        'username',
        'verified',
      ].sort(),
    );
  });

  it('keeps a snowflake above 2^53 exact (as a string)', () => {
    expect(pickDiscordMetadata(rawUser({ id: '1234567890123456789' })).id).toBe(
      '1234567890123456789',
    );
    expect(pickDiscordMetadata(rawUser({ id: '18446744073709551615' })).id).toBe(
      '18446744073709551615',
    );
  });

  it.each([
    ['a numeric id', { id: 1234 }],
    ['a non-digit id', { id: '12a' }],
    ['an empty id', { id: '' }],
    [
      'an id with a leading zero (a second identity for the same number)',
      { id: '0293847561029384756' },
    ],
    ['an id with whitespace', { id: ' 293847561029384756' }],
    ['an id above 2^64 - 1', { id: '18446744073709551616' }],
    ['no username', { username: undefined }],
    ['an empty username', { username: '' }],
  ])('refuses %s', (_name, over) => {
    expect(() => pickDiscordMetadata(rawUser(over))).toThrow();
  });

  it('normalises empty and missing optional fields to null / false / "0"', () => {
    const m = pickDiscordMetadata({
      id: '1',
      username: 'x',
      global_name: '',
      avatar: '',
      email: null,
      verified: 'true',
    });
    expect(m).toEqual({
      id: '1',
      username: 'x',
      global_name: null,
      discriminator: '0',
      avatar: null,
      email: null,
      verified: false,
      locale: null,
    });
  });
});

describe('hashDiscordMetadata', () => {
  const m = (over: Record<string, unknown> = {}): DiscordMetadata =>
    pickDiscordMetadata(rawUser(over));

  it('is a stable SHA-256 hex', () => {
    expect(hashDiscordMetadata(m())).toMatch(/^[0-9a-f]{64}$/);
    expect(hashDiscordMetadata(m())).toBe(hashDiscordMetadata(m()));
  });

  it('does not depend on key order', () => {
    const a = m();
    const reversed = Object.fromEntries(Object.entries(a).reverse()) as unknown as DiscordMetadata;
    expect(hashDiscordMetadata(reversed)).toBe(hashDiscordMetadata(a));
  });

  it.each([
    ['flags', { flags: 0, public_flags: 0 }],
    ['premium_type', { premium_type: 2 }],
    ['banner', { banner: 'abc' }],
    ['accent_color', { accent_color: 1 }],
    ['avatar decoration', { avatar_decoration_data: null }],
    ['mfa_enabled', { mfa_enabled: false }],
    ['an access token', { accessToken: 'changes-every-time' }],
  ])('ignores %s', (_name, over) => {
    expect(hashDiscordMetadata(m(over))).toBe(hashDiscordMetadata(m()));
  });

  it.each([
    ['username', { username: 'ava2' }],
    ['global_name', { global_name: 'Ava R.' }],
    ['global_name removed', { global_name: null }],
    ['discriminator', { discriminator: '1234' }],
    ['avatar', { avatar: 'ffff' }],
    ['email', { email: 'new@example.com' }],
    ['verified', { verified: false }],
    ['locale', { locale: 'fr' }],
  ])('changes with %s', (_name, over) => {
    expect(hashDiscordMetadata(m(over))).not.toBe(hashDiscordMetadata(m()));
  });

  it('never includes an access token in what it hashes', () => {
    const withToken = { ...m(), accessToken: 'tok' } as DiscordMetadata;
    expect(hashDiscordMetadata(withToken)).toBe(hashDiscordMetadata(m()));
  });

  it('does not confuse field boundaries', () => {
    expect(hashDiscordMetadata(m({ username: 'ab', global_name: 'c' }))).not.toBe(
      hashDiscordMetadata(m({ username: 'a', global_name: 'bc' })),
    );
  });
});

describe('displayNameOf', () => {
  it('is global_name, else username', () => {
    expect(displayNameOf({ global_name: 'Ava', username: 'ava' })).toBe('Ava');
    expect(displayNameOf({ global_name: null, username: 'ava' })).toBe('ava');
  });
});
