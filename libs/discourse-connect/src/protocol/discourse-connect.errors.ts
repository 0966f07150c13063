/** Why an incoming DiscourseConnect request or an outgoing payload was refused. */
export type DiscourseConnectErrorCode =
  | 'missing_payload'
  | 'missing_signature'
  | 'malformed_signature'
  | 'malformed_payload'
  | 'bad_signature'
  | 'payload_too_long'
  | 'duplicate_field'
  | 'missing_nonce'
  | 'missing_return_sso_url'
  | 'invalid_field';

/**
 * Raised by the protocol codec. The message is safe to show to a person: it never contains the
 * payload, the signature or the secret.
 */
export class DiscourseConnectProtocolError extends Error {
  constructor(
    readonly code: DiscourseConnectErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'DiscourseConnectProtocolError';
  }
}
