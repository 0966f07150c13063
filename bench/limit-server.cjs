'use strict';
/**
 * The limit: a bare node:http handler that does only the DiscourseConnect work of a handshake for
 * a known user — HMAC verify (constant time), decode, build the response payload, sign, redirect.
 * No session, no database, no framework. Configuration in BENCH_APP (JSON).
 */
const http = require('node:http');
const { answerHandshake } = require('./limit-handshake.cjs');

const cfg = JSON.parse(process.env.BENCH_APP);
const secret = cfg.forumSecret;
const user = cfg.user;

const server = http.createServer((req, res) => {
  const location = answerHandshake(req.url, secret, user);
  if (typeof location !== 'string') return end(res, location);
  res.writeHead(302, { Location: location, 'Content-Length': '0' });
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
