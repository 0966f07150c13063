import { decodeProtectedHeader, errors, jwtVerify, SignJWT } from 'jose';
import { isUnderForum, parseForumBase } from '../common/urls';
import { JsConnectProtocolError } from './jsconnect.errors';

/**
 * Vanilla's jsConnect v3, the site's side, as Vanilla's reference library (`JsConnect.php`) speaks
 * it: verify the request token Vanilla sends to the authenticate URL, answer with a signed token in
 * the fragment of its `rurl`. The JWT work is `jose`'s; this file adds jsConnect's rules. No Nest.
 */

/** The HMAC algorithms a connection may use. Vanilla's RS and ES algorithms are not offered. */
export const JSCONNECT_ALGORITHMS = ['HS256', 'HS384', 'HS512'] as const;
export type JsConnectAlgorithm = (typeof JSCONNECT_ALGORITHMS)[number];

const VERSION = 'nestjs:3';
/** What the answer's `v` claim says: who answered, jsConnect version 3. */
export const JSCONNECT_VERSION = VERSION;

/** Seconds an answer is valid: Vanilla's reference library signs `exp = iat + 600`. */
export const JSCONNECT_RESPONSE_LIFETIME_SECONDS = 600;

/** Clock skew tolerated on the request's `exp`, in seconds. */
const CLOCK_TOLERANCE_SECONDS = 5;

/** Longer request tokens are refused unread (Vanilla's are a few hundred characters). */
const MAX_JWT_LENGTH = 4096;

/** One jsConnect connection of a Vanilla forum. */
export interface JsConnectClient {
  /** The connection's client id: the `kid` of both tokens. */
  clientId: string;
  /** The connection's secret, which signs both tokens. */
  secret: string;
  /** The algorithms accepted on requests; the first one signs the answers. */
  algorithms: readonly JsConnectAlgorithm[];
  /**
   * The forum's base URL: a request's `rurl` must be under it (same origin, path inside). Leave it
   * out only where no forum is known (the reference library's test vectors).
   */
  forumUrl?: string;
}

/** A verified request from Vanilla. */
export interface JsConnectRequest {
  /** The connection that signed it. */
  client: JsConnectClient;
  /** `st`: Vanilla's state (its nonce in `n`), echoed back unchanged. */
  state: Record<string, unknown>;
  /** `rurl`: where the answer goes, in its fragment. */
  redirectUrl: string;
  /** `v`: the version Vanilla wrote, when it wrote one. */
  version?: string;
  /** `exp`, in seconds. */
  expiresAt: number;
}

/**
 * The member as jsConnect describes them; `{}` is a guest. Extra fields go to Vanilla as they are.
 */
export interface JsConnectUser {
  /** The site's unique, permanent id of the member. */
  id?: string;
  /** The forum username (unique on the forum). */
  name?: string;
  email?: string;
  /** An avatar URL. */
  photo?: string;
  /** The complete list of the member's forum roles (names or ids); replaces theirs on each login. */
  roles?: (string | number)[];
  [field: string]: unknown;
}

const encoder = new TextEncoder();

/** The connection's secret as jose takes an HMAC key. */
function keyOf(client: JsConnectClient): Uint8Array {
  return encoder.encode(client.secret);
}

/**
 * Verifies a request token from Vanilla: the `kid` names one of `clients`, the algorithm is one
 * that connection allows (never `none`), the signature is its secret's, `exp` has not passed, and
 * `rurl` is on that connection's forum.
 *
 * @param now the time in seconds (tests); default the clock.
 * @throws JsConnectProtocolError
 */
export async function verifyJsConnectRequest(
  jwt: unknown,
  clients: readonly JsConnectClient[],
  now?: number,
): Promise<JsConnectRequest> {
  if (jwt === undefined || jwt === '') {
    throw new JsConnectProtocolError('missing_jwt', 'The sign-in request has no jwt parameter.');
  }
  if (
    typeof jwt !== 'string' ||
    jwt.length > MAX_JWT_LENGTH ||
    !/^[\w-]+\.[\w-]+\.[\w-]*$/.test(jwt)
  ) {
    throw new JsConnectProtocolError('malformed_jwt', 'The sign-in request is not a valid token.');
  }
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(jwt);
  } catch {
    throw new JsConnectProtocolError('malformed_jwt', 'The sign-in request is not a valid token.');
  }
  const client =
    typeof header.kid === 'string' ? clients.find((c) => c.clientId === header.kid) : undefined;
  if (!client) {
    throw new JsConnectProtocolError(
      'unknown_client',
      'The sign-in request comes from a jsConnect connection this site does not know (its client id is not configured).',
    );
  }
  if (!(client.algorithms as readonly unknown[]).includes(header.alg)) {
    throw new JsConnectProtocolError(
      'disallowed_algorithm',
      `The sign-in request is signed with an algorithm this connection does not allow (allowed: ${client.algorithms.join(', ')}).`,
    );
  }
  let payload: Record<string, unknown>;
  try {
    ({ payload } = await jwtVerify(jwt, keyOf(client), {
      algorithms: [...client.algorithms],
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      currentDate: now === undefined ? undefined : new Date(now * 1000),
    }));
  } catch (error) {
    throw refusal(error, client);
  }
  const { st, rurl, v, exp } = payload;
  if (typeof exp !== 'number') {
    throw new JsConnectProtocolError('invalid_claims', 'The sign-in request has no expiry time.');
  }
  if (typeof st !== 'object' || st === null || Array.isArray(st)) {
    throw new JsConnectProtocolError('invalid_claims', 'The sign-in request has no state (st).');
  }
  if (typeof rurl !== 'string' || rurl === '') {
    throw new JsConnectProtocolError(
      'invalid_claims',
      'The sign-in request does not say where to return (rurl).',
    );
  }
  if (client.forumUrl !== undefined && !isUnderForum(rurl, parseForumBase(client.forumUrl))) {
    throw new JsConnectProtocolError(
      'foreign_redirect',
      `The sign-in request asks to return somewhere other than the forum at ${client.forumUrl}.`,
    );
  }
  return {
    client,
    state: st as Record<string, unknown>,
    redirectUrl: rurl,
    version: typeof v === 'string' ? v : undefined,
    expiresAt: exp,
  };
}

/** The codec's error for what jose refused. */
function refusal(error: unknown, client: JsConnectClient): JsConnectProtocolError {
  if (error instanceof errors.JWTExpired) {
    // jose checks the signature before the claims: this request is the connection's own.
    return new JsConnectProtocolError(
      'expired',
      'The sign-in request has expired. Go back to the forum and sign in again.',
      client.clientId,
    );
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) {
    return new JsConnectProtocolError(
      'bad_signature',
      "The sign-in request's signature does not match this connection's secret.",
    );
  }
  if (error instanceof errors.JOSEAlgNotAllowed) {
    return new JsConnectProtocolError(
      'disallowed_algorithm',
      'The sign-in request is signed with an algorithm this connection does not allow.',
    );
  }
  if (error instanceof errors.JWTClaimValidationFailed) {
    return new JsConnectProtocolError(
      'invalid_claims',
      `The sign-in request has an invalid "${error.claim}" claim.`,
    );
  }
  return new JsConnectProtocolError('malformed_jwt', 'The sign-in request is not a valid token.');
}

/**
 * The answer to a verified request: `rurl#jwt=<token>`, the token's header `kid, typ, alg`, its
 * claims `{ u, st, v, iat, exp }` in that order with `exp = iat + 600`, signed with the
 * connection's secret and its first algorithm. A guest is `{}`.
 *
 * @param now the time in seconds (tests); default the clock.
 */
export async function buildJsConnectResponse(
  request: Pick<JsConnectRequest, 'client' | 'state' | 'redirectUrl'>,
  user: JsConnectUser,
  options: { now?: number; version?: string } = {},
): Promise<string> {
  const iat = options.now ?? Math.floor(Date.now() / 1000);
  const { client } = request;
  const token = await new SignJWT({
    u: user,
    st: request.state,
    v: options.version ?? JSCONNECT_VERSION,
    iat,
    exp: iat + JSCONNECT_RESPONSE_LIFETIME_SECONDS,
  })
    .setProtectedHeader({ kid: client.clientId, typ: 'JWT', alg: client.algorithms[0] })
    .sign(keyOf(client));
  return `${request.redirectUrl}#jwt=${token}`;
}
