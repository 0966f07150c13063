'use strict';
/**
 * The limit: a bare node:http handler that does only the DiscourseConnect work of a handshake for
 * a known user — HMAC verify (constant time), decode, build the response payload, sign, redirect.
 * No session, no database, no framework. Configuration in BENCH_APP (JSON).
 */
const http = require('node:http');
const { createHmac, timingSafeEqual } = require('node:crypto');

const cfg = JSON.parse(process.env.BENCH_APP);
const secret = cfg.forumSecret;
const user = cfg.user;

const server = http.createServer((req, res) => {
  const q = new URLSearchParams(req.url.slice(req.url.indexOf('?') + 1));
  const sso = q.get('sso');
  const sig = q.get('sig');
  if (!sso || !sig || !/^[0-9a-f]{64}$/.test(sig)) return end(res, 400);
  const expected = createHmac('sha256', secret).update(sso).digest();
  if (!timingSafeEqual(expected, Buffer.from(sig, 'hex'))) return end(res, 403);
  const inbound = new URLSearchParams(Buffer.from(sso, 'base64').toString('utf8'));
  const nonce = inbound.get('nonce');
  const returnUrl = inbound.get('return_sso_url');
  if (!nonce || !returnUrl) return end(res, 400);
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
  res.writeHead(302, {
    Location: `${returnUrl}?${new URLSearchParams({ sso: payload, sig: outSig })}`,
    'Content-Length': '0',
  });
  res.end();
});

function end(res, status) {
  res.writeHead(status, { 'Content-Length': '0' });
  res.end();
}

process.on('message', (msg) => {
  if (msg.type === 'cpu') process.send({ type: 'cpu', cpu: process.cpuUsage() });
  if (msg.type === 'stop') server.close(() => process.exit(0));
});
process.on('disconnect', () => process.exit(0));
server.listen(cfg.port, '127.0.0.1', () => process.send({ type: 'ready' }));
