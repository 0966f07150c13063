'use strict';
/**
 * The framework floor: what Nest on Fastify costs a handshake with no module logic at all. A Nest
 * 12 app on `@nestjs/platform-fastify` (trusted proxy on loopback, as the app in the bench) with
 * `@fastify/cookie` and `@fastify/session` registered as the module registers them, one route at
 * the SSO path, and one `onRequest` hook where the module's early answer sits that does exactly
 * the limit's work (bench/limit-server.cjs: HMAC verify, decode, build, sign) and answers with the
 * module's headers through Fastify's reply. No session read, no user lookup, no rate limit, no
 * filter. The app's ratio to the limit cannot pass this one's. Configuration in BENCH_APP (JSON).
 */
require('reflect-metadata');
const { Controller, Get, Module } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const { FastifyAdapter } = require('@nestjs/platform-fastify');
const { answerHandshake } = require('./limit-handshake.cjs');

const cfg = JSON.parse(process.env.BENCH_APP);
const secret = cfg.forumSecret;
const user = cfg.user;

/** The headers the module sends on a handshake (its security headers, then the route's). */
const HEADERS = {
  'content-security-policy':
    "default-src 'none';style-src 'unsafe-inline';img-src 'self' data:;form-action 'self';frame-ancestors 'none';base-uri 'none'",
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'origin-agent-cluster': '?1',
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'x-dns-prefetch-control': 'off',
  'x-download-options': 'noopen',
  'x-frame-options': 'DENY',
  'x-permitted-cross-domain-policies': 'none',
  'x-xss-protection': '0',
  'cache-control': 'no-store',
};

class SsoController {
  handshake() {
    return 'not answered early';
  }
}
Controller('discourse')(SsoController);
Get('sso')(
  SsoController.prototype,
  'handshake',
  Object.getOwnPropertyDescriptor(SsoController.prototype, 'handshake'),
);
class FloorModule {}
Module({ controllers: [SsoController] })(FloorModule);

async function main() {
  const app = await NestFactory.create(
    FloorModule,
    new FastifyAdapter({ trustProxy: '127.0.0.1' }),
    { logger: false },
  );
  const fastify = app.getHttpAdapter().getInstance();
  await fastify.register(require('@fastify/cookie'));
  fastify.addHook('onRequest', (req, reply, done) => {
    if (req.method !== 'GET' || !req.url.startsWith('/discourse/sso?')) return done();
    // Asynchronous, as the module's answer is (it awaits its caches and the rate limit).
    void Promise.resolve(req.url).then((url) => {
      const location = answerHandshake(url, secret, user);
      if (typeof location !== 'string') return done();
      reply.headers(HEADERS);
      reply.redirect(location, 302);
    });
  });
  await fastify.register(require('@fastify/session'), {
    cookieName: 'connect.sid',
    secret: cfg.sessionSecret,
    saveUninitialized: false,
    rolling: false,
    cookie: { secure: false, httpOnly: true, sameSite: 'lax', path: '/' },
  });
  await app.listen(cfg.port, '127.0.0.1');
  process.on('message', (msg) => {
    if (msg.type === 'cpu') process.send({ type: 'cpu', cpu: process.cpuUsage() });
    if (msg.type === 'stop') void app.close().finally(() => process.exit(0));
  });
  process.on('disconnect', () => process.exit(0));
  process.send({ type: 'ready' });
}

void main();
