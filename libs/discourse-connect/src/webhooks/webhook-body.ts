/**
 * Shape checks for Discourse's user webhooks, done before anything is written. Plain TypeScript:
 * nothing of Nest or TypeORM, so it can be tested (and reused) on its own.
 *
 * Only the body is signed (HMAC-SHA256 of the raw bytes); `X-Discourse-Event-Id`, `X-Discourse-Event`
 * and `X-Discourse-Instance` are not, so nothing that guards a replay may rest on them alone.
 */

/** Largest forum user id: Discourse's `users.id` (and the module's `forum_user_id`) is a 32-bit integer. */
export const MAX_FORUM_USER_ID = 2_147_483_647;
/** Longest username Discourse allows (`max_username_length` cannot exceed 60). */
export const MAX_FORUM_USERNAME_LENGTH = 60;
/** Longest `external_id` accepted (Discord ids are at most 20 digits; anything else is not linked). */
export const MAX_EXTERNAL_ID_LENGTH = 255;
/** Longest text accepted in the other string fields the module reads or may read. */
export const MAX_TEXT_LENGTH = 2000;
/** Longest timestamp text (`2024-01-02T03:04:05.678Z` is 24 characters). */
const MAX_TIMESTAMP_LENGTH = 64;

/** A user webhook's `user`, after the shape checks. */
export interface WebhookUser {
  id: number;
  username: string;
  /** The Discord id when `external_id` is a canonical one, else null (the account is not linked). */
  discordId: string | null;
  /**
   * Ordering key of the body (epoch ms): the latest of `updated_at` and `last_seen_at` when the body
   * carries either, else null (oldest). Both only move forward for one forum user, so a body with a
   * smaller key describes an older state of that user.
   */
  version: number | null;
  /**
   * Member lifecycle: `suspended_till` (epoch ms) when the body has one (the forum shows it only
   * while the user is suspended), else null.
   */
  suspendedTill: number | null;
}

export type WebhookBodyCheck =
  { ok: true; user: WebhookUser | null } | { ok: false; problem: string };

/**
 * A delivery id of the `X-Discourse-Event-Id` header: a positive safe integer in canonical decimal
 * (no sign, no leading zero, no exponent), or null.
 */
export function parseEventId(header: string | undefined): string | null {
  if (header === undefined || !/^[1-9][0-9]{0,15}$/.test(header)) return null;
  return Number.isSafeInteger(Number(header)) ? header : null;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const optionalText = (value: unknown, max: number): boolean =>
  value === undefined || value === null || (typeof value === 'string' && value.length <= max);

/** Epoch ms of a timestamp field: undefined when absent or null, NaN when not a valid time. */
function timestampOf(value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (
    typeof value !== 'string' ||
    value.length > MAX_TIMESTAMP_LENGTH ||
    !/^\d{4}-\d{2}-\d{2}T/.test(value)
  ) {
    return Number.NaN;
  }
  const ms = Date.parse(value);
  return Number.isFinite(ms) ? ms : Number.NaN;
}

/**
 * Checks a parsed webhook body. `userRequired`: the event is one the module applies (`user_created`,
 * `user_updated`, and the lifecycle ones), so `user` must be there. Any `user` present is checked, whatever the event.
 */
export function checkWebhookBody(body: unknown, userRequired: boolean): WebhookBodyCheck {
  if (!isObject(body)) return { ok: false, problem: 'The webhook body is not a JSON object.' };
  const user = body.user;
  if (user === undefined) {
    return userRequired
      ? { ok: false, problem: 'The webhook has no user in its body.' }
      : { ok: true, user: null };
  }
  if (!isObject(user)) return { ok: false, problem: 'The webhook user is not an object.' };
  if (
    typeof user.id !== 'number' ||
    !Number.isSafeInteger(user.id) ||
    user.id < 1 ||
    user.id > MAX_FORUM_USER_ID
  ) {
    return { ok: false, problem: 'The webhook user id is not a positive integer.' };
  }
  if (
    typeof user.username !== 'string' ||
    user.username.length === 0 ||
    user.username.length > MAX_FORUM_USERNAME_LENGTH ||
    /[\u0000-\u001f\u007f]/.test(user.username)
  ) {
    return { ok: false, problem: 'The webhook username is not a valid forum username.' };
  }
  if (!optionalText(user.external_id, MAX_EXTERNAL_ID_LENGTH)) {
    return { ok: false, problem: 'The webhook external_id is not a string.' };
  }
  for (const field of ['name', 'email', 'avatar_template']) {
    if (!optionalText(user[field], MAX_TEXT_LENGTH)) {
      return { ok: false, problem: `The webhook user's ${field} is not a string.` };
    }
  }
  const times: number[] = [];
  for (const field of ['updated_at', 'last_seen_at']) {
    const ms = timestampOf(user[field]);
    if (ms === undefined) continue;
    if (Number.isNaN(ms))
      return { ok: false, problem: `The webhook user's ${field} is not a timestamp.` };
    times.push(ms);
  }
  const suspendedTill = timestampOf(user.suspended_till);
  if (Number.isNaN(suspendedTill))
    return { ok: false, problem: "The webhook user's suspended_till is not a timestamp." };
  const externalId = user.external_id;
  const discordId =
    typeof externalId === 'string' &&
    /^[1-9][0-9]{0,19}$/.test(externalId) &&
    (externalId.length < 20 || externalId <= '18446744073709551615')
      ? externalId
      : null;
  return {
    ok: true,
    user: {
      id: user.id,
      username: user.username,
      discordId,
      version: times.length > 0 ? Math.max(...times) : null,
      suspendedTill: suspendedTill ?? null,
    },
  };
}
