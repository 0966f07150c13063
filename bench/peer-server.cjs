'use strict';
/**
 * The peer: the `discourse-sso` npm package in a minimal Express app with express-session, on the
 * same session store as the app (the module's TypeORM store on SQLite in WAL mode, same cookie
 * settings). The signed-in user lives in the session. Configuration in BENCH_APP (JSON).
 */
require('reflect-metadata');
const express = require('express');
const session = require('express-session');
const DiscourseSSO = require('discourse-sso');
const { DataSource } = require('typeorm');
// The peer keeps its sessions in the module's own store and table, so both sides pay the same
// session cost. The store is not public API: it comes from the package's built internals.
const { dirname, join: joinPath } = require('node:path');
const internals = joinPath(
  dirname(require.resolve('nestjs-discourse-connect/package.json')),
  'dist',
  'internal.js',
);
const {
  TypeOrmSessionStore,
  DiscourseConnectSessionEntity,
  DISCOURSE_CONNECT_MIGRATIONS,
} = require(internals);

const cfg = JSON.parse(process.env.BENCH_APP);

async function main() {
  const dataSource = new DataSource({
    type: 'better-sqlite3',
    database: cfg.dbFile,
    enableWAL: true,
    entities: [DiscourseConnectSessionEntity],
    migrations: DISCOURSE_CONNECT_MIGRATIONS,
    migrationsRun: true,
  });
  await dataSource.initialize();
  const store = new TypeOrmSessionStore(
    dataSource.getRepository(DiscourseConnectSessionEntity),
    14 * 86_400_000,
  );
  const sso = new DiscourseSSO(cfg.forumSecret);
  const app = express();
  app.use(
    session({
      name: 'peer.sid',
      secret: cfg.sessionSecret,
      store,
      resave: false,
      saveUninitialized: false,
      rolling: false,
      cookie: {
        httpOnly: true,
        sameSite: 'lax',
        secure: false,
        maxAge: 14 * 86_400_000,
        path: '/',
      },
    }),
  );
  app.get('/login', (req, res) => {
    req.session.user = cfg.user;
    res.redirect('/');
  });
  app.get('/discourse/sso', (req, res) => {
    const user = req.session.user;
    if (!user) return res.status(401).end();
    const { sso: payload, sig } = req.query;
    if (typeof payload !== 'string' || typeof sig !== 'string' || !sso.validate(payload, sig))
      return res.status(403).end();
    const nonce = sso.getNonce(payload);
    const login = sso.buildLoginString({
      nonce,
      external_id: user.id,
      email: user.email,
      username: user.username,
      name: user.name,
      avatar_url: user.avatarUrl,
    });
    res.redirect(`${cfg.forumUrl}/session/sso_login?${login}`);
  });
  const server = app.listen(cfg.port, '127.0.0.1', () => process.send({ type: 'ready' }));
  process.on('message', (msg) => {
    if (msg.type === 'cpu') process.send({ type: 'cpu', cpu: process.cpuUsage() });
    if (msg.type === 'stop') server.close(() => process.exit(0));
  });
}

process.on('disconnect', () => process.exit(0));
main().catch((err) => {
  console.error(err);
  process.exit(1);
});
