import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import {
  appendSignedPayload,
  buildSignedPayload,
  decodePayload,
  encodePayload,
  isValidSignature,
  readBoolean,
  readGroups,
  serializePayload,
  verifyAndDecode,
  verifyProviderRequest,
  verifyRequestWithAnySecret,
  verifySignature,
} from './discourse-connect.codec';
import { DiscourseConnectProtocolError } from './discourse-connect.errors';
import { DISCOURSE_CONNECT_FIELDS } from './discourse-connect.fields';

interface Vector {
  name: string;
  secret: string;
  sso: string;
  sig: string;
  decoded: Record<string, string>;
}

function loadVectors(): Vector[] {
  // The public vectors live beside the repository (../shared/vectors); a copy is kept in test/fixtures.
  const candidates = [
    join(__dirname, '../../../../../shared/vectors/discourse-connect.json'),
    join(__dirname, '../../../../test/fixtures/discourse-connect.vectors.json'),
  ];
  for (const path of candidates) {
    try {
      return JSON.parse(readFileSync(path, 'utf8')).vectors as Vector[];
    } catch {
      /* try the next place */
    }
  }
  throw new Error('public DiscourseConnect test vectors not found');
}

const code = (fn: () => unknown): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (e) {
    return e instanceof DiscourseConnectProtocolError ? e.code : `unexpected: ${String(e)}`;
  }
};

describe('DiscourseConnect codec', () => {
  describe.each(loadVectors())('public vector: $name', (v) => {
    it('verifies the signature over the base64 text exactly as received', () => {
      expect(() => verifySignature(v.sso, v.sig, v.secret)).not.toThrow();
      expect(verifyAndDecode(v.sso, v.sig, v.secret)).toEqual(v.decoded);
    });
    it('refuses the same payload with another secret or a flipped signature', () => {
      expect(code(() => verifySignature(v.sso, v.sig, `${v.secret}x`))).toBe('bad_signature');
      const flipped = (v.sig[0] === 'a' ? 'b' : 'a') + v.sig.slice(1);
      expect(code(() => verifySignature(v.sso, flipped, v.secret))).toBe('bad_signature');
      expect(code(() => verifySignature(v.sso.trimEnd(), v.sig, v.secret))).toBe('bad_signature');
    });
  });

  it('checks the signature format before comparing', () => {
    const sso = encodePayload({ nonce: 'abc' });
    const sig = createHmac('sha256', 'secret-123456').update(sso).digest('hex');
    expect(code(() => verifySignature(sso, sig.toUpperCase(), 'secret-123456'))).toBe(
      'malformed_signature',
    );
    expect(code(() => verifySignature(sso, sig.slice(2), 'secret-123456'))).toBe(
      'malformed_signature',
    );
    expect(code(() => verifySignature(sso, `${sig}00`, 'secret-123456'))).toBe(
      'malformed_signature',
    );
    expect(code(() => verifySignature(sso, '', 'secret-123456'))).toBe('missing_signature');
    expect(isValidSignature(sso, 'z'.repeat(64), 'secret-123456')).toBe(false);
  });

  it('checks a provider request in a fixed order: presence, length, sig format, alphabet, signature, decoding, nonce, return URL', () => {
    const secrets = ['first-secret-0123456', 'second-secret-0123456'];
    const sign = (text: string, secret = secrets[1]) => {
      const sso = Buffer.from(text).toString('base64');
      return [sso, createHmac('sha256', secret).update(sso).digest('hex')] as const;
    };
    const [sso, sig] = sign('nonce=abc123&return_sso_url=https%3A%2F%2Fforum.example.com%2Fx');
    expect(verifyProviderRequest(sso, sig, secrets)).toMatchObject({
      secretIndex: 1,
      nonce: 'abc123',
      returnSsoUrl: 'https://forum.example.com/x',
    });
    const long = sign(`nonce=abc&bio=${'x'.repeat(5000)}`);
    expect(code(() => verifyProviderRequest('', '', secrets))).toBe('missing_payload');
    expect(code(() => verifyProviderRequest(sso, '', secrets))).toBe('missing_signature');
    expect(code(() => verifyProviderRequest(long[0], 'zz', secrets))).toBe('payload_too_long');
    expect(verifyRequestWithAnySecret(long[0], long[1], secrets, Infinity).fields.nonce).toBe(
      'abc',
    );
    expect(code(() => verifyProviderRequest('%%%', 'zz', secrets))).toBe('malformed_signature');
    // A "+" that became a space: a malformed payload, not a bad signature.
    expect(code(() => verifyProviderRequest('bm9 uY2U=', sig, secrets))).toBe('malformed_payload');
    expect(code(() => verifyAndDecode('bm9 uY2U=', sig, secrets[1]))).toBe('malformed_payload');
    expect(code(() => verifyProviderRequest(sso, sig, [secrets[0]]))).toBe('bad_signature');
    expect(code(() => verifyProviderRequest(...sign('nonce=a&nonce=b'), secrets))).toBe(
      'duplicate_field',
    );
    expect(code(() => verifyProviderRequest(...sign('return_sso_url=x'), secrets))).toBe(
      'missing_nonce',
    );
    expect(
      code(() => verifyProviderRequest(...sign('nonce=a%20b&return_sso_url=x'), secrets)),
    ).toBe('missing_nonce');
    expect(code(() => verifyProviderRequest(...sign('nonce=abc'), secrets))).toBe(
      'missing_return_sso_url',
    );
  });

  it('serialises every field in Discourse order, booleans as strings, groups comma-joined', () => {
    const text = serializePayload({
      username: 'ann',
      nonce: 'n1',
      admin: false,
      require_activation: true,
      add_groups: ['members', 'veterans'],
      remove_groups: 'a,b',
      name: 'Ann Smith & co',
      email: 'ann+1@example.com',
      bio: null,
      title: undefined,
      custom: { zeta: 'z', alpha: 1 },
    });
    expect(text).toBe(
      'add_groups=members%2Cveterans&admin=false&email=ann%2B1%40example.com&name=Ann+Smith+%26+co' +
        '&nonce=n1&remove_groups=a%2Cb&require_activation=true&username=ann&custom.alpha=1&custom.zeta=z',
    );
    expect(text).not.toContain('bio');
  });

  it('knows all 29 fields', () => {
    expect(DISCOURSE_CONNECT_FIELDS).toHaveLength(29);
    // Discourse's own accessor order (as listed in its discourse_connect_base.rb).
    const order =
      'add_groups admin avatar_force_update avatar_url bio card_background_url confirmed_2fa email ' +
      'external_id failed groups locale locale_force_update location logout moderator name no_2fa_methods ' +
      'nonce prompt profile_background_url remove_groups require_2fa require_activation return_sso_url ' +
      'suppress_welcome_message title username website';
    expect(DISCOURSE_CONNECT_FIELDS.join(' ')).toBe(order);
  });

  it('refuses group names that would split or merge lists, and bad custom names', () => {
    expect(code(() => serializePayload({ add_groups: ['a,b'] }))).toBe('invalid_field');
    expect(code(() => serializePayload({ groups: ['a b'] }))).toBe('invalid_field');
    expect(code(() => serializePayload({ custom: { 'a=b': 'x' } }))).toBe('invalid_field');
    expect(code(() => serializePayload({ admin: 'yes' as unknown as boolean }))).toBe(
      'invalid_field',
    );
  });

  it('produces strict base64 and a query Discourse can read back', () => {
    const signed = buildSignedPayload(
      { nonce: 'n', external_id: '1', name: 'é ü ?&=' },
      'secret-123456',
    );
    expect(signed.sso).not.toMatch(/\s/);
    expect(signed.sig).toMatch(/^[0-9a-f]{64}$/);
    const params = new URLSearchParams(signed.query);
    expect(params.get('sso')).toBe(signed.sso);
    expect(appendSignedPayload('https://f.example/session/sso_login', signed)).toBe(
      `https://f.example/session/sso_login?${signed.query}`,
    );
    expect(appendSignedPayload('https://f.example/x?a=1', signed)).toContain('?a=1&sso=');
  });

  it('refuses malformed base64, invalid UTF-8 and repeated keys', () => {
    expect(code(() => decodePayload(''))).toBe('missing_payload');
    expect(code(() => decodePayload('bm9 uY2U='))).toBe('malformed_payload'); // "+" decoded to a space
    expect(code(() => decodePayload('bm9uY2U'))).toBe('malformed_payload');
    expect(code(() => decodePayload('%%%%'))).toBe('malformed_payload');
    expect(
      code(() => decodePayload(Buffer.from([0x6e, 0x3d, 0xff, 0xfe]).toString('base64'))),
    ).toBe('malformed_payload');
    expect(code(() => decodePayload(Buffer.from('a=1&a=2').toString('base64')))).toBe(
      'duplicate_field',
    );
  });

  it('reads booleans and group lists as Discourse does', () => {
    expect(readBoolean({ a: 'true', b: 'false', c: 'TRUE' }, 'a')).toBe(true);
    expect(readBoolean({ a: 'true', b: 'false', c: 'TRUE' }, 'b')).toBe(false);
    expect(readBoolean({ a: 'true', b: 'false', c: 'TRUE' }, 'c')).toBeUndefined();
    expect(readGroups('a,,b, c')).toEqual(['a', 'b', 'c']);
  });

  describe('properties', () => {
    const text = fc.string({ unit: 'grapheme', maxLength: 40 });
    const group = fc.stringMatching(/^[A-Za-z0-9_.-]{1,20}$/);

    it('round-trips any payload through sign, verify and decode', () => {
      fc.assert(
        fc.property(
          fc.record(
            {
              nonce: fc.stringMatching(/^[0-9a-f]{32}$/),
              external_id: fc.stringMatching(/^[0-9]{1,20}$/),
              name: text,
              username: text,
              email: text,
              bio: text,
              admin: fc.boolean(),
              require_activation: fc.boolean(),
              add_groups: fc.array(group, { maxLength: 5 }),
              custom: fc.dictionary(fc.stringMatching(/^[a-z_]{1,10}$/), text, { maxKeys: 3 }),
            },
            { requiredKeys: ['nonce'] },
          ),
          fc.string({ minLength: 10, maxLength: 64 }),
          (payload, secret) => {
            const signed = buildSignedPayload(payload, secret);
            const decoded = verifyAndDecode(signed.sso, signed.sig, secret);
            for (const [key, value] of Object.entries(payload)) {
              if (key === 'custom') {
                for (const [name, v] of Object.entries(value as Record<string, string>)) {
                  expect(decoded[`custom.${name}`]).toBe(v);
                }
              } else if (key === 'add_groups') {
                expect(readGroups(decoded[key])).toEqual((value as string[]).filter(Boolean));
              } else {
                expect(decoded[key]).toBe(String(value));
              }
            }
          },
        ),
      );
    });

    it('matches URLSearchParams#toString exactly for arbitrary text', () => {
      fc.assert(
        fc.property(text, (value) => {
          expect(serializePayload({ name: value })).toBe(
            new URLSearchParams({ name: value }).toString(),
          );
        }),
      );
    });

    it('never accepts a payload changed after signing', () => {
      fc.assert(
        fc.property(fc.stringMatching(/^[0-9a-f]{32}$/), fc.nat(), (nonce, at) => {
          const signed = buildSignedPayload({ nonce, external_id: '42' }, 'secret-123456');
          const i = at % signed.sso.length;
          const replacement = signed.sso[i] === 'A' ? 'B' : 'A';
          const tampered = signed.sso.slice(0, i) + replacement + signed.sso.slice(i + 1);
          expect(isValidSignature(tampered, signed.sig, 'secret-123456')).toBe(false);
        }),
      );
    });

    it('never throws anything but a protocol error on arbitrary input', () => {
      fc.assert(
        fc.property(fc.string({ maxLength: 200 }), fc.string({ maxLength: 80 }), (sso, sig) => {
          const result = code(() => verifyAndDecode(sso, sig, 'secret-123456'));
          expect(result === undefined || !result.startsWith('unexpected')).toBe(true);
        }),
      );
    });
  });
});
