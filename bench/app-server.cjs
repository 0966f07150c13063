'use strict';
/**
 * The app under test, in its own process: the real DiscourseConnectModule (forRoot) with the
 * example filter plugin, SQLite (WAL) with the module's TypeORM session store, on the HTTP adapter
 * `cfg.adapter` (express or fastify). Started by bench/run.cjs through fork(); configuration in BENCH_APP (JSON); talks over IPC.
 */
require('reflect-metadata');
const { Module } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const { TypeOrmModule } = require('@nestjs/typeorm');
const { EventEmitterModule } = require('@nestjs/event-emitter');
const { DiscourseConnectModule } = require('nestjs-discourse-connect');
const { databaseOptions } = require('../dist/src/database');
const { ForumPlugin } = require('../dist/src/forum.plugin');

const cfg = JSON.parse(process.env.BENCH_APP);

/** Counts SQL statements (TypeORM calls logQuery for every statement it runs). */
const sql = { total: 0, tx: 0, byKey: {} };
const countingLogger = {
  logQuery(query) {
    const q = String(query).trim();
    if (/^(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE)/i.test(q)) {
      sql.tx++;
      return;
    }
    sql.total++;
    if (process.env.BENCH_TRACE) process.stderr.write(`      SQL ${q.slice(0, 100)}\n`);
    const verb = q.split(/\s+/, 1)[0].toUpperCase();
    const table = (q.match(/(?:FROM|INTO|UPDATE)\s+["`]?(\w+)/i) || [])[1] || '?';
    const key = `${verb} ${table.replace(/^discourse_connect_/, '')}`;
    sql.byKey[key] = (sql.byKey[key] || 0) + 1;
  },
  logQueryError() {},
  logQuerySlow() {},
  logSchemaBuild() {},
  logMigration() {},
  log() {},
};

async function main() {
  const forum = { url: cfg.forumUrl, secret: cfg.forumSecret };
  if (cfg.apiKey) forum.api = { key: cfg.apiKey, timeoutMs: 5000 };
  const options = {
    forums: [forum],
    discord: { clientId: cfg.clientId, clientSecret: cfg.clientSecret, baseUrl: cfg.discordUrl },
    publicUrl: `http://127.0.0.1:${cfg.port}`,
    session: { secret: cfg.sessionSecret },
    // The module's rate limit as it is by default (on, default budgets); the load comes through
    // one trusted proxy hop from many client addresses (see `load` in run.cjs).
    // The worker wakes on every enqueue; a long poll keeps idle polling out of the counts.
    sync: { ratePerMinute: 60_000, pollIntervalMs: 3_600_000 },
    ...(cfg.groups ? { groups: cfg.groups } : {}),
  };
  const db = {
    ...databaseOptions(`sqlite:${cfg.dbFile}`),
    ...(cfg.countSql ? { logger: countingLogger } : {}),
  };

  class BenchAppModule {}
  Module({
    imports: [
      EventEmitterModule.forRoot(),
      TypeOrmModule.forRoot(db),
      DiscourseConnectModule.forRoot(options),
    ],
    providers: [ForumPlugin],
  })(BenchAppModule);

  const appOptions = { logger: false, rawBody: true, abortOnError: false };
  const app =
    cfg.adapter === 'fastify'
      ? await NestFactory.create(
          BenchAppModule,
          new (require('@nestjs/platform-fastify').FastifyAdapter)({ trustProxy: '127.0.0.1' }),
          appOptions,
        )
      : await NestFactory.create(BenchAppModule, appOptions);
  if (cfg.adapter !== 'fastify') app.getHttpAdapter().getInstance().set('trust proxy', 'loopback');
  await app.listen(cfg.port, '127.0.0.1');
  sql.total = 0;
  sql.tx = 0;
  sql.byKey = {};

  process.on('message', (msg) => {
    if (msg.type === 'sql') process.send({ type: 'sql', sql: JSON.parse(JSON.stringify(sql)) });
    if (msg.type === 'resetSql') {
      sql.total = 0;
      sql.tx = 0;
      sql.byKey = {};
      process.send({ type: 'resetSql' });
    }
    if (msg.type === 'memory') {
      if (global.gc) global.gc();
      process.send({ type: 'memory', memory: process.memoryUsage() });
    }
    if (msg.type === 'cpu') process.send({ type: 'cpu', cpu: process.cpuUsage() });
    if (msg.type === 'stop') void app.close().finally(() => process.exit(0));
  });
  process.send({ type: 'ready' });
}

process.on('disconnect', () => process.exit(0));
main().catch((err) => {
  console.error(err);
  process.exit(1);
});
