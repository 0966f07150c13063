/**
 * Lets a child `node` process run the project's TypeScript directly (no build step, no type
 * check): `node -r ./test/services/support/ts-register.js entry.ts`. Transpiles each .ts file with
 * the project's own compiler settings; Node 20 loads the ESM-only @nestjs packages itself.
 */
const fs = require('node:fs');
const Module = require('node:module');
const path = require('node:path');
const ts = require('typescript');

// The workspace packages resolve to their TypeScript source, as in Jest (no build needed).
const ROOT = path.resolve(__dirname, '../../..');
const SOURCES = {
  'nestjs-discourse-connect': path.join(ROOT, 'libs/discourse-connect/src/index.ts'),
  'nestjs-discourse-connect/internal': path.join(ROOT, 'libs/discourse-connect/src/internal.ts'),
  'nestjs-discourse-connect-simulators': path.join(ROOT, 'libs/simulators/src/index.ts'),
};
const resolveFilename = Module._resolveFilename;
Module._resolveFilename = function resolveWorkspaceSource(request, ...rest) {
  return resolveFilename.call(this, SOURCES[request] ?? request, ...rest);
};

const compilerOptions = {
  module: ts.ModuleKind.CommonJS,
  target: ts.ScriptTarget.ES2022,
  experimentalDecorators: true,
  emitDecoratorMetadata: true,
  esModuleInterop: true,
  sourceMap: false,
  inlineSourceMap: true,
};

require.extensions['.ts'] = function compileTs(module, filename) {
  const source = fs.readFileSync(filename, 'utf8');
  const { outputText } = ts.transpileModule(source, { compilerOptions, fileName: filename });
  module._compile(outputText, filename);
};
