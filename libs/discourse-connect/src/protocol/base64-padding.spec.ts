import { randomBytes } from 'node:crypto';
import { decodePayload } from './discourse-connect.codec';
import { DiscourseConnectProtocolError } from './discourse-connect.errors';

/** The rule on padding as a regular expression, for text in the base64 alphabet. */
const padded = (base64: string) => {
  const compact = base64.replace(/[\r\n]/g, '');
  return compact.length % 4 === 0 && /^[A-Za-z0-9+/]*={0,2}$/.test(compact);
};

const refusedAsBase64 = (base64: string) => {
  try {
    decodePayload(base64);
    return false;
  } catch (error) {
    if (!(error instanceof DiscourseConnectProtocolError)) throw error;
    return error.message === 'The sso parameter is not valid base64.';
  }
};

describe('decodePayload on padding', () => {
  it('refuses exactly the text whose `=` are not its last one or two characters', () => {
    const cases = [
      'YQ==',
      'YWI=',
      'YWJj',
      'Y===',
      '=YWJ',
      'YW=j',
      'Y=Q=',
      '====',
      'YQ=\n=',
      'YQ\r\n==',
    ];
    for (const text of cases) expect(refusedAsBase64(text)).toBe(!padded(text));
    const alphabet = 'YWJjQ+/==\n';
    for (let i = 0; i < 5000; i++) {
      let text = '';
      for (const b of randomBytes(1 + (i % 13))) text += alphabet[b % alphabet.length];
      expect(refusedAsBase64(text)).toBe(!padded(text));
    }
  });
});
