import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../support/ports';
import { findPostgresBin, findRedisServer } from '../../setup/system-packages';

/**
 * Throwaway PostgreSQL and Redis servers for the `services` test project: started from the
 * Debian packages' binaries (`postgresql`, `redis-server`) in a temporary directory, on free
 * loopback ports, and removed afterwards. Nothing here relies on a system service running.
 */

export interface RunningServer {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/** What is missing to run the services tests, or null when both servers can be started. */
export function missingServices(): string | null {
  const missing = [
    findPostgresBin() ? null : 'PostgreSQL (Debian package postgresql)',
    findRedisServer() ? null : 'redis-server',
  ];
  const list = missing.filter(Boolean);
  return list.length ? list.join(' and ') : null;
}

/**
 * PostgreSQL refuses to run as root. As root, the server runs as the `postgres` user the Debian
 * package creates (or `nobody`), through setpriv, which execs in place: the pid we hold is the
 * postmaster's, so stopping it needs no extra process.
 */
function asServiceUser(
  command: string,
  args: string[],
): { command: string; args: string[]; uid?: number } {
  if (process.getuid?.() !== 0) return { command, args };
  const user = ['postgres', 'nobody'].find((name) => spawnSync('id', ['-u', name]).status === 0)!;
  const uid = Number(spawnSync('id', ['-u', user]).stdout.toString().trim());
  return {
    command: 'setpriv',
    args: [
      `--reuid=${user}`,
      `--regid=${spawnSync('id', ['-g', user]).stdout.toString().trim()}`,
      '--init-groups',
      command,
      ...args,
    ],
    uid,
  };
}

async function waitUntil(
  check: () => Promise<boolean>,
  what: string,
  child: ChildProcess,
  log: () => string,
  timeoutMs = 20_000,
) {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (child.exitCode !== null)
      throw new Error(`${what} exited with code ${child.exitCode}:\n${log()}`);
    if (Date.now() > until)
      throw new Error(`${what} did not start within ${timeoutMs} ms:\n${log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function stopper(
  child: ChildProcess,
  signal: NodeJS.Signals,
  cleanup: () => void,
): () => Promise<void> {
  return async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    cleanup();
  };
}

/** Connects once with `pg` and runs `SELECT 1`; false while the server is not ready. */
async function pgReady(url: string): Promise<boolean> {
  const client = pgClient({ connectionString: url, connectionTimeoutMillis: 1000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** initdb into a temp dir (trust auth, C locale, no fsync) and start `postgres` on a free loopback port. */
export async function startPostgres(): Promise<RunningServer> {
  const bin = findPostgresBin();
  if (!bin) throw new Error('PostgreSQL is not installed (apt-get install postgresql)');
  const dir = mkdtempSync(join(tmpdir(), 'dc-pg-'));
  const data = join(dir, 'data');
  const init = asServiceUser(join(bin, 'initdb'), [
    '-D',
    data,
    '-A',
    'trust',
    '-U',
    'postgres',
    '-E',
    'UTF8',
    '--locale=C',
    '--no-sync',
  ]);
  if (init.uid !== undefined) chownSync(dir, init.uid, -1);
  const initResult = spawnSync(init.command, init.args, { encoding: 'utf8' });
  if (initResult.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(
      `initdb failed (${initResult.status}): ${initResult.stderr || initResult.stdout}`,
    );
  }
  const port = await freePort();
  const run = asServiceUser(join(bin, 'postgres'), [
    '-D',
    data,
    '-h',
    '127.0.0.1',
    '-p',
    String(port),
    '-k',
    dir, // the unix socket lives in the temp dir, not /var/run/postgresql
    '-c',
    'fsync=off',
    '-c',
    'synchronous_commit=off',
    '-c',
    'full_page_writes=off',
    '-c',
    'max_connections=200',
  ]);
  const child = spawn(run.command, run.args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d) => (output = (output + d).slice(-4000)));
  child.stderr!.on('data', (d) => (output = (output + d).slice(-4000)));
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const stop = stopper(child, 'SIGINT', () => rmSync(dir, { recursive: true, force: true }));
  try {
    await waitUntil(
      () => pgReady(url),
      'postgres',
      child,
      () => output,
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { url, pid: child.pid!, stop };
}

/** redis-server on a free loopback port, nothing persisted. */
export async function startRedis(): Promise<RunningServer> {
  const binary = findRedisServer();
  if (!binary) throw new Error('redis-server is not installed (apt-get install redis-server)');
  const dir = mkdtempSync(join(tmpdir(), 'dc-redis-'));
  const port = await freePort();
  const child = spawn(
    binary,
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
      '--protected-mode',
      'yes',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout!.on('data', (d) => (output = (output + d).slice(-4000)));
  child.stderr!.on('data', (d) => (output = (output + d).slice(-4000)));
  const stop = stopper(child, 'SIGTERM', () => rmSync(dir, { recursive: true, force: true }));
  try {
    await waitUntil(
      async () => output.includes('Ready to accept connections'),
      'redis-server',
      child,
      () => output,
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { url: `redis://127.0.0.1:${port}`, pid: child.pid!, stop };
}

/** The bits of `pg`'s Client used here (the project has no @types/pg). */
export interface PgClient {
  connect(): Promise<void>;
  query(sql: string, values?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
  end(): Promise<void>;
}

export function pgClient(options: {
  connectionString: string;
  connectionTimeoutMillis?: number;
}): PgClient {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- pg is loaded only when the services tests run
  const { Client } = require('pg') as { Client: new (o: typeof options) => PgClient };
  return new Client(options);
}
