import { retryAfterSeconds } from '../common/http-request';

/** Discord answered with an error status (or could not be reached: `status` 0). */
export class DiscordApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** Seconds to wait, from `Retry-After` or the JSON `retry_after`, on 429. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = 'DiscordApiError';
  }
}

/** Reads Discord's 429 wait: the `Retry-After` header first, then the JSON body's `retry_after`. */
export function retryAfterOf(headers: Headers, body: string): number | undefined {
  const header = retryAfterSeconds(headers);
  if (header !== undefined) return header;
  try {
    const parsed = JSON.parse(body) as { retry_after?: unknown };
    if (typeof parsed.retry_after === 'number') return Math.ceil(parsed.retry_after);
  } catch {
    /* plain-text 429 (e.g. from Cloudflare) */
  }
  return undefined;
}
