import fc from 'fast-check';
import { isVanillaUsername, vanillaUsername } from './vanilla-username';

const ID = '80351110224678912';

describe('Vanilla usernames', () => {
  it('keeps a Discord username Vanilla accepts', () => {
    expect(vanillaUsername('nelly_99', ID)).toBe('nelly_99');
    expect(vanillaUsername('ABC', ID)).toBe('ABC');
  });

  it.each([
    ['a dot', 'nelly.b'],
    ['a hyphen', 'ann-marie'],
    ['accents', 'José'],
    ['two characters', 'ab'],
    ['more than 20 characters', 'a_very_long_discord_username'],
    ['only symbols', '..__..'],
    ['emoji', '🦊🦊🦊'],
  ])('makes a valid, tagged name of a username with %s', (_what, name) => {
    const made = vanillaUsername(name, ID);
    expect(isVanillaUsername(made)).toBe(true);
    expect(made).toMatch(/[a-z0-9]{4}$/);
    expect(vanillaUsername(name, ID)).toBe(made);
  });

  it('turns separators into _ and drops accents', () => {
    expect(vanillaUsername('nelly.b', ID)).toMatch(/^nelly_b_[a-z0-9]{4}$/);
    expect(vanillaUsername('José', ID)).toMatch(/^Jose_[a-z0-9]{4}$/);
  });

  it('gives two members whose names end up alike different names', () => {
    expect(vanillaUsername('nelly.b', '1')).not.toBe(vanillaUsername('nelly-b', '2'));
  });

  it('always gives a name Vanilla accepts, the same for the same inputs', () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 40 }),
        fc.bigInt({ min: 1n, max: 2n ** 63n }),
        (name, id) => {
          const made = vanillaUsername(name, String(id));
          return isVanillaUsername(made) && made === vanillaUsername(name, String(id));
        },
      ),
    );
  });
});
