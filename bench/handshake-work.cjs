'use strict';
/**
 * The module's own CPU work per signed-in handshake, in process: the real DiscourseConnectModule
 * (forRoot, Fastify, SQLite file in a temp dir, the example filter plugin) with a signed-in member,
 * then the Fastify early answer (`SsoHandshakeShortcut.answer`) called N times from a pool of
 * client addresses, and each of its parts on its own. No HTTP, no sockets: CPU µs per call.
 *
 *   npm run bench:work   (builds, then: node -r ./bench/local-library.cjs bench/handshake-work.cjs)
 *
 * BENCH_PARTS=name,… measures only those parts (for a `--cpu-prof` of one); BENCH_LIBRARY=<dir>
 * measures another build of the library (see bench/local-library.cjs), for a before/after.
 *
 * BENCH_N (default 100000) calls per measure, BENCH_ROUNDS (default 3) measures of each. The rate
 * limit is on with its default budgets, as in bench/run.cjs: 8,192 client addresses in turn keep
 * each within its 200 a minute (a refused call would go to the route, and the check throws).
 */
require('reflect-metadata');
const { mkdtempSync, rmSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { dirname, join } = require('node:path');
const { createHmac, randomBytes } = require('node:crypto');
const { Module } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const { TypeOrmModule } = require('@nestjs/typeorm');
const { EventEmitterModule } = require('@nestjs/event-emitter');
const { FastifyAdapter } = require('@nestjs/platform-fastify');
const { DiscourseConnectModule } = require('nestjs-discourse-connect');
const { SsoHandshakeShortcut, SsoService, UsersService, DiscourseConnectSessions } = require(
  // Not public API: the package's built internals, as bench/peer-server.cjs loads them.
  join(dirname(require.resolve('nestjs-discourse-connect/package.json')), 'dist', 'internal.js'),
);
const { DISCORD_FIXTURES } = require('nestjs-discourse-connect-simulators');
const { databaseOptions } = require('../dist/src/database');
const { ForumPlugin } = require('../dist/src/forum.plugin');

const N = Number(process.env.BENCH_N || 100_000);
const IPS = 8192;
const FORUM_URL = 'http://forum.bench.invalid';
const FORUM_SECRET = 'bench-forum-secret-0123456789abcdef';
const HANDSHAKE_ROUTE = { controller: 'SsoController', handler: 'handshake' };

async function boot(dir) {
  const options = {
    forums: [{ url: FORUM_URL, secret: FORUM_SECRET }],
    discord: { clientId: 'bench-client-id', clientSecret: 'bench-client-secret' },
    publicUrl: 'http://127.0.0.1:3000',
    // Long enough that every call of a measure is answered from the caches, as in a burst.
    session: { secret: 'bench-session-secret-0123456789abcdefghijklmnop', readCacheMs: 3_600_000 },
    sync: { ratePerMinute: 60_000, pollIntervalMs: 3_600_000 },
  };
  class BenchWorkModule {}
  Module({
    imports: [
      EventEmitterModule.forRoot(),
      TypeOrmModule.forRoot(databaseOptions(`sqlite:${join(dir, 'bench.sqlite')}`)),
      DiscourseConnectModule.forRoot(options),
    ],
    providers: [ForumPlugin],
  })(BenchWorkModule);
  const app = await NestFactory.create(BenchWorkModule, new FastifyAdapter(), {
    logger: false,
    abortOnError: false,
  });
  await app.init();
  return app;
}

/** A signed-in member: the user as a Discord sign-in writes it, a session naming them, its cookie. */
async function signIn(app) {
  const u = DISCORD_FIXTURES.migrated;
  const meta = {
    id: u.id,
    username: u.username,
    global_name: u.global_name ?? null,
    discriminator: u.discriminator ?? '0',
    avatar: u.avatar ?? null,
    email: u.email,
    verified: u.verified ?? true,
    locale: u.locale ?? null,
  };
  await app
    .get(UsersService, { strict: false })
    .signInFromDiscord(meta, undefined, undefined, false);
  const sessions = app.get(DiscourseConnectSessions, { strict: false });
  const sid = randomBytes(24).toString('base64url');
  const session = {
    cookie: {
      originalMaxAge: 86_400_000,
      expires: new Date(Date.now() + 86_400_000),
      httpOnly: true,
      path: '/',
    },
    passport: { user: meta.id },
  };
  await new Promise((ok, fail) => sessions.store.set(sid, session, (e) => (e ? fail(e) : ok())));
  return { discordId: meta.id, cookie: `s:${sessions.signer.sign(sid)}` };
}

function handshakeUrl() {
  const nonce = randomBytes(16).toString('hex');
  const sso = Buffer.from(
    new URLSearchParams({ nonce, return_sso_url: `${FORUM_URL}/session/sso_login` }).toString(),
  ).toString('base64');
  const sig = createHmac('sha256', FORUM_SECRET).update(sso).digest('hex');
  return { url: `/discourse/sso?${new URLSearchParams({ sso, sig })}`, sso, sig };
}

/**
 * CPU µs (user + system, this process) per call of `fn(i)` over `n` calls, awaiting each when it
 * answers a promise: hardly moved by other processes on the machine.
 */
async function measure(n, fn) {
  const start = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    const r = fn(i);
    if (r && typeof r.then === 'function') await r;
  }
  const used = process.cpuUsage(start);
  return (used.user + used.system) / n;
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'handshake-work-'));
  const app = await boot(dir);
  try {
    const shortcut = app.get(SsoHandshakeShortcut, { strict: false });
    const sso = app.get(SsoService, { strict: false });
    const users = app.get(UsersService, { strict: false });
    // The guard instance the early answer counts with.
    const limit = shortcut.rateLimit;
    const { discordId, cookie } = await signIn(app);
    const hs = handshakeUrl();
    const ips = Array.from(
      { length: IPS },
      (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
    );
    const req = (i) => ({
      method: 'GET',
      url: hs.url,
      headers: { cookie: `sid=${cookie}`, host: '127.0.0.1:3000' },
      socket: { remoteAddress: '127.0.0.1' },
      _i: i,
    });
    // Every answer must be the signed redirect (and the same one every time).
    const first = await shortcut.answer(req(0), cookie, ips[0]);
    if (typeof first !== 'string' || !first.startsWith(`${FORUM_URL}/session/sso_login?sso=`))
      throw new Error(`the early answer did not redirect to the forum: ${first}`);
    const request = sso.verifyRequest({ sso: hs.sso, sig: hs.sig });
    const user = await users.findSignedIn(discordId);

    const parts = {
      'answer (total)': async (i) => {
        const location = await shortcut.answer(req(i), cookie, ips[i % IPS]);
        if (location !== first) throw new Error(`a different answer at call ${i}: ${location}`);
      },
      verifyRequest: () => sso.verifyRequest({ sso: hs.sso, sig: hs.sig }),
      findSignedIn: () => users.findSignedIn(discordId),
      admitSignedInHandshake: (i) =>
        limit.admitSignedInHandshake(
          { ip: ips[i % IPS], headers: {}, socket: { remoteAddress: '127.0.0.1' } },
          {},
          HANDSHAKE_ROUTE,
        ),
      buildResponseUrl: () => sso.buildResponseUrl(request, user),
    };
    // BENCH_PARTS=name,name measures only those (for a profile of one part).
    if (process.env.BENCH_PARTS) {
      const only = process.env.BENCH_PARTS.split(',');
      for (const name of Object.keys(parts)) if (!only.includes(name)) delete parts[name];
    }
    // A warm-up, then the measures.
    const rounds = Number(process.env.BENCH_ROUNDS || 3);
    const results = {};
    for (const name of Object.keys(parts)) results[name] = [];
    for (let round = 0; round < rounds; round++) {
      for (const [name, fn] of Object.entries(parts)) {
        if (round === 0) await measure(Math.min(N, 20_000), fn);
        results[name].push(await measure(N, fn));
      }
    }
    console.log(
      `${N} calls per measure, ${IPS} client addresses, best of ${rounds} rounds, CPU time:`,
    );
    for (const [name, list] of Object.entries(results))
      console.log(
        `  ${name.padEnd(24)} ${Math.min(...list)
          .toFixed(2)
          .padStart(7)} µs/call`,
      );
  } finally {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
