import fc from 'fast-check';
import {
  DEFAULT_USERNAME_LENGTHS,
  discourseUsername,
  discourseUsernameProblem,
  isDiscourseUsername,
} from './discourse-username';

const snowflake = fc.bigInt({ min: 1n, max: 2n ** 64n - 1n }).map(String);
/** Discord usernames of every kind: the new handles, legacy names, any Unicode (emoji included). */
const discordName = fc.oneof(
  fc.stringMatching(/^[a-z0-9_.]{2,32}$/),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.stringMatching(/^[A-Za-z0-9_.-]{0,40}$/),
);
const lengths = fc
  .tuple(fc.integer({ min: 1, max: 30 }), fc.integer({ min: 0, max: 30 }))
  .map(([min, extra]) => ({ min, max: min + extra }));

describe('the username rules of Discourse', () => {
  it.each([
    ['ab', 'shorter than 3 characters'],
    ['a'.repeat(21), 'longer than 20 characters'],
    ['josé', 'has a character other than A-Z a-z 0-9 _ . -'],
    ['.bob', 'does not start with a letter, digit or _'],
    ['-bob', 'does not start with a letter, digit or _'],
    ['bob_', 'does not end with a letter or digit'],
    ['bo__b', 'has two of - _ . in a row'],
    ['bo.-b', 'has two of - _ . in a row'],
    ['bob.json', 'ends like a file name (.json, .png, …)'],
    ['logo.PNG', 'ends like a file name (.json, .png, …)'],
    ['app.js', 'ends like a file name (.json, .png, …)'],
  ])('refuses %j: %s', (name, problem) => {
    expect(discourseUsernameProblem(name)).toBe(problem);
  });

  it.each(['bob', '_bob', 'ava.migrated', 'a-b_c.d', 'x'.repeat(20), 'bob.jsx1', 'Mixed.Case9'])(
    'accepts %j',
    (name) => expect(isDiscourseUsername(name)).toBe(true),
  );
});

describe('discourseUsername', () => {
  const id = '80351110224678912';
  const otherId = '1234567890123456789';

  it('keeps a Discord username Discourse accepts as it is', () => {
    expect(discourseUsername('ava.migrated', id)).toBe('ava.migrated');
    expect(discourseUsername('OldTimer', id)).toBe('OldTimer');
  });

  it.each([
    // Unicode: accents dropped, other scripts and emoji removed, spaces become _.
    ['José Díaz', /^Jose_Diaz_[0-9a-z]{4}$/],
    ['Ünïcødé', /^Unicde_[0-9a-z]{4}$/],
    ['🔥fire🔥', /^fire_[0-9a-z]{4}$/],
    ['ava ✨ star', /^ava_star_[0-9a-z]{4}$/],
    ['👨‍👩‍👧‍👦', /^[0-9a-z]{4}$/],
    ['名前', /^[0-9a-z]{4}$/],
    ['ｆｕｌｌｗｉｄｔｈ', /^fullwidth_[0-9a-z]{4}$/],
    // Runs of separators, a bad first or last character, a file-like ending.
    ['a..b', /^a_b_[0-9a-z]{4}$/],
    ['.hidden.', /^hidden_[0-9a-z]{4}$/],
    ['__init__', /^init_[0-9a-z]{4}$/],
    ['bob.json', /^bob\.json_[0-9a-z]{4}$/],
    // Too short: padded with the tag.
    ['jo', /^jo_[0-9a-z]{4}$/],
    // 32 characters (Discord's longest): cut to 15, then the tag.
    ['averyveryverylongdiscordname_123', /^averyveryverylo_[0-9a-z]{4}$/],
    ['long.name.with.dots.everywhere.x', /^long\.name\.with_[0-9a-z]{4}$/],
  ])('makes %j acceptable: %s', (name, expected) => {
    const username = discourseUsername(name, id);
    expect(username).toMatch(expected);
    expect(discourseUsernameProblem(username)).toBeUndefined();
  });

  it('tells apart two members whose long names share the first 20 characters, the same way every time', () => {
    const a = discourseUsername('thesamefirsttwentych_alpha_1234', id);
    const b = discourseUsername('thesamefirsttwentych_beta_56789', otherId);
    expect(a).not.toBe(b);
    expect(discourseUsername('thesamefirsttwentych_alpha_1234', id)).toBe(a);
    expect(discourseUsername('thesamefirsttwentych_beta_56789', otherId)).toBe(b);
  });

  it("follows the forum's lengths", () => {
    expect(discourseUsername('bob', id, { min: 4, max: 20 })).toMatch(/^bob_[0-9a-z]{4}$/);
    expect(discourseUsername('bo', id, { min: 10, max: 20 })).toMatch(/^bo_[0-9a-z]{7}$/);
    expect(discourseUsername('averyverylongname', id, { min: 1, max: 5 })).toMatch(/^[0-9a-z]{4}$/);
    expect(discourseUsername('averyverylongname', id, { min: 1, max: 3 })).toMatch(/^[0-9a-z]{3}$/);
    expect(discourseUsername('a'.repeat(40), id, { min: 3, max: 60 })).toBe('a'.repeat(40));
    expect(() => discourseUsername('bob', id, { min: 5, max: 4 })).toThrow(RangeError);
    expect(() => discourseUsername('bob', id, { min: 0, max: 4 })).toThrow(RangeError);
  });

  it('always gives a name Discourse accepts, for any name, id and lengths', () => {
    fc.assert(
      fc.property(discordName, snowflake, lengths, (name, discordId, l) => {
        const username = discourseUsername(name, discordId, l);
        expect(discourseUsernameProblem(username, l)).toBeUndefined();
      }),
      { numRuns: 2000 },
    );
  });

  it('is deterministic and keeps every acceptable name unchanged', () => {
    fc.assert(
      fc.property(discordName, snowflake, (name, discordId) => {
        const username = discourseUsername(name, discordId);
        expect(discourseUsername(name, discordId)).toBe(username);
        if (isDiscourseUsername(name)) expect(username).toBe(name);
        else expect(username).toMatch(/(^|_)[0-9a-z]{4}$/);
      }),
    );
  });

  it('gives different names to different members whose names had to be changed alike', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z]{21,32}$/), snowflake, snowflake, (name, a, b) => {
        fc.pre(a !== b);
        // A 4-character base-36 tag: about 1.7 million values, so a clash here is a bug.
        expect(discourseUsername(name, a)).not.toBe(discourseUsername(name, b));
      }),
      { numRuns: 200 },
    );
  });

  it('uses the defaults of Discourse', () => {
    expect(DEFAULT_USERNAME_LENGTHS).toEqual({ min: 3, max: 20 });
  });
});
