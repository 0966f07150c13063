'use strict';
/**
 * The Discord bot connection's numbers, against the simulated Discord (bot REST routes with their
 * rate limits, the gateway) and the simulated forum, with the app in this process on SQLite:
 *
 *   A. a reconcile of 10,000 members, none changed: calls to Discord's member listing (target ≤ 10,
 *      the member count known from the gateway) and forum calls (target 0);
 *   B. the same after 100 members' roles changed while no instance held the gateway: forum calls
 *      (target exactly 100, none refused by the forum's admin API rate limit, the module's own);
 *   C. a role change's time from the gateway event (the simulated Discord sends it) to the forum's
 *      `sync_sso`, one change at a time with an idle queue: p50 and p99 (target p99 < 5 s).
 *
 * Part of `npm run bench` (BENCH_ONLY=reconcile for this part alone), or on its own after a build:
 * `node bench/reconcile.cjs`. Knobs: BENCH_RECONCILE_MEMBERS (10000), BENCH_RECONCILE_CHANGED (100),
 * BENCH_RECONCILE_RATE (forum admin API budget and the module's, per minute, 6000),
 * BENCH_RECONCILE_SAMPLES (100).
 */
require('reflect-metadata');
const { mkdtempSync, rmSync } = require('node:fs');
const os = require('node:os');
const { join } = require('node:path');
const { performance } = require('node:perf_hooks');
const { Module } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const { TypeOrmModule } = require('@nestjs/typeorm');
const { EventEmitterModule, EventEmitter2 } = require('@nestjs/event-emitter');
const { DataSource } = require('typeorm');
const {
  DISCOURSE_CONNECT_ENTITIES,
  DISCOURSE_CONNECT_MIGRATIONS,
  DiscourseConnectEvents,
  DiscourseConnectModule,
  DiscourseConnectSyncQueue,
} = require('nestjs-discourse-connect');
const {
  DiscordSimulator,
  DiscourseSimulator,
  SIM_GUILD_ID,
  SIM_GUILD_ROLES,
} = require('nestjs-discourse-connect-simulators');
const { seedLocalUsers } = require('../test/support/seed-local-users.js');

const num = (name, dflt) => (process.env[name] ? Number(process.env[name]) : dflt);
const CFG = {
  members: num('BENCH_RECONCILE_MEMBERS', 10_000),
  changed: num('BENCH_RECONCILE_CHANGED', 100),
  rate: num('BENCH_RECONCILE_RATE', 6000),
  samples: num('BENCH_RECONCILE_SAMPLES', 100),
};
const FORUM_SECRET = 'bench-forum-secret-0123456789';
const API_KEY = 'bench-admin-api-key-0123456789';
const MEMBERS_ROUTE = 'GET /guilds/:guild/members';
const ROLE_MAP = { [SIM_GUILD_ROLES.member]: 'members', [SIM_GUILD_ROLES.moderator]: 'moderators' };

/** The simulated forum, noting when each `sync_sso` arrives (and telling whoever waits for one). */
class RecordingForum extends DiscourseSimulator {
  constructor(options) {
    super(options);
    this.syncs = [];
    this.onSync = null;
  }
  route(req, res, url) {
    if (req.method === 'POST' && url.pathname === '/admin/users/sync_sso') {
      const at = performance.now();
      this.syncs.push(at);
      if (this.onSync) this.onSync(at);
    }
    return super.route(req, res, url);
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
async function waitFor(check, what, timeoutMs = 120_000) {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}
const percentile = (sorted, p) =>
  sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];

/** The app (the module with the bot connection) in this process; resolves once it is initialised. */
async function bootApp(sims, dbFile) {
  const options = {
    forums: [{ url: sims.forumUrl, secret: FORUM_SECRET, api: { key: API_KEY, timeoutMs: 5000 } }],
    discord: {
      clientId: 'bench-client-id',
      clientSecret: 'bench-client-secret',
      baseUrl: sims.discordUrl,
    },
    publicUrl: 'http://127.0.0.1:3999',
    session: { secret: 'bench-session-secret-0123456789abcdef0123' },
    rateLimit: false,
    sync: { ratePerMinute: CFG.rate, pollIntervalMs: 1000 },
    groups: { guildId: SIM_GUILD_ID, roleGroups: ROLE_MAP },
    // Only the boot reconcile runs during the bench.
    bot: { token: sims.discord.botToken, reconcileSeconds: 3600 },
  };
  class BenchBotModule {}
  Module({
    imports: [
      EventEmitterModule.forRoot(),
      TypeOrmModule.forRoot({
        type: 'better-sqlite3',
        database: dbFile,
        enableWAL: true,
        autoLoadEntities: true,
        migrations: DISCOURSE_CONNECT_MIGRATIONS,
        migrationsRun: true,
      }),
      DiscourseConnectModule.forRoot(options),
    ],
  })(BenchBotModule);
  const app = await NestFactory.create(BenchBotModule, { logger: ['error'], abortOnError: false });
  const reconciled = new Promise((resolve) =>
    app.get(EventEmitter2).once(DiscourseConnectEvents.DiscordReconcileFinished, resolve),
  );
  await app.init();
  const queue = app.get(DiscourseConnectSyncQueue);
  const settled = () =>
    waitFor(async () => {
      const c = await queue.counts();
      return c.pending + c.running === 0;
    }, 'the sync queue to settle');
  return { app, reconciled, settled };
}

/** Runs the three measurements; puts them in `report.reconcile`. */
async function benchReconcile(report) {
  const dir = mkdtempSync(join(os.tmpdir(), 'bench-reconcile-'));
  const discord = new DiscordSimulator({
    clientId: 'bench-client-id',
    clientSecret: 'bench-client-secret',
  });
  const forum = new RecordingForum({
    secret: FORUM_SECRET,
    apiKey: API_KEY,
    apiRateLimitPerMinute: CFG.rate,
  });
  const sims = {
    discord,
    forum,
    discordUrl: await discord.listen(0),
    forumUrl: await forum.listen(0),
  };
  let running;
  try {
    // The server: CFG.members members in all (the fixture accounts included), each with the member role.
    const ids = discord.guild.createMembers(CFG.members - discord.guild.memberCount, {
      roles: [SIM_GUILD_ROLES.member],
      dispatch: false,
    });
    // The site: every generated member signed up before, with the roles they have, and a forum account.
    const dbFile = join(dir, 'app.sqlite');
    const migrate = new DataSource({
      type: 'better-sqlite3',
      database: dbFile,
      entities: DISCOURSE_CONNECT_ENTITIES,
      migrations: DISCOURSE_CONNECT_MIGRATIONS,
      migrationsRun: true,
    });
    await migrate.initialize();
    await migrate.destroy();
    seedLocalUsers(dbFile, ids, {
      linkForum: new URL(sims.forumUrl).hostname,
      roles: [SIM_GUILD_ROLES.member],
    });

    // A. Boot: the gateway reports the member count, then the reconcile finds nothing to change.
    discord.resetBotCalls();
    let forumBefore = forum.stats.apiRequests;
    running = await bootApp(sims, dbFile);
    const quiet = await running.reconciled;
    await running.settled();
    const a = {
      members: discord.guild.memberCount,
      local: ids.length,
      listingCalls: discord.stats.botCalls[MEMBERS_ROUTE] ?? 0,
      botCalls: Object.values(discord.stats.botCalls).reduce((n, v) => n + v, 0),
      forumCalls: forum.stats.apiRequests - forumBefore,
      reconcileMs: quiet.durationMs,
      result: quiet,
    };
    await running.app.close();
    running = undefined;

    // B. While no instance holds the gateway, CFG.changed members get the moderator role.
    const step = Math.floor(ids.length / CFG.changed);
    const changedIds = Array.from({ length: CFG.changed }, (_, i) => ids[i * step]);
    for (const id of changedIds)
      discord.guild.setRoles(id, [SIM_GUILD_ROLES.member, SIM_GUILD_ROLES.moderator]);
    discord.resetBotCalls();
    forumBefore = forum.stats.apiRequests;
    const rateLimitedBefore = forum.stats.apiRateLimited;
    forum.syncs.length = 0;
    running = await bootApp(sims, dbFile);
    const changed = await running.reconciled;
    await waitFor(() => forum.syncs.length >= CFG.changed, 'the changed members on the forum');
    await running.settled();
    await sleep(200); // anything more would arrive now
    const spanMs = forum.syncs.at(-1) - forum.syncs[0];
    const b = {
      changed: CFG.changed,
      updated: changed.updated,
      listingCalls: discord.stats.botCalls[MEMBERS_ROUTE] ?? 0,
      forumCalls: forum.stats.apiRequests - forumBefore,
      syncSso: forum.syncs.length,
      rateLimited: forum.stats.apiRateLimited - rateLimitedBefore,
      achievedPerMinute: spanMs > 0 ? ((forum.syncs.length - 1) * 60_000) / spanMs : 0,
      reconcileMs: changed.durationMs,
    };

    // C. One role change at a time through the gateway, the queue idle: event sent → sync_sso.
    await waitFor(() => discord.gateway.openSessions === 1, 'the bot on the gateway');
    const latencies = [];
    const sampled = ids.filter((id) => !changedIds.includes(id)).slice(0, CFG.samples);
    for (const id of sampled) {
      const arrived = new Promise((resolve) => (forum.onSync = resolve));
      const sentAt = performance.now();
      discord.guild.setRoles(id, [SIM_GUILD_ROLES.member, SIM_GUILD_ROLES.moderator]);
      latencies.push((await arrived) - sentAt);
      forum.onSync = null;
      await running.settled();
    }
    latencies.sort((x, y) => x - y);
    const c = {
      samples: latencies.length,
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      max: latencies.at(-1),
    };
    report.reconcile = { config: { ...CFG }, a, b, c };
    return report.reconcile;
  } finally {
    if (running) await running.app.close();
    await Promise.all([discord.close(), forum.close()]);
    rmSync(dir, { recursive: true, force: true });
  }
}

const fmt = (n) => Math.round(n).toLocaleString('en-US');

/** The targets of this part, as run.cjs lists them. */
function reconcileTargets(report) {
  const r = report.reconcile;
  if (!r) return [];
  return [
    {
      name: `Reconcile of ${fmt(r.a.members)} members, 0 changed: ≤ 10 Discord calls, 0 forum calls`,
      met: r.a.listingCalls <= 10 && r.a.forumCalls === 0,
      measured: `${r.a.listingCalls} listing calls, ${r.a.forumCalls} forum calls`,
    },
    {
      name: `Reconcile with ${r.b.changed} changed: exactly ${r.b.changed} forum calls, within the rate limit`,
      met: r.b.forumCalls === r.b.changed && r.b.syncSso === r.b.changed && r.b.rateLimited === 0,
      measured: `${r.b.forumCalls} forum calls (${r.b.syncSso} sync_sso), ${r.b.rateLimited} refused`,
    },
    {
      name: 'Role change, gateway event → forum call: p99 < 5 s',
      met: r.c.p99 < 5000,
      measured: `p50 ${r.c.p50.toFixed(1)} ms, p99 ${r.c.p99.toFixed(1)} ms`,
    },
  ];
}

/** This part's section of the report (Markdown lines). */
function renderReconcile(report) {
  const r = report.reconcile;
  if (!r) return [];
  return [
    `### 5. Discord bot connection (simulated Discord and forum, app in-process on SQLite, forum and module at ${fmt(r.config.rate)}/min)`,
    '',
    '| measurement | Discord listing calls | forum calls | other |',
    '|---|---:|---:|---|',
    `| A. reconcile at boot, ${fmt(r.a.members)} members (${fmt(r.a.local)} local), none changed | ${r.a.listingCalls} | ${r.a.forumCalls} | reconcile ${fmt(r.a.reconcileMs)} ms; all bot-route calls ${r.a.botCalls} |`,
    `| B. reconcile at boot, ${r.b.changed} changed while no gateway was held | ${r.b.listingCalls} | ${r.b.forumCalls} (${r.b.syncSso} sync_sso) | ${r.b.updated} updated; ${r.b.rateLimited} refused by the forum's limit; delivered at ${fmt(r.b.achievedPerMinute)}/min; reconcile ${fmt(r.b.reconcileMs)} ms |`,
    `| C. role change, gateway event → sync_sso, idle queue (${r.c.samples} changes) | | | p50 ${r.c.p50.toFixed(1)} ms, p99 ${r.c.p99.toFixed(1)} ms, max ${r.c.max.toFixed(1)} ms |`,
    '',
  ];
}

module.exports = { benchReconcile, reconcileTargets, renderReconcile };

if (require.main === module) {
  const report = {};
  benchReconcile(report)
    .then(() => {
      const targets = reconcileTargets(report);
      console.log(renderReconcile(report).join('\n'));
      for (const t of targets)
        console.log(`${t.met ? 'met' : 'MISSED'}: ${t.name} (${t.measured})`);
      process.exit(targets.every((t) => t.met) ? 0 : 1);
    })
    .catch((error) => {
      console.error(error);
      process.exit(2);
    });
}
