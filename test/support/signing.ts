import { createHmac } from 'node:crypto';
import { FORUM_SECRET } from './harness';

/**
 * DiscourseConnect signing as a forum does it, written here for the tests (not the library's
 * codec): base64 of the payload text, HMAC-SHA256 hex of that base64 with the forum's secret.
 */
export const b64 = (data: string | Buffer): string => Buffer.from(data).toString('base64');

export const hmac = (text: string | Buffer, secret = FORUM_SECRET): string =>
  createHmac('sha256', secret).update(text).digest('hex');

/** A fresh webhook event id per delivery in this test process (an id is accepted once per forum). */
let lastEventId = Date.now();
export const nextEventId = (): string => String(++lastEventId);
