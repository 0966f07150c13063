#!/usr/bin/env node
'use strict';
/**
 * npm pack / publish hooks of the package: the README, CHANGELOG and LICENSE live at the
 * repository's root; `copy` puts them beside package.json for the tarball, `remove` takes them away.
 */
const { copyFileSync, rmSync } = require('node:fs');
const { join } = require('node:path');

const PACKAGE = join(__dirname, '..');
const ROOT = join(PACKAGE, '..', '..');
const FILES = ['README.md', 'CHANGELOG.md', 'LICENSE'];

const action = process.argv[2];
for (const file of FILES) {
  if (action === 'copy') copyFileSync(join(ROOT, file), join(PACKAGE, file));
  else if (action === 'remove') rmSync(join(PACKAGE, file), { force: true });
  else throw new Error('usage: package-docs.cjs copy|remove');
}
