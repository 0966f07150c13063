'use strict';
/**
 * The DiscourseConnect work of a handshake for a known user and nothing else, shared by the limit
 * (bench/limit-server.cjs) and the framework floor (bench/floor-server.cjs): HMAC verify (constant
 * time), decode, build the response payload, sign. The redirect's Location (a string), or the
 * status (a number) a refused request gets.
 */
const { createHmac, timingSafeEqual } = require('node:crypto');

function answerHandshake(url, secret, user) {
  const q = new URLSearchParams(url.slice(url.indexOf('?') + 1));
  const sso = q.get('sso');
  const sig = q.get('sig');
  if (!sso || !sig || !/^[0-9a-f]{64}$/.test(sig)) return 400;
  const expected = createHmac('sha256', secret).update(sso).digest();
  if (!timingSafeEqual(expected, Buffer.from(sig, 'hex'))) return 403;
  const inbound = new URLSearchParams(Buffer.from(sso, 'base64').toString('utf8'));
  const nonce = inbound.get('nonce');
  const returnUrl = inbound.get('return_sso_url');
  if (!nonce || !returnUrl) return 400;
  const payload = Buffer.from(
    new URLSearchParams({
      nonce,
      external_id: user.id,
      email: user.email,
      username: user.username,
      name: user.name,
      avatar_url: user.avatarUrl,
    }).toString(),
  ).toString('base64');
  const outSig = createHmac('sha256', secret).update(payload).digest('hex');
  return `${returnUrl}?${new URLSearchParams({ sso: payload, sig: outSig })}`;
}

module.exports = { answerHandshake };
