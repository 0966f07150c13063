/** Why the forum refused a DiscourseConnect payload; each entry point turns it into its own answer. */
export type ForumErrorKind =
  'signature' | 'parse' | 'nonce' | 'external_id' | 'email' | 'email_taken' | 'suspended';

/** A refusal inside the simulated forum, with the status and text `sso_login` shows for it. */
export class ForumError extends Error {
  constructor(
    readonly kind: ForumErrorKind,
    readonly status: number,
    readonly text: string,
    /** `text` is already HTML. */
    readonly html = false,
  ) {
    super(text);
  }
}
