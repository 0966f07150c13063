'use strict';
/**
 * The Debian packages some test suites need, and where each is found. Shared by `npm test`'s
 * provisioning step (test/setup/provision.js) and the suites themselves, so both agree on what
 * "installed" means.
 *
 * - `chromium`: the browser tests (test/browser, libs/simulators' browser spec);
 * - `postgresql` and `redis-server`: the tests under test/services, which start their own servers.
 */
const { existsSync, readdirSync } = require('node:fs');
const { join } = require('node:path');

/** Debian's Chromium (or CHROMIUM_PATH), or null. */
function findChromium() {
  const path = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
  return existsSync(path) ? path : null;
}

/** The newest installed PostgreSQL's bin directory (Debian: /usr/lib/postgresql/<v>/bin, or POSTGRES_BIN), or null. */
function findPostgresBin() {
  const fromEnv = process.env.POSTGRES_BIN;
  if (fromEnv) return existsSync(join(fromEnv, 'postgres')) ? fromEnv : null;
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const versions = readdirSync(root)
    .filter(
      (v) =>
        existsSync(join(root, v, 'bin', 'postgres')) && existsSync(join(root, v, 'bin', 'initdb')),
    )
    .sort((a, b) => Number(b) - Number(a));
  return versions.length ? join(root, versions[0], 'bin') : null;
}

/** redis-server on the PATH (or REDIS_SERVER), or null. */
function findRedisServer() {
  const fromEnv = process.env.REDIS_SERVER;
  if (fromEnv) return existsSync(fromEnv) ? fromEnv : null;
  for (const dir of (process.env.PATH || '').split(':').concat(['/usr/bin', '/usr/local/bin'])) {
    if (dir && existsSync(join(dir, 'redis-server'))) return join(dir, 'redis-server');
  }
  return null;
}

/** What each package is for and how to tell it is there. */
const SYSTEM_PACKAGES = [
  { pkg: 'chromium', name: 'Chromium', suites: 'the browser tests', find: findChromium },
  {
    pkg: 'postgresql',
    name: 'PostgreSQL',
    suites: 'the PostgreSQL/Redis tests (test/services)',
    find: findPostgresBin,
  },
  {
    pkg: 'redis-server',
    name: 'Redis',
    suites: 'the PostgreSQL/Redis tests (test/services)',
    find: findRedisServer,
  },
];

/** The packages whose program is not found. */
function missingPackages() {
  return SYSTEM_PACKAGES.filter((p) => !p.find());
}

/** CI or REQUIRE_SERVICES=1: a missing package fails the run instead of skipping suites. */
function packagesRequired() {
  const ci = process.env.CI;
  return (Boolean(ci) && ci !== 'false' && ci !== '0') || process.env.REQUIRE_SERVICES === '1';
}

/** The command that installs `pkgs`, as the reader would type it. */
function installCommand(pkgs) {
  const sudo = typeof process.getuid === 'function' && process.getuid() !== 0 ? 'sudo ' : '';
  return `${sudo}apt-get install -y --no-install-recommends ${pkgs.join(' ')}`;
}

module.exports = {
  SYSTEM_PACKAGES,
  findChromium,
  findPostgresBin,
  findRedisServer,
  missingPackages,
  packagesRequired,
  installCommand,
};
