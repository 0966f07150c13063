import { packagesRequired } from '../../setup/system-packages';
import { missingServices, startPostgres, startRedis, type RunningServer } from './servers';

/**
 * Jest globalSetup of the `services` project: starts one throwaway PostgreSQL and one Redis for
 * every services test (each test file then makes its own database and Redis key prefix).
 * Without the binaries the tests are skipped with one message, unless CI or REQUIRE_SERVICES=1
 * is set: then a missing server fails the run.
 */
export default async function globalSetup(): Promise<void> {
  const missing = missingServices();
  if (missing) {
    const required = packagesRequired();
    const message = `${missing} not installed: the PostgreSQL/Redis tests under test/services need them (npm test installs them as root; otherwise: apt-get install -y postgresql redis-server).`;
    if (required) throw new Error(`${message} CI / REQUIRE_SERVICES is set, so this is a failure.`);
    console.warn(`\n[services] SKIPPED: ${message}\n`);
    process.env.DC_TEST_SERVICES_MISSING = missing;
    return;
  }
  const started: RunningServer[] = [];
  try {
    const [postgres, redis] = await Promise.all([startPostgres(), startRedis()]);
    started.push(postgres, redis);
    process.env.DC_TEST_POSTGRES_URL = postgres.url;
    process.env.DC_TEST_REDIS_URL = redis.url;
  } catch (error) {
    await Promise.all(started.map((s) => s.stop()));
    throw error;
  }
  (globalThis as { __dcServers?: RunningServer[] }).__dcServers = started;
  // Whatever happens to Jest, the servers do not outlive it.
  process.once('exit', () => {
    for (const s of started) {
      try {
        process.kill(s.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  });
}
