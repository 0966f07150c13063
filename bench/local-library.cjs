'use strict';
/**
 * Preloaded (`node -r bench/local-library.cjs`) by the bench and every process it starts: the
 * packages of this workspace (`nestjs-discourse-connect`, its simulators) load from this checkout's
 * `libs/*` build, whatever `node_modules` links to. In a checkout whose `node_modules` is shared
 * with another one (a git worktree), the bench still measures the code it sits next to.
 * `BENCH_LIBRARY=<dir>` measures the library built in another directory instead (e.g. an older
 * commit's `libs/discourse-connect`, for a before/after comparison on the same machine).
 */
const Module = require('node:module');
const { join, resolve } = require('node:path');

const LIBS = resolve(__dirname, '..', 'libs');
const PACKAGES = {
  'nestjs-discourse-connect': process.env.BENCH_LIBRARY
    ? resolve(process.env.BENCH_LIBRARY)
    : join(LIBS, 'discourse-connect'),
  'nestjs-discourse-connect-simulators': join(LIBS, 'simulators'),
};

const original = Module._resolveFilename;
Module._resolveFilename = function (request, parent, isMain, options) {
  if (typeof request === 'string' && !request.startsWith('.') && !request.startsWith('/')) {
    for (const [name, dir] of Object.entries(PACKAGES)) {
      if (request === name) return original.call(this, dir, parent, isMain, options);
      if (request.startsWith(`${name}/`))
        return original.call(
          this,
          join(dir, request.slice(name.length + 1)),
          parent,
          isMain,
          options,
        );
    }
  }
  return original.call(this, request, parent, isMain, options);
};

/** The library directory the bench measures (for the report). */
module.exports = { LIBRARY_DIR: PACKAGES['nestjs-discourse-connect'] };
