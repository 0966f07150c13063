/**
 * Errors of the Discourse admin API. Messages carry Discourse's own explanation and the request's
 * method and path, never the API key.
 */
export class DiscourseApiError extends Error {
  constructor(
    /** HTTP status, or 0 when the forum could not be reached or did not answer in time. */
    readonly status: number,
    message: string,
    /** Discourse's own message, when it gave one. */
    readonly discourseMessage?: string,
  ) {
    super(message);
    this.name = 'DiscourseApiError';
  }

  /** Worth trying again later: the forum is down, slow, overloaded or rate limiting. */
  get retryable(): boolean {
    return this.status === 0 || this.status === 429 || this.status >= 500;
  }
}

/** 429: wait `waitSeconds` before calling the forum's admin API again (one budget per site). */
export class DiscourseRateLimitError extends DiscourseApiError {
  constructor(
    message: string,
    readonly waitSeconds: number,
  ) {
    super(429, message);
    this.name = 'DiscourseRateLimitError';
  }
}

/** No admin API key is configured for that forum. */
export class DiscourseApiNotConfiguredError extends DiscourseApiError {
  constructor(forum: string) {
    super(0, `No admin API key is configured for the forum ${forum} (set DISCOURSE_API_KEY).`);
    this.name = 'DiscourseApiNotConfiguredError';
  }

  override get retryable(): boolean {
    return false;
  }
}
