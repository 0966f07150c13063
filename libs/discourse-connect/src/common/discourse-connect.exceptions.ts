import { HttpException, HttpStatus } from '@nestjs/common';

/**
 * An error shown to a person as a readable page. `title` and `message` are safe to display;
 * they never carry a secret, token, payload or signature.
 */
export class DiscourseConnectHttpException extends HttpException {
  constructor(
    status: HttpStatus,
    readonly title: string,
    message: string,
    /** Short machine-readable reason, logged for the operator. */
    readonly reason: string,
    readonly links: { href: string; label: string }[] = [],
    readonly retryAfterSeconds?: number,
  ) {
    super({ statusCode: status, error: title, message, reason }, status);
  }
}

/** 400: the request itself is malformed. */
export class BadSsoRequestException extends DiscourseConnectHttpException {
  constructor(message: string, reason = 'bad_request') {
    super(HttpStatus.BAD_REQUEST, 'This sign-in link is not valid', message, reason);
  }
}

/** 403: the request is well-formed but refused (bad signature, unknown forum, refused by a filter). */
export class SsoForbiddenException extends DiscourseConnectHttpException {
  constructor(message: string, reason: string, title = 'Sign-in refused') {
    super(HttpStatus.FORBIDDEN, title, message, reason);
  }
}

/** The Discord side of sign-in failed or was cancelled. */
export class DiscordSignInException extends DiscourseConnectHttpException {}
