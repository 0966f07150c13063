#!/usr/bin/env node
'use strict';
/**
 * First step of `npm test`: makes sure of the Debian packages some suites need (Chromium for the
 * browser tests, PostgreSQL and Redis for test/services).
 *
 * - All there: one line, nothing else.
 * - Missing, running as root with apt-get (a fresh Debian machine, CI): installs them, saying what.
 *   Once installed they are found the next time, so this happens once per machine.
 * - Missing and not installable (no root, no apt-get, DC_TEST_NO_INSTALL=1, or the install failed):
 *   one line per skipped group of suites naming the command that enables it; the run stays green.
 * - With CI or REQUIRE_SERVICES=1, a package still missing after that is a failure (exit 1).
 */
const { spawnSync } = require('node:child_process');
const { existsSync } = require('node:fs');
const { missingPackages, packagesRequired, installCommand } = require('./system-packages');

const say = (line) => console.log(`[npm test] ${line}`);

function canInstall() {
  if (process.env.DC_TEST_NO_INSTALL === '1') return false;
  if (
    process.platform !== 'linux' ||
    typeof process.getuid !== 'function' ||
    process.getuid() !== 0
  )
    return false;
  return existsSync('/usr/bin/apt-get');
}

function apt(args) {
  const result = spawnSync('apt-get', args, {
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.status !== 0) {
    const tail = `${result.stdout ?? ''}${result.stderr ?? ''}`
      .trim()
      .split('\n')
      .slice(-15)
      .join('\n');
    say(`apt-get ${args.join(' ')} failed (exit ${result.status ?? result.signal}):\n${tail}`);
    return false;
  }
  return true;
}

function main() {
  let missing = missingPackages();
  if (missing.length === 0) {
    say('Chromium, PostgreSQL and Redis are installed: every suite runs.');
    return 0;
  }
  const names = missing.map((p) => p.pkg);
  if (canInstall()) {
    say(
      `installing the Debian packages the tests need: ${names.join(' ')} (apt-get, as root; once per machine)`,
    );
    const ok = apt(['update']) && apt(['install', '-y', '--no-install-recommends', ...names]);
    missing = missingPackages();
    if (ok && missing.length === 0) {
      say(`installed ${names.join(' ')}: every suite runs.`);
      return 0;
    }
  }
  const required = packagesRequired();
  for (const p of missing) {
    const line = `${p.name} (Debian package ${p.pkg}) is not installed: ${p.suites} ${required ? 'cannot run' : 'are SKIPPED'}. Enable them with: ${installCommand([p.pkg])}`;
    say(line);
  }
  if (required) {
    say('CI or REQUIRE_SERVICES=1 is set, so a missing package is a failure.');
    return 1;
  }
  return 0;
}

process.exitCode = main();
