import { boundForLog, MAX_LOGGED_VALUE_LENGTH } from './log-text';

describe('boundForLog', () => {
  it('strips control characters, line separators and bidi controls', () => {
    expect(boundForLog('invalid_scope\r\n{"level":"error"}\u0000\u001b[31m\u2028\u202e')).toBe(
      'invalid_scope{"level":"error"}[31m',
    );
  });

  it('caps the length and marks the cut', () => {
    const out = boundForLog('x'.repeat(10_000));
    expect(out).toBe(`${'x'.repeat(MAX_LOGGED_VALUE_LENGTH)}…`);
    expect(boundForLog('abc', 2)).toBe('ab…');
  });

  it('reads anything: arrays (a repeated parameter), numbers, undefined', () => {
    expect(boundForLog(['a', 'b\n'])).toBe('a,b');
    expect(boundForLog(42)).toBe('42');
    expect(boundForLog(undefined)).toBe('undefined');
    expect(boundForLog('access_denied')).toBe('access_denied');
  });
});
