'use strict';
/**
 * `npm run bench`: the numbers of issue 7, measured in one run on this machine, each next to a
 * reference measured in the same run. Prints a Markdown report and exits 1 when a target is missed.
 *
 *   1. SSO handshake (signed-in user, full stack) vs a bare node:http handler (the limit) and the
 *      `discourse-sso` package on Express + express-session (the peer), with autocannon on loopback.
 *   2. Sign-in cost: SQL statements, Discourse and Discord calls of a first, an unchanged and a
 *      changed sign-in, counted.
 *   3. `sync --all` against the simulated forum with a rate limit: achieved share of the allowed
 *      rate, lost, duplicated, peak RSS of the CLI at two sizes.
 *   4. Memory of the app idle and after 10,000 handshakes.
 *
 * Knobs (environment): BENCH_DURATION (s per handshake round, 10), BENCH_ROUNDS (2),
 * BENCH_CONNECTIONS (32), BENCH_SYNC_USERS (10000), BENCH_SYNC_SMALL (1000),
 * BENCH_SYNC_RATE (per minute, 12000), BENCH_OUT (also write the report to this file),
 * BENCH_CPU_PROF (directory: run the app under --cpu-prof there), BENCH_ONLY (comma list of
 * handshake,signin,sync,memory,reconcile; reconcile is the Discord bot connection, bench/reconcile.cjs), BENCH_ADAPTERS (comma list of fastify,express; both by default),
 * BENCH_TRACE (print every request of the sign-ins).
 */
// This checkout's library and simulators, whatever node_modules links to (see local-library.cjs).
const LOCAL_LIBRARY = require.resolve('./local-library.cjs');
const { LIBRARY_DIR } = require(LOCAL_LIBRARY);
const { fork, spawn } = require('node:child_process');
const { createHmac, randomBytes } = require('node:crypto');
const {
  mkdtempSync,
  rmSync,
  readFileSync,
  writeFileSync,
  existsSync,
  mkdirSync,
  openSync,
  closeSync,
} = require('node:fs');
const { createServer } = require('node:net');
const os = require('node:os');
const { join, resolve } = require('node:path');
const autocannon = require('autocannon');
const Database = require('better-sqlite3');
const {
  DiscordSimulator,
  DiscourseSimulator,
  DISCORD_FIXTURES,
  SIM_GUILD_ID,
  SIM_GUILD_ROLES,
} = require('nestjs-discourse-connect-simulators');
const {
  seedLocalUsers,
  seededDiscordId: discordId,
} = require('../test/support/seed-local-users.js');

const ROOT = resolve(__dirname, '..');
const num = (name, dflt) => (process.env[name] ? Number(process.env[name]) : dflt);
const CFG = {
  duration: num('BENCH_DURATION', 10),
  rounds: num('BENCH_ROUNDS', 2),
  connections: num('BENCH_CONNECTIONS', 32),
  memoryHandshakes: 10_000,
  memoryHandshakesLong: num('BENCH_MEMORY_HANDSHAKES', 100_000),
  syncUsers: num('BENCH_SYNC_USERS', 10_000),
  syncSmall: num('BENCH_SYNC_SMALL', 1_000),
  syncRate: num('BENCH_SYNC_RATE', 12_000),
  only: process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',')) : null,
  cpuProf: process.env.BENCH_CPU_PROF ? resolve(process.env.BENCH_CPU_PROF) : null,
};
const want = (part) => !CFG.only || CFG.only.has(part);

const FORUM_SECRET = 'bench-forum-secret-0123456789';
const SESSION_SECRET = 'bench-session-secret-0123456789abcdef0123';
const API_KEY = 'bench-admin-api-key-0123456789';
const CLIENT = { clientId: 'bench-client-id', clientSecret: 'bench-client-secret' };

// ---------------------------------------------------------------- child processes

const children = new Set();
const tmpDirs = [];
function cleanup() {
  for (const child of children) {
    try {
      child.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
  children.clear();
  for (const dir of tmpDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    cleanup();
    process.exit(130);
  });
}

function tmpDir(prefix) {
  const dir = mkdtempSync(join(os.tmpdir(), prefix));
  tmpDirs.push(dir);
  return dir;
}

async function freePort() {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => done(port));
    });
  });
}

/** Forks a bench server script and resolves once it says it is ready. */
function startServer(script, config, execArgv = []) {
  return new Promise((done, fail) => {
    const child = fork(join(__dirname, script), [], {
      cwd: ROOT,
      env: { ...process.env, BENCH_APP: JSON.stringify(config) },
      execArgv: ['-r', LOCAL_LIBRARY, ...execArgv],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    children.add(child);
    child.once('exit', (code) => {
      children.delete(child);
      fail(new Error(`${script} exited with code ${code} before it was ready`));
    });
    const onMessage = (msg) => {
      if (msg.type !== 'ready') return;
      child.off('message', onMessage);
      done({
        child,
        url: `http://127.0.0.1:${config.port}`,
        ask: (type) => ask(child, type),
        stop: () => stopServer(child),
      });
    };
    child.on('message', onMessage);
  });
}

function ask(child, type) {
  return new Promise((done) => {
    const onMessage = (msg) => {
      if (msg.type !== type) return;
      child.off('message', onMessage);
      done(msg);
    };
    child.on('message', onMessage);
    child.send({ type });
  });
}

function stopServer(child) {
  return new Promise((done) => {
    if (child.exitCode !== null) return done();
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.removeAllListeners('exit');
    child.once('exit', () => {
      clearTimeout(timer);
      children.delete(child);
      done();
    });
    child.send({ type: 'stop' });
  });
}

// ---------------------------------------------------------------- a cookie-keeping client

/** Follows redirects one hop at a time and keeps cookies per host:port (each server its own). */
class Browser {
  constructor() {
    this.jars = new Map();
  }
  cookieHeader(url) {
    const jar = this.jars.get(new URL(url).host);
    return jar ? [...jar].map(([k, v]) => `${k}=${v}`).join('; ') : '';
  }
  async visit(url, maxHops = 20) {
    let current = url;
    for (let hop = 0; ; hop++) {
      const cookie = this.cookieHeader(current);
      const res = await fetch(current, { redirect: 'manual', headers: cookie ? { cookie } : {} });
      if (process.env.BENCH_TRACE)
        log(`    ${res.status} ${new URL(current).origin}${new URL(current).pathname}`);
      const host = new URL(current).host;
      for (const line of res.headers.getSetCookie()) {
        const pair = line.split(';')[0];
        const eq = pair.indexOf('=');
        if (!this.jars.has(host)) this.jars.set(host, new Map());
        this.jars.get(host).set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
      }
      const location = res.headers.get('location');
      await res.arrayBuffer();
      if (res.status >= 300 && res.status < 400 && location && hop < maxHops) {
        current = new URL(location, current).toString();
        continue;
      }
      return { url: current, status: res.status };
    }
  }
}

// ---------------------------------------------------------------- the handshake

/** `/discourse/sso?sso=…&sig=…` as the forum sends it (one nonce is fine: nonces are not tracked). */
function handshakePath(forumUrl) {
  const nonce = randomBytes(16).toString('hex');
  const sso = Buffer.from(
    new URLSearchParams({ nonce, return_sso_url: `${forumUrl}/session/sso_login` }).toString(),
  ).toString('base64');
  const sig = createHmac('sha256', FORUM_SECRET).update(sso).digest('hex');
  return { path: `/discourse/sso?${new URLSearchParams({ sso, sig })}`, nonce };
}

/** One request by hand: a 302 to the forum with a valid signature and our nonce, or it throws. */
async function checkHandshake(name, url, cookie, nonce, forumUrl) {
  const res = await fetch(url, {
    redirect: 'manual',
    headers: cookie ? { cookie } : {},
    signal: AbortSignal.timeout(10_000),
  });
  const location = res.headers.get('location') || '';
  if (res.status !== 302 || !location.startsWith(`${forumUrl}/session/sso_login?`)) {
    throw new Error(`${name}: expected a 302 to the forum, got ${res.status} ${location}`);
  }
  const q = new URL(location).searchParams;
  const expected = createHmac('sha256', FORUM_SECRET).update(q.get('sso')).digest('hex');
  const fields = new URLSearchParams(Buffer.from(q.get('sso'), 'base64').toString('utf8'));
  if (q.get('sig') !== expected || fields.get('nonce') !== nonce || !fields.get('external_id')) {
    throw new Error(`${name}: the response payload is not valid`);
  }
}

/**
 * Client addresses of the load, as a reverse proxy reports them (`X-Forwarded-For`, one trusted
 * hop on the app servers): 8,192 of them in turn, so that the module's per-IP rate limit, on with
 * its default budgets as users run it (200 handshakes a minute per address), counts every
 * handshake without refusing the load (up to ≈ 27,000 handshakes per second). All of them are in
 * use within the first 10,000 handshakes, so the limiter's memory does not grow after that.
 */
let nextClient = 0;
const clientAddress = () => {
  const n = nextClient++ & 0x1fff;
  return `10.77.${n >> 8}.${n & 0xff}`;
};

async function load(url, cookie, opts) {
  const result = await autocannon({
    url,
    connections: CFG.connections,
    headers: cookie ? { cookie } : {},
    requests: [
      {
        setupRequest: (req) => ({
          ...req,
          headers: { ...req.headers, 'x-forwarded-for': clientAddress() },
        }),
      },
    ],
    ...opts,
  });
  const ok = result['3xx'];
  const bad =
    result['1xx'] + result['2xx'] + result['4xx'] + result['5xx'] + result.errors + result.timeouts;
  if (bad && process.env.BENCH_TRACE)
    log(`    non-redirect answers by status: ${JSON.stringify(result.statusCodeStats)}`);
  return {
    rps: ok / (result.duration || 1),
    p50: result.latency.p50,
    p99: result.latency.p99,
    ok,
    bad,
  };
}

const SIGNED_IN = DISCORD_FIXTURES.migrated;
const benchUser = (u) => ({
  id: u.id,
  email: u.email,
  username: u.username,
  name: u.global_name ?? u.username,
  avatarUrl: `https://cdn.discordapp.com/avatars/${u.id}/${u.avatar}.png`,
});

async function startSimulators(forumOptions = {}) {
  const discord = new DiscordSimulator({ ...CLIENT });
  const forum = new DiscourseSimulator({ ...forumOptions, secret: FORUM_SECRET });
  const discordUrl = await discord.listen(0);
  const forumUrl = await forum.listen(0);
  return {
    discord,
    forum,
    discordUrl,
    forumUrl,
    close: () => Promise.all([discord.close(), forum.close()]),
  };
}

async function startApp(sims, extra = {}, execArgv = []) {
  const port = await freePort();
  const appUrl = `http://127.0.0.1:${port}`;
  sims.discord.redirectUris = [`${appUrl}/auth/discord/callback`];
  sims.forum.connectUrl = `${appUrl}/discourse/sso`;
  sims.forum.logoutRedirect = `${appUrl}/discourse/logout`;
  const dbFile = join(tmpDir('bench-app-'), 'app.sqlite');
  const server = await startServer(
    'app-server.cjs',
    {
      port,
      forumUrl: sims.forumUrl,
      forumSecret: FORUM_SECRET,
      discordUrl: sims.discordUrl,
      ...CLIENT,
      sessionSecret: SESSION_SECRET,
      dbFile,
      ...extra,
    },
    execArgv,
  );
  return { ...server, dbFile };
}

/**
 * The demo host as users run it: `node dist/src/main.js` with the Discord and forum variables
 * pointed at the simulators (not the sandbox), its JSON access log on and stdout going to a file.
 * Answers like the forked servers (`url`, `stop`), with CPU time read from /proc.
 */
async function startDemoHost(sims, execArgv = []) {
  const port = await freePort();
  const appUrl = `http://127.0.0.1:${port}`;
  sims.discord.redirectUris = [`${appUrl}/auth/discord/callback`];
  sims.forum.connectUrl = `${appUrl}/discourse/sso`;
  sims.forum.logoutRedirect = `${appUrl}/discourse/logout`;
  const dir = tmpDir('bench-demo-');
  const logFile = join(dir, 'access.log');
  const out = openSync(logFile, 'w');
  const env = Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) =>
        !/^(DISCOURSE_|DISCORD_|BENCH_|REDIS_)/.test(k) &&
        !['PUBLIC_URL', 'SESSION_SECRET', 'DATABASE_URL', 'PORT', 'HTTP_ADAPTER'].includes(k),
    ),
  );
  const child = spawn(
    process.execPath,
    ['-r', LOCAL_LIBRARY, ...execArgv, join(ROOT, 'dist/src/main.js')],
    {
      cwd: dir,
      env: {
        ...env,
        PORT: String(port),
        PUBLIC_URL: appUrl,
        SESSION_SECRET,
        DATABASE_URL: `sqlite:${join(dir, 'demo.sqlite')}`,
        DISCORD_CLIENT_ID: CLIENT.clientId,
        DISCORD_CLIENT_SECRET: CLIENT.clientSecret,
        DISCORD_BASE_URL: sims.discordUrl,
        DISCOURSE_URL: sims.forumUrl,
        DISCOURSE_CONNECT_SECRET: FORUM_SECRET,
        // The rate limit on, as by default; behind one trusted proxy hop, the load's many client
        // addresses (see `load`) each stay within their budget.
        TRUST_PROXY: 'true',
      },
      stdio: ['ignore', out, 'inherit'],
    },
  );
  closeSync(out);
  children.add(child);
  const exited = new Promise((done) => child.once('exit', done));
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`the demo host exited with ${child.exitCode}`);
    try {
      const res = await fetch(`${appUrl}/health`, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.status < 500) break;
    } catch {
      /* not listening yet */
    }
    if (i > 300) throw new Error('the demo host did not start within 30 s');
    await sleep(100);
  }
  const ticks = Number(process.env.BENCH_CLK_TCK || 100);
  return {
    child,
    url: appUrl,
    logFile,
    ask: async (type) => {
      if (type !== 'cpu') return {};
      try {
        const fields = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1].split(' ');
        // utime and stime (fields 14 and 15 of stat), in clock ticks.
        const toMicros = (t) => (Number(t) * 1e6) / ticks;
        return { cpu: { user: toMicros(fields[11]), system: toMicros(fields[12]) } };
      } catch {
        return { cpu: { user: 0, system: 0 } };
      }
    },
    /** SIGTERM, as a service manager stops it; resolves once it has exited (log flushed). */
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
      children.delete(child);
    },
  };
}

/** Access lines of the handshake route in the demo host's log. */
function countAccessLines(logFile) {
  let n = 0;
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    if (!line.includes('"request completed"')) continue;
    try {
      if (JSON.parse(line).req?.path === '/discourse/sso') n++;
    } catch {
      /* a line cut short would be a loss: not counted */
    }
  }
  return n;
}

/** Signs in on the site through the simulated Discord; returns the app's session cookie. */
async function signInOnSite(sims, app, discordId) {
  sims.discord.knobs.autoApproveAs = discordId;
  const browser = new Browser();
  const page = await browser.visit(`${app.url}/auth/discord`);
  const cookie = browser.cookieHeader(app.url);
  if (!cookie) throw new Error(`sign-in on the app failed (ended at ${page.status} ${page.url})`);
  return cookie;
}

/** CPU time (µs) a server process spends per request over `amount` requests: hardly moved by other load. */
async function cpuPerRequest(server, url, cookie, amount) {
  const before = (await server.ask('cpu')).cpu;
  const result = await load(url, cookie, { amount });
  const after = (await server.ask('cpu')).cpu;
  return {
    micros:
      (after.user + after.system - before.user - before.system) /
      Math.max(1, result.ok + result.bad),
    result,
  };
}

const ADAPTERS = process.env.BENCH_ADAPTERS
  ? process.env.BENCH_ADAPTERS.split(',').filter((a) => a !== 'demo')
  : ['fastify', 'express'];
/** The demo host (dist/src/main.js) runs unless BENCH_ADAPTERS is given without `demo`. */
const DEMO = !process.env.BENCH_ADAPTERS || process.env.BENCH_ADAPTERS.split(',').includes('demo');

async function benchHandshake(report) {
  const sims = await startSimulators();
  const user = benchUser(SIGNED_IN);
  const { path, nonce } = handshakePath(sims.forumUrl);

  const limit = await startServer(
    'limit-server.cjs',
    { port: await freePort(), forumSecret: FORUM_SECRET, user },
    CFG.cpuProf
      ? ['--cpu-prof', `--cpu-prof-dir=${CFG.cpuProf}`, '--cpu-prof-name=limit.cpuprofile']
      : [],
  );
  const peer = await startServer('peer-server.cjs', {
    port: await freePort(),
    forumSecret: FORUM_SECRET,
    forumUrl: sims.forumUrl,
    sessionSecret: SESSION_SECRET,
    dbFile: join(tmpDir('bench-peer-'), 'peer.sqlite'),
    user,
  });
  const floor = await startServer(
    'floor-server.cjs',
    { port: await freePort(), forumSecret: FORUM_SECRET, sessionSecret: SESSION_SECRET, user },
    CFG.cpuProf
      ? ['--cpu-prof', `--cpu-prof-dir=${CFG.cpuProf}`, '--cpu-prof-name=floor.cpuprofile']
      : [],
  );
  const targets = { limit, floor, peer };
  // The floor gets a session cookie of the module's shape (parsed by @fastify/cookie, never read).
  const cookies = {
    limit: '',
    floor: `connect.sid=s%3A${'a'.repeat(32)}.${'b'.repeat(43)}`,
  };
  const peerBrowser = new Browser();
  await peerBrowser.visit(`${peer.url}/login`);
  cookies.peer = peerBrowser.cookieHeader(peer.url);
  for (const adapter of ADAPTERS) {
    const appArgv = ['--expose-gc'];
    if (CFG.cpuProf) {
      mkdirSync(CFG.cpuProf, { recursive: true });
      appArgv.push(
        '--cpu-prof',
        `--cpu-prof-dir=${CFG.cpuProf}`,
        `--cpu-prof-name=app-${adapter}.cpuprofile`,
      );
    }
    log(`  starting the app on ${adapter}…`);
    targets[adapter] = await startApp(sims, { adapter }, appArgv);
    cookies[adapter] = await signInOnSite(sims, targets[adapter], SIGNED_IN.id);
  }
  if (DEMO) {
    log('  starting the demo host (dist/src/main.js)…');
    const demoArgv = CFG.cpuProf
      ? ['--cpu-prof', `--cpu-prof-dir=${CFG.cpuProf}`, '--cpu-prof-name=demo-host.cpuprofile']
      : [];
    targets.demo = await startDemoHost(sims, demoArgv);
    cookies.demo = await signInOnSite(sims, targets.demo, SIGNED_IN.id);
  }
  for (const [name, server] of Object.entries(targets)) {
    await checkHandshake(name, server.url + path, cookies[name], nonce, sims.forumUrl);
  }

  // 4. Memory: idle (signed in once, nothing else), then after 10,000 handshakes, which are also the
  // warm-up and give the CPU time per handshake. The references warm up the same way.
  report.memory = {};
  report.cpuPerHandshake = {};
  const handshakesSent = Object.fromEntries(Object.keys(targets).map((name) => [name, 1]));
  const answered = Object.fromEntries(Object.keys(targets).map((name) => [name, 1]));
  for (const name of Object.keys(targets)) {
    const app = ADAPTERS.includes(name);
    const idle = app ? (await targets[name].ask('memory')).memory : null;
    const { micros, result } = await cpuPerRequest(
      targets[name],
      targets[name].url + path,
      cookies[name],
      CFG.memoryHandshakes,
    );
    report.cpuPerHandshake[name] = micros;
    handshakesSent[name] += result.ok + result.bad;
    answered[name] += result.ok;
    if (app)
      report.memory[name] = {
        idle,
        after: (await targets[name].ask('memory')).memory,
        handshakes: result.ok,
        bad: result.bad,
      };
    log(`  ${name}: ${micros.toFixed(0)} µs CPU per handshake`);
  }

  const runs = Object.fromEntries(Object.keys(targets).map((name) => [name, []]));
  for (let round = 0; round < CFG.rounds; round++) {
    for (const name of Object.keys(runs)) {
      const before = (await targets[name].ask('cpu')).cpu;
      const r = await load(targets[name].url + path, cookies[name], { duration: CFG.duration });
      const after = (await targets[name].ask('cpu')).cpu;
      // Warm: the CPU time of the server per handshake during the timed round.
      r.micros =
        (after.user + after.system - before.user - before.system) / Math.max(1, r.ok + r.bad);
      handshakesSent[name] += r.ok + r.bad;
      answered[name] += r.ok;
      runs[name].push(r);
      log(
        `  round ${round + 1} ${name}: ${r.rps.toFixed(0)} req/s, p50 ${r.p50} ms, p99 ${r.p99} ms, ${r.micros.toFixed(0)} µs CPU per handshake${r.bad ? `, ${r.bad} bad` : ''}`,
      );
    }
  }
  // Best round of each (the least disturbed by whatever else the machine was doing).
  const best = (list) => list.reduce((a, b) => (b.rps > a.rps ? b : a));
  report.handshake = Object.fromEntries(
    Object.entries(runs).map(([k, v]) => [k, { ...best(v), rounds: v }]),
  );
  // Memory after many more handshakes: the timed rounds count, the rest is sent at full speed.
  for (const name of ADAPTERS) {
    const missing = CFG.memoryHandshakesLong - handshakesSent[name];
    if (missing > 0) {
      const r = await load(targets[name].url + path, cookies[name], { amount: missing });
      handshakesSent[name] += r.ok + r.bad;
    }
    report.memory[name].long = {
      memory: (await targets[name].ask('memory')).memory,
      handshakes: handshakesSent[name],
    };
    log(
      `  ${name}: RSS ${mb(report.memory[name].long.memory.rss)} after ${fmt(handshakesSent[name])} handshakes`,
    );
  }
  await Promise.all(Object.values(targets).map((server) => server.stop()));
  if (targets.demo) {
    report.demoLog = {
      lines: countAccessLines(targets.demo.logFile),
      answered: answered.demo,
    };
  }
  await sims.close();
}

// ---------------------------------------------------------------- sign-in cost

async function benchSignIn(report) {
  const sims = await startSimulators({
    apiKey: API_KEY,
    apiRateLimitPerMinute: 0,
    authOverridesName: true,
    overridesAvatar: true,
  });
  const app = await startApp(sims, {
    countSql: true,
    apiKey: API_KEY,
    groups: {
      guildId: SIM_GUILD_ID,
      roleGroups: {
        [SIM_GUILD_ROLES.member]: 'members',
        [SIM_GUILD_ROLES.moderator]: 'moderators',
      },
    },
  });
  const raw = new Database(app.dbFile, { readonly: true, fileMustExist: true });
  const pendingJobs = raw.prepare(
    "SELECT COUNT(*) AS n FROM discourse_connect_sync_jobs WHERE status IN ('pending', 'running')",
  );
  const user = DISCORD_FIXTURES.legacy;

  const snapshot = () => ({
    discourse: sims.forum.stats.apiRequests,
    syncSso: sims.forum.stats.syncSsoCalls,
    discord:
      sims.discord.stats.tokenExchanges +
      sims.discord.stats.userFetches +
      sims.discord.stats.guildMemberFetches,
  });

  /** Waits until the queue is empty and nothing has run for 300 ms (background work included). */
  async function settle() {
    let last = '';
    let quiet = 0;
    for (let i = 0; i < 200 && quiet < 3; i++) {
      await sleep(100);
      const state = JSON.stringify([
        (await app.ask('sql')).sql.total,
        snapshot(),
        pendingJobs.get().n,
      ]);
      quiet = state === last && pendingJobs.get().n === 0 ? quiet + 1 : 0;
      last = state;
    }
  }

  async function measure(label) {
    await settle();
    await app.ask('resetSql');
    const before = snapshot();
    sims.discord.knobs.autoApproveAs = user.id;
    const browser = new Browser();
    const before2 = sims.forum.stats.ssoLogins;
    await browser.visit(`${sims.forumUrl}/session/sso?return_path=%2F`);
    if (sims.forum.stats.ssoLogins !== before2 + 1)
      throw new Error(`${label}: the forum sign-in did not complete`);
    await settle();
    const { sql } = await app.ask('sql');
    const after = snapshot();
    const profileWrites = Object.entries(sql.byKey)
      .filter(([k]) => /^(INSERT|UPDATE) users$/.test(k))
      .reduce((n, [, v]) => n + v, 0);
    return {
      label,
      statements: sql.total,
      transactions: sql.tx,
      byKey: sql.byKey,
      profileWrites,
      discourse: after.discourse - before.discourse,
      syncSso: after.syncSso - before.syncSso,
      discord: after.discord - before.discord,
    };
  }

  report.signIn = [];
  report.signIn.push(await measure('first sign-in'));
  report.signIn.push(await measure('unchanged re-login'));
  sims.discord.updateUser(user.id, {
    global_name: 'Renamed Member',
    avatar: '0123456789abcdef0123456789abcdef',
  });
  report.signIn.push(await measure('changed re-login'));
  raw.close();
  await app.stop();
  await sims.close();
}

// ---------------------------------------------------------------- bulk sync

function cliEnv(forumUrl, databaseFile, rate, maxRssFile) {
  const base = Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) =>
        !/^(DISCOURSE_|DISCORD_|BENCH_)/.test(k) &&
        !['PUBLIC_URL', 'SESSION_SECRET', 'DATABASE_URL', 'PORT'].includes(k),
    ),
  );
  return {
    ...base,
    DISCOURSE_URL: forumUrl,
    DISCOURSE_CONNECT_SECRET: FORUM_SECRET,
    DISCOURSE_API_KEY: API_KEY,
    DISCOURSE_API_USERNAME: 'system',
    DISCOURSE_API_RATE_PER_MINUTE: String(rate),
    DISCORD_CLIENT_ID: CLIENT.clientId,
    DISCORD_CLIENT_SECRET: CLIENT.clientSecret,
    DISCORD_BASE_URL: 'http://127.0.0.1:9',
    PUBLIC_URL: 'http://127.0.0.1:39871',
    SESSION_SECRET,
    DATABASE_URL: `sqlite:${databaseFile}`,
    ...(maxRssFile ? { BENCH_MAXRSS_FILE: maxRssFile } : {}),
  };
}

function runCli(args, env, cwd, onSample) {
  return new Promise((done, fail) => {
    const started = Date.now();
    const child = spawn(
      process.execPath,
      [
        '-r',
        LOCAL_LIBRARY,
        '-r',
        join(__dirname, 'maxrss.cjs'),
        join(ROOT, 'dist/src/cli.js'),
        ...args,
      ],
      {
        cwd,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    let hwm = 0;
    const sampler = setInterval(() => {
      try {
        const m = readFileSync(`/proc/${child.pid}/status`, 'utf8').match(/VmHWM:\s+(\d+) kB/);
        if (m) hwm = Math.max(hwm, Number(m[1]) * 1024);
      } catch {
        /* not on Linux, or gone */
      }
      onSample?.();
    }, 50);
    child.on('error', fail);
    child.on('close', (code) => {
      clearInterval(sampler);
      children.delete(child);
      done({ code, stdout, stderr, ms: Date.now() - started, hwm });
    });
  });
}

async function benchSyncOnce(users, rate) {
  const forum = new DiscourseSimulator({
    secret: FORUM_SECRET,
    apiKey: API_KEY,
    apiRateLimitPerMinute: rate,
  });
  const forumUrl = await forum.listen(0);
  const dir = tmpDir('bench-sync-');
  const databaseFile = join(dir, 'data', 'bench.sqlite');
  const first = await runCli(['failed'], cliEnv(forumUrl, databaseFile, rate), dir);
  if (first.code !== 0) throw new Error(`cli failed: ${first.stderr}`);
  // The members have accounts on the forum (a sync goes only where they do): the forum's name is
  // its host name, as the CLI's environment gives none.
  seedLocalUsers(
    databaseFile,
    Array.from({ length: users }, (_, i) => discordId(i + 1)),
    { linkForum: new URL(forumUrl).hostname },
  );

  let firstCall = 0;
  let lastCall = 0;
  let seen = 0;
  const track = () => {
    const calls = forum.stats.syncSsoCalls;
    if (calls > seen) {
      if (!firstCall) firstCall = Date.now();
      lastCall = Date.now();
      seen = calls;
    }
  };
  const maxRssFile = join(dir, 'maxrss');
  const run = await runCli(
    ['sync', '--all'],
    cliEnv(forumUrl, databaseFile, rate, maxRssFile),
    dir,
    track,
  );
  track();
  if (run.code !== 0) throw new Error(`sync --all exited ${run.code}: ${run.stderr.slice(-2000)}`);
  const synced = new Set(forum.users.filter((u) => u.externalId).map((u) => u.externalId));
  let lost = 0;
  for (let i = 1; i <= users; i++) if (!synced.has(discordId(i))) lost++;
  const calls = forum.stats.syncSsoCalls;
  const windowMs = lastCall - firstCall;
  const achieved = windowMs > 0 ? ((calls - 1) * 60_000) / windowMs : 0;
  const maxRss = existsSync(maxRssFile) ? Number(readFileSync(maxRssFile, 'utf8')) : 0;
  await forum.close();
  return {
    users,
    rate,
    calls,
    lost,
    duplicated: Math.max(0, calls - synced.size),
    rateLimited: forum.stats.apiRateLimited,
    achieved,
    share: achieved / rate,
    wallMs: run.ms,
    windowMs,
    maxRss: Math.max(maxRss, run.hwm),
  };
}

async function benchSync(report) {
  const small = await benchSyncOnce(CFG.syncSmall, CFG.syncRate);
  log(`  sync ${small.users}: ${small.achieved.toFixed(0)}/min, peak RSS ${mb(small.maxRss)}`);
  const big = await benchSyncOnce(CFG.syncUsers, CFG.syncRate);
  log(`  sync ${big.users}: ${big.achieved.toFixed(0)}/min, peak RSS ${mb(big.maxRss)}`);
  report.sync = { small, big };
}

// ---------------------------------------------------------------- report

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const mb = (bytes) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
const log = (line) => process.stderr.write(`${line}\n`);
const fmt = (n, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

function machine() {
  const cpus = os.cpus();
  return `${cpus[0]?.model ?? 'unknown CPU'} × ${cpus.length} logical CPUs, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ${os.type()} ${os.release()} (${os.arch()}), Node ${process.version}, load average before the run ${os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`;
}

function render(report, targets) {
  const lines = [];
  lines.push(`Machine: ${report.machine}`);
  lines.push(
    `Command: \`${report.command}\` (${report.date}); library measured: ${report.library}`,
  );
  lines.push('');
  if (report.handshake) {
    const h = report.handshake;
    const lim = h.limit.rps;
    lines.push(
      `### 1. SSO handshake (signed-in user, ${CFG.connections} connections, best of ${CFG.rounds} × ${CFG.duration} s, loopback, autocannon)`,
    );
    lines.push('');
    lines.push(
      '| server | req/s | p50 ms | p99 ms | × limit | × peer | CPU µs per handshake (warm-up) | CPU µs per handshake (timed round) |',
    );
    lines.push('|---|---:|---:|---:|---:|---:|---:|---:|');
    const cpu = report.cpuPerHandshake ?? {};
    const row = (name, key) => {
      const r = h[key];
      return `| ${name} | ${fmt(r.rps)} | ${r.p50} | ${r.p99} | ${(r.rps / lim).toFixed(2)} | ${(r.rps / h.peer.rps).toFixed(2)} | ${cpu[key] ? fmt(cpu[key]) : ''} | ${r.micros ? fmt(r.micros) : ''} |`;
    };
    lines.push(row('limit: bare `node:http`, HMAC + build + sign + redirect', 'limit'));
    if (h.floor)
      lines.push(
        row(
          'floor: Nest 12 + Fastify + `@fastify/cookie` + `@fastify/session`, the limit’s work in one early hook (no module)',
          'floor',
        ),
      );
    lines.push(
      row("peer: `discourse-sso` + Express 5 + express-session (module's SQLite store)", 'peer'),
    );
    if (h.fastify)
      lines.push(
        row('**app on Fastify** (session, user lookup, filters, signing, redirect)', 'fastify'),
      );
    if (h.express) lines.push(row('**app on Express** (same)', 'express'));
    if (h.demo)
      lines.push(
        row('**demo host** (`node dist/src/main.js`, Fastify, JSON access log to a file)', 'demo'),
      );
    lines.push('');
    if (report.demoLog)
      lines.push(
        `Demo host access log: ${fmt(report.demoLog.lines)} handshake lines written for ${fmt(report.demoLog.answered)} handshakes answered (stopped with SIGTERM).`,
        '',
      );
    lines.push(
      `Rounds (req/s): ${Object.entries(h)
        .map(([k, v]) => `${k} ${v.rounds.map((r) => fmt(r.rps)).join(' / ')}`)
        .join(
          '; ',
        )}. Non-redirect answers or errors: ${Object.values(h).reduce((n, v) => n + v.rounds.reduce((m, r) => m + r.bad, 0), 0)}.`,
    );
    lines.push('');
  }
  if (report.signIn) {
    lines.push(
      '### 2. Sign-in cost (full forum → app → Discord → app → forum round trip, counted)',
    );
    lines.push('');
    lines.push(
      '| sign-in | SQL statements | transactions | profile writes | Discourse API calls (sync_sso) | Discord API calls | statements by kind |',
    );
    lines.push('|---|---:|---:|---:|---:|---:|---|');
    for (const s of report.signIn) {
      const kinds = Object.entries(s.byKey)
        .sort((a, b) => b[1] - a[1])
        .map(([k, v]) => `${k} ×${v}`)
        .join(', ');
      lines.push(
        `| ${s.label} | ${s.statements} | ${s.transactions} | ${s.profileWrites} | ${s.discourse} (${s.syncSso}) | ${s.discord} | ${kinds} |`,
      );
    }
    lines.push('');
  }
  if (report.sync) {
    const { small, big } = report.sync;
    lines.push(
      `### 3. Bulk sync (\`sync --all\`, forum and client both limited to ${fmt(CFG.syncRate)}/min)`,
    );
    lines.push('');
    lines.push(
      '| users | sync_sso calls | achieved /min | × allowed | lost | duplicated | 429s | wall time | peak RSS of the CLI |',
    );
    lines.push('|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const s of [small, big]) {
      lines.push(
        `| ${fmt(s.users)} | ${fmt(s.calls)} | ${fmt(s.achieved)} | ${s.share.toFixed(3)} | ${s.lost} | ${s.duplicated} | ${s.rateLimited} | ${(s.wallMs / 1000).toFixed(1)} s | ${mb(s.maxRss)} |`,
      );
    }
    lines.push('');
    lines.push(
      `Peak RSS ${fmt(big.users)} users ÷ ${fmt(small.users)} users: ${(big.maxRss / small.maxRss).toFixed(2)}× (proportional would be ${(big.users / small.users).toFixed(0)}×).`,
    );
    lines.push('');
  }
  if (report.memory) {
    lines.push('### 4. Memory of the app (after a forced GC)');
    lines.push('');
    lines.push('| adapter | state | RSS | heap used | heap committed | external |');
    lines.push('|---|---|---:|---:|---:|---:|');
    for (const [adapter, m] of Object.entries(report.memory)) {
      lines.push(
        `| ${adapter} | idle (booted, one sign-in) | ${mb(m.idle.rss)} | ${mb(m.idle.heapUsed)} | ${mb(m.idle.heapTotal)} | ${mb(m.idle.external)} |`,
      );
      lines.push(
        `| ${adapter} | after ${fmt(m.handshakes)} handshakes | ${mb(m.after.rss)} | ${mb(m.after.heapUsed)} | ${mb(m.after.heapTotal)} | ${mb(m.after.external)} |`,
      );
      if (m.long)
        lines.push(
          `| ${adapter} | after ${fmt(m.long.handshakes)} handshakes | ${mb(m.long.memory.rss)} | ${mb(m.long.memory.heapUsed)} | ${mb(m.long.memory.heapTotal)} | ${mb(m.long.memory.external)} |`,
        );
    }
    lines.push('');
  }
  lines.push(...require('./reconcile.cjs').renderReconcile(report));
  lines.push('### Targets');
  lines.push('');
  lines.push('| target | measured | result |');
  lines.push('|---|---|---|');
  for (const t of targets)
    lines.push(
      `| ${t.name} | ${t.measured} | ${t.met ? 'met' : `**missed**${t.reason ? ` — ${t.reason}` : ''}`} |`,
    );
  return lines.join('\n');
}

function evaluate(report) {
  const targets = [];
  const add = (name, met, measured, reason) => targets.push({ name, met, measured, reason });
  if (report.handshake) {
    const h = report.handshake;
    if (h.fastify) {
      add(
        'Handshake on Fastify ≥ 0.5 × limit',
        h.fastify.rps >= 0.5 * h.limit.rps,
        `${(h.fastify.rps / h.limit.rps).toFixed(2)} × limit`,
      );
      add('Handshake p99 < 10 ms on Fastify', h.fastify.p99 < 10, `${h.fastify.p99} ms`);
    }
    if (h.demo) {
      add(
        'Handshake through the demo host ≥ 0.4 × limit',
        h.demo.rps >= 0.4 * h.limit.rps,
        `${(h.demo.rps / h.limit.rps).toFixed(2)} × limit`,
      );
    }
    if (report.demoLog) {
      add(
        'Demo host: an access line for every handshake answered, after SIGTERM',
        report.demoLog.lines >= report.demoLog.answered,
        `${fmt(report.demoLog.lines)} lines / ${fmt(report.demoLog.answered)} answered`,
      );
    }
    if (h.express) {
      add(
        'Handshake on Express ≥ 1.0 × peer',
        h.express.rps >= h.peer.rps,
        `${(h.express.rps / h.peer.rps).toFixed(2)} × peer`,
      );
      add('Handshake p99 < 20 ms on Express', h.express.p99 < 20, `${h.express.p99} ms`);
    }
  }
  for (const [adapter, m] of Object.entries(report.memory ?? {})) {
    if (!m.long) continue;
    const ratio = m.long.memory.rss / m.after.rss;
    add(
      `RSS on ${adapter}: after ${fmt(m.long.handshakes)} handshakes ≤ 1.1 × after ${fmt(m.handshakes)}`,
      ratio <= 1.1,
      `${ratio.toFixed(2)} × (${mb(m.after.rss)} → ${mb(m.long.memory.rss)})`,
    );
  }
  if (report.signIn) {
    const limits = { 'first sign-in': 8, 'unchanged re-login': 4, 'changed re-login': 8 };
    for (const s of report.signIn) {
      const max = limits[s.label];
      add(`${s.label}: ≤ ${max} SQL statements`, s.statements <= max, `${s.statements}`);
    }
    const u = report.signIn[1];
    add(
      'Unchanged re-login: no profile write',
      u.profileWrites === 0,
      `${u.profileWrites} profile write(s)`,
    );
    add('Unchanged re-login: no Discourse call', u.discourse === 0, `${u.discourse} call(s)`);
  }
  if (report.sync) {
    const { small, big } = report.sync;
    add(
      `Bulk sync of ${fmt(big.users)}: ≥ 0.9 × allowed rate`,
      big.share >= 0.9,
      `${big.share.toFixed(3)} ×`,
    );
    add(
      'Bulk sync: 0 lost, 0 duplicated',
      big.lost + big.duplicated + small.lost + small.duplicated === 0,
      `${big.lost} lost, ${big.duplicated} duplicated`,
    );
    const ratio = big.maxRss / small.maxRss;
    add(
      `Bulk sync: peak RSS flat (${fmt(big.users)} ≤ 1.25 × ${fmt(small.users)})`,
      ratio <= 1.25,
      `${ratio.toFixed(2)} ×`,
    );
  }
  targets.push(...require('./reconcile.cjs').reconcileTargets(report));
  return targets;
}

async function main() {
  const report = {
    machine: machine(),
    command: `npm run bench${process.env.BENCH_ONLY ? ` (BENCH_ONLY=${process.env.BENCH_ONLY})` : ''}`,
    date: new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC',
    library: LIBRARY_DIR,
  };
  if (want('handshake') || want('memory')) {
    log('1/3 SSO handshake and memory…');
    await benchHandshake(report);
  }
  if (want('signin')) {
    log('2/3 sign-in cost…');
    await benchSignIn(report);
  }
  if (want('sync')) {
    log(`3/3 bulk sync (${CFG.syncSmall} and ${CFG.syncUsers} users at ${CFG.syncRate}/min)…`);
    await benchSync(report);
  }
  if (want('reconcile')) {
    log('Discord bot connection: reconcile and gateway events…');
    await require('./reconcile.cjs').benchReconcile(report);
  }
  const targets = evaluate(report);
  const text = render(report, targets);
  console.log(`\n${text}\n`);
  if (process.env.BENCH_OUT) writeFileSync(process.env.BENCH_OUT, `${text}\n`);
  const missed = targets.filter((t) => !t.met);
  if (missed.length) log(`${missed.length} target(s) missed.`);
  cleanup();
  process.exit(missed.length ? 1 : 0);
}

main().catch((err) => {
  console.error(err);
  cleanup();
  process.exit(2);
});
