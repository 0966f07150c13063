/**
 * The module's outgoing HTTP calls (Discord's API, the forums' admin API): `fetch` with a timeout,
 * the answer read as text, and the `Retry-After` header of a 429. Callers turn the result into
 * their own errors.
 */

export interface HttpRequest {
  method?: 'GET' | 'POST' | 'PUT' | 'DELETE';
  headers?: Record<string, string>;
  /** Form fields, sent as `application/x-www-form-urlencoded`. */
  form?: Record<string, string>;
  /** How long the server has to answer, in milliseconds. */
  timeoutMs: number;
  /** `manual` reports a redirect as the 3xx answer instead of following it. */
  redirect?: 'follow' | 'manual' | 'error';
}

/** The server answered (with any status), or could not be reached / did not answer in time. */
export type HttpResult =
  | { reached: true; status: number; ok: boolean; headers: Headers; text: string }
  | { reached: false; timedOut: boolean };

/** Sends the request; never throws for an unreachable server or a timeout (`reached: false`). */
export async function httpRequest(url: string, request: HttpRequest): Promise<HttpResult> {
  const { method, form, timeoutMs, redirect } = request;
  let response: Response;
  try {
    response = await fetch(url, {
      ...(method ? { method } : {}),
      headers: {
        ...request.headers,
        ...(form ? { 'Content-Type': 'application/x-www-form-urlencoded' } : {}),
      },
      body: form ? new URLSearchParams(form).toString() : undefined,
      signal: AbortSignal.timeout(timeoutMs),
      ...(redirect ? { redirect } : {}),
    });
  } catch (error) {
    return { reached: false, timedOut: (error as Error)?.name === 'TimeoutError' };
  }
  const text = await response.text();
  return {
    reached: true,
    status: response.status,
    ok: response.ok,
    headers: response.headers,
    text,
  };
}

/**
 * The wait a `Retry-After` header asks for, in whole seconds (rounded up): a number of seconds, or
 * an HTTP date (the time left until then). Undefined when absent, unreadable, or not in the future.
 */
export function retryAfterSeconds(headers: Headers, now = Date.now()): number | undefined {
  const value = headers.get('retry-after')?.trim();
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return seconds > 0 ? Math.ceil(seconds) : undefined;
  const at = Date.parse(value);
  if (Number.isNaN(at) || at <= now) return undefined;
  return Math.ceil((at - now) / 1000);
}
