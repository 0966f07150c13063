import type { INestApplication } from '@nestjs/common';
import { SsoHandshakeShortcut } from 'nestjs-discourse-connect/internal';
import { FORUM_SECRET } from './harness';
import { b64, hmac } from './signing';

/** The forum's signed-in handshake request, signed with the forum secret; `extra` is appended to the query. */
export function signedHandshakeUrl(
  h: { mountUrl: string; forumUrl: string },
  nonce: string,
  extra = '',
): string {
  const sso = b64(
    new URLSearchParams({ nonce, return_sso_url: `${h.forumUrl}/session/sso_login` }).toString(),
  );
  return `${h.mountUrl}/discourse/sso?${new URLSearchParams({ sso, sig: hmac(sso, FORUM_SECRET) })}${extra}`;
}

/**
 * Records what the early handshake answer gives for each request (its Location, or undefined when
 * it left the request to the route) until `stop()`. With `decline`, it leaves every request to the
 * route.
 */
export function watchEarlyAnswers(
  app: INestApplication,
  options: { decline?: boolean } = {},
): { answers: (string | undefined)[]; stop(): void } {
  const shortcut = app.get(SsoHandshakeShortcut);
  const answers: (string | undefined)[] = [];
  const answer = shortcut.answer.bind(shortcut);
  const spy = jest.spyOn(shortcut, 'answer').mockImplementation((...args) => {
    const pending = options.decline ? Promise.resolve(undefined) : answer(...args);
    void pending?.then((location) => answers.push(location));
    return pending;
  });
  return { answers, stop: () => spy.mockRestore() };
}
