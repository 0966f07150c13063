#!/usr/bin/env node
'use strict';
/**
 * `npm run pack:lib`: builds and packs the library (its prepack hook builds it and adds the docs)
 * into `libs/discourse-connect/pack/`, and prints the tarball's absolute path as the last line.
 */
const { execFileSync } = require('node:child_process');
const { mkdirSync } = require('node:fs');
const { join } = require('node:path');

const PACKAGE = join(__dirname, '..');
const DEST = join(PACKAGE, 'pack');
mkdirSync(DEST, { recursive: true });
const npm = process.env.npm_execpath
  ? [process.execPath, [process.env.npm_execpath]]
  : [process.platform === 'win32' ? 'npm.cmd' : 'npm', []];
const out = execFileSync(npm[0], [...npm[1], 'pack', '--json', '--pack-destination', DEST], {
  cwd: PACKAGE,
  encoding: 'utf8',
  stdio: ['ignore', 'pipe', 'inherit'],
});
const [{ filename, files }] = JSON.parse(out.slice(out.indexOf('[')));
console.log(`packed ${files.length} files`);
console.log(join(DEST, filename));
