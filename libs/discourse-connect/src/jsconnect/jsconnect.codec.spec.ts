import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import {
  buildJsConnectResponse,
  verifyJsConnectRequest,
  type JsConnectClient,
  type JsConnectUser,
} from './jsconnect.codec';
import { JsConnectProtocolError } from './jsconnect.errors';

interface Vector {
  jwt: string;
  clientID: string;
  secret: string;
  version: string;
  timestamp: number;
  user: JsConnectUser;
  response?: string;
  exception?: string;
}

function loadVectors(): Record<string, Vector> {
  // The reference library's vectors live beside the repository (../shared/vectors); a copy is kept in test/fixtures.
  const candidates = [
    join(__dirname, '../../../../../shared/vectors/jsconnect-v3.json'),
    join(__dirname, '../../../../test/fixtures/jsconnect-v3.vectors.json'),
  ];
  for (const path of candidates) {
    try {
      return JSON.parse(readFileSync(path, 'utf8')).vectors as Record<string, Vector>;
    } catch {
      /* try the next place */
    }
  }
  throw new Error('jsConnect test vectors not found');
}

const VECTORS = loadVectors();
const clientOf = (v: Vector): JsConnectClient => ({
  clientId: v.clientID,
  secret: v.secret,
  algorithms: ['HS256'],
});

async function refusal(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'accepted';
  } catch (error) {
    return error instanceof JsConnectProtocolError ? error.code : `unexpected: ${String(error)}`;
  }
}

const b64url = (data: string | Buffer): string => Buffer.from(data).toString('base64url');

/** A token built by hand, for what jose would never sign (`alg: none`, odd headers). */
function handMade(header: object, payload: object, secret?: string, hash = 'sha256'): string {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  const sig = secret ? createHmac(hash, secret).update(input).digest('base64url') : '';
  return `${input}.${sig}`;
}

describe('jsConnect v3 codec', () => {
  describe.each(Object.entries(VECTORS).filter(([, v]) => v.response))(
    'reference vector: %s',
    (_name, v) => {
      it('answers byte for byte as the reference library does', async () => {
        const request = await verifyJsConnectRequest(v.jwt, [clientOf(v)], v.timestamp);
        const answer = await buildJsConnectResponse(request, v.user, {
          now: v.timestamp,
          version: v.version,
        });
        expect(answer).toBe(v.response);
      });

      it('reads the state and the return URL of the request', async () => {
        const request = await verifyJsConnectRequest(v.jwt, [clientOf(v)], v.timestamp);
        const claims = JSON.parse(Buffer.from(v.jwt.split('.')[1], 'base64url').toString());
        expect(request.state).toEqual(claims.st);
        expect(request.redirectUrl).toBe(claims.rurl);
        expect(request.version).toBe(v.version);
      });
    },
  );

  it('refuses the bad-secret vector as a bad signature', async () => {
    const v = VECTORS['bad-secret'];
    expect(await refusal(verifyJsConnectRequest(v.jwt, [clientOf(v)], v.timestamp))).toBe(
      'bad_signature',
    );
  });

  it('refuses the expired-token vector, naming the connection that signed it', async () => {
    const v = VECTORS['expired-token'];
    expect(await refusal(verifyJsConnectRequest(v.jwt, [clientOf(v)], v.timestamp))).toBe(
      'expired',
    );
    const error = await verifyJsConnectRequest(v.jwt, [clientOf(v)], v.timestamp).catch(
      (e: JsConnectProtocolError) => e,
    );
    expect((error as JsConnectProtocolError).clientId).toBe(v.clientID);
    // An expired token with a bad signature is a bad signature, not the connection's.
    const [h, p] = v.jwt.split('.');
    expect(
      await refusal(verifyJsConnectRequest(`${h}.${p}.AAAA`, [clientOf(v)], v.timestamp)),
    ).toBe('bad_signature');
  });

  describe('requests from a configured forum', () => {
    const now = 1_700_000_000;
    const forum: JsConnectClient = {
      clientId: 'vanilla-client',
      secret: 'vanilla-secret-0123456789',
      algorithms: ['HS256'],
      forumUrl: 'https://community.example.com/forum',
    };
    const rurl =
      'https://community.example.com/forum/entry/jsconnect-redirect?client_id=vanilla-client';
    const claims = (extra: object = {}) => ({
      st: { n: 'nonce-123' },
      rurl,
      v: 'php:3',
      iat: now,
      exp: now + 600,
      ...extra,
    });
    const sign = (payload: object, alg = 'HS256', secret = forum.secret, kid = forum.clientId) =>
      new SignJWT(payload as Record<string, unknown>)
        .setProtectedHeader({ kid, typ: 'JWT', alg })
        .sign(new TextEncoder().encode(secret));
    const verify = (jwt: unknown, clients = [forum]) => verifyJsConnectRequest(jwt, clients, now);

    it('accepts a request signed like Vanilla signs it', async () => {
      const request = await verify(await sign(claims()));
      expect(request.client).toBe(forum);
      expect(request.state).toEqual({ n: 'nonce-123' });
      expect(request.redirectUrl).toBe(rurl);
    });

    it('answers with kid, the echoed state, v, iat and exp = iat + 600', async () => {
      const request = await verify(await sign(claims({ st: { n: 'abc', t: '/discussion/1' } })));
      const answer = await buildJsConnectResponse(request, { id: '1', name: 'ann' }, { now });
      const [url, jwt] = answer.split('#jwt=');
      expect(url).toBe(rurl);
      const [header, payload] = jwt
        .split('.')
        .slice(0, 2)
        .map((p) => Buffer.from(p, 'base64url').toString());
      expect(header).toBe('{"kid":"vanilla-client","typ":"JWT","alg":"HS256"}');
      expect(payload).toBe(
        `{"u":{"id":"1","name":"ann"},"st":{"n":"abc","t":"/discussion/1"},"v":"nestjs:3","iat":${now},"exp":${now + 600}}`,
      );
      const input = jwt.split('.').slice(0, 2).join('.');
      expect(jwt.split('.')[2]).toBe(
        createHmac('sha256', forum.secret).update(input).digest('base64url'),
      );
    });

    it('signs answers with the first algorithm of the connection (HS512)', async () => {
      const strong: JsConnectClient = { ...forum, algorithms: ['HS512'] };
      const request = await verify(await sign(claims(), 'HS512'), [strong]);
      const jwt = (await buildJsConnectResponse(request, {}, { now })).split('#jwt=')[1];
      expect(JSON.parse(Buffer.from(jwt.split('.')[0], 'base64url').toString()).alg).toBe('HS512');
      const input = jwt.split('.').slice(0, 2).join('.');
      expect(jwt.split('.')[2]).toBe(
        createHmac('sha512', forum.secret).update(input).digest('base64url'),
      );
    });

    it.each([
      ['no jwt', undefined, 'missing_jwt'],
      ['an empty jwt', '', 'missing_jwt'],
      ['a repeated jwt', ['a.b.c', 'a.b.c'], 'malformed_jwt'],
      ['not a token', 'hello', 'malformed_jwt'],
      ['a header that is not JSON', `${b64url('nope')}.${b64url('{}')}.x`, 'malformed_jwt'],
      ['a token too long', `a.${'b'.repeat(5000)}.c`, 'malformed_jwt'],
    ])('refuses %s', async (_what, jwt, code) => {
      expect(await refusal(verify(jwt))).toBe(code);
    });

    it('refuses a tampered payload', async () => {
      const [h, , s] = (await sign(claims())).split('.');
      const forged = b64url(JSON.stringify(claims({ st: { n: 'other' } })));
      expect(await refusal(verify(`${h}.${forged}.${s}`))).toBe('bad_signature');
    });

    it('refuses a token signed with another secret', async () => {
      expect(await refusal(verify(await sign(claims(), 'HS256', 'another-secret-0123456')))).toBe(
        'bad_signature',
      );
    });

    it('refuses an expired request', async () => {
      expect(await refusal(verify(await sign(claims({ iat: now - 700, exp: now - 100 }))))).toBe(
        'expired',
      );
    });

    it('refuses a request without exp, st or rurl', async () => {
      const { exp: _exp, ...noExp } = claims();
      const { st: _st, ...noSt } = claims();
      const { rurl: _rurl, ...noRurl } = claims();
      for (const payload of [noExp, noSt, noRurl, claims({ st: 'n' }), claims({ rurl: 5 })]) {
        expect(await refusal(verify(await sign(payload)))).toBe('invalid_claims');
      }
    });

    it('refuses alg none, with or without a signature', async () => {
      const header = { kid: forum.clientId, typ: 'JWT', alg: 'none' };
      expect(await refusal(verify(handMade(header, claims())))).toBe('disallowed_algorithm');
      expect(await refusal(verify(handMade(header, claims(), forum.secret)))).toBe(
        'disallowed_algorithm',
      );
    });

    it('refuses an algorithm the connection does not allow', async () => {
      expect(await refusal(verify(await sign(claims(), 'HS384')))).toBe('disallowed_algorithm');
      const header = { kid: forum.clientId, typ: 'JWT', alg: 'RS256' };
      expect(await refusal(verify(handMade(header, claims(), forum.secret)))).toBe(
        'disallowed_algorithm',
      );
    });

    it('refuses an unknown kid, or none', async () => {
      expect(await refusal(verify(await sign(claims(), 'HS256', forum.secret, 'other')))).toBe(
        'unknown_client',
      );
      const header = { typ: 'JWT', alg: 'HS256' };
      expect(await refusal(verify(handMade(header, claims(), forum.secret)))).toBe(
        'unknown_client',
      );
    });

    it('checks the token against the connection its kid names', async () => {
      const other: JsConnectClient = {
        clientId: 'second',
        secret: 'second-secret-0123456789',
        algorithms: ['HS256'],
        forumUrl: 'https://other.example.com',
      };
      // Signed with the first forum's secret but claiming the second's kid.
      const jwt = await sign(claims(), 'HS256', forum.secret, 'second');
      expect(await refusal(verify(jwt, [forum, other]))).toBe('bad_signature');
    });

    it.each([
      ['another host', 'https://evil.example.com/forum/entry/jsconnect-redirect'],
      ['another scheme', 'http://community.example.com/forum/entry/jsconnect-redirect'],
      ['another port', 'https://community.example.com:8443/forum/entry/jsconnect-redirect'],
      ['a path beside the forum', 'https://community.example.com/forum2/entry'],
      ['a path above the forum', 'https://community.example.com/entry/jsconnect-redirect'],
      ['credentials', 'https://user@community.example.com/forum/entry'],
      ['an encoded slash', 'https://community.example.com/forum/..%2Fadmin'],
      ['a fragment', 'https://community.example.com/forum/entry#x'],
      ['a scheme-relative URL', '//evil.example.com/forum'],
      ['javascript:', 'javascript:alert(1)'],
    ])('refuses a return URL on %s', async (_what, foreign) => {
      expect(await refusal(verify(await sign(claims({ rurl: foreign }))))).toBe('foreign_redirect');
    });
  });
});
