/** Why a jsConnect request was refused. */
export type JsConnectErrorCode =
  /** No `jwt` parameter. */
  | 'missing_jwt'
  /** Not a compact JWS, too long, or a header or payload that is not JSON. */
  | 'malformed_jwt'
  /** The header's `kid` names no configured connection. */
  | 'unknown_client'
  /** Signed with an algorithm this connection does not allow (`none` included). */
  | 'disallowed_algorithm'
  /** The signature does not match the connection's secret. */
  | 'bad_signature'
  /** `exp` has passed. */
  | 'expired'
  /** A claim is missing or of the wrong type (`st`, `rurl`, `exp`, `iat`). */
  | 'invalid_claims'
  /** `rurl` is not on the connection's forum. */
  | 'foreign_redirect';

/**
 * Raised by the jsConnect codec. The message is safe to show to a person: it never contains the
 * token, the signature or the secret.
 */
export class JsConnectProtocolError extends Error {
  constructor(
    readonly code: JsConnectErrorCode,
    message: string,
    /**
     * The connection whose secret signed the request, for an `expired` one (its signature was
     * checked before its time): its forum can be asked for a fresh request.
     */
    readonly clientId?: string,
  ) {
    super(message);
    this.name = 'JsConnectProtocolError';
  }
}
