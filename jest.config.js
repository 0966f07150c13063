/**
 * Three projects: fast unit specs beside the code, e2e specs under test/ on real HTTP, and the
 * specs under test/services that run against real PostgreSQL and Redis servers.
 *
 * NestJS 12 ships as ES modules only. Jest's CommonJS runtime on Node 20 cannot require() them, so
 * the ESM packages in node_modules are compiled to CommonJS by babel-jest (import.meta.url
 * included); the project's own TypeScript goes through ts-jest.
 */
// @fastify/cookie loads cookie@2 (ESM only) with import(), which Jest's CommonJS runtime cannot run.
const esmPackages = [
  '@nestjs',
  'file-type',
  'strtok3',
  'token-types',
  'peek-readable',
  'uint8array-extras',
  '@tokenizer',
  'load-esm',
  '@fastify/cookie',
  'cookie',
  // jose (jsConnect v3 tokens) ships as ES modules only.
  'jose',
];
const transform = {
  '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }],
  '^.+\\.m?js$': [
    'babel-jest',
    {
      babelrc: false,
      configFile: false,
      plugins: [
        require.resolve('./test/jest/import-meta-url.babel-plugin.js'),
        '@babel/plugin-transform-dynamic-import',
        ['@babel/plugin-transform-modules-commonjs', { importInterop: 'node' }],
      ],
    },
  ],
};
const common = {
  testEnvironment: 'node',
  transform,
  transformIgnorePatterns: [`/node_modules/(?!(${esmPackages.join('|')})/)`],
  moduleFileExtensions: ['ts', 'js', 'mjs', 'json'],
  // Inside the repository the packages resolve to their TypeScript source (no rebuild after an
  // edit); only the consumer test (test/consumer) installs and uses the packed build.
  moduleNameMapper: {
    '^nestjs-discourse-connect$': '<rootDir>/libs/discourse-connect/src/index.ts',
    '^nestjs-discourse-connect/internal$': '<rootDir>/libs/discourse-connect/src/internal.ts',
    '^nestjs-discourse-connect-simulators$': '<rootDir>/libs/simulators/src/index.ts',
  },
};
module.exports = {
  projects: [
    {
      ...common,
      displayName: 'unit',
      testMatch: ['<rootDir>/libs/**/*.spec.ts', '<rootDir>/src/**/*.spec.ts'],
    },
    { ...common, displayName: 'e2e', testMatch: ['<rootDir>/test/**/*.e2e-spec.ts'] },
    // The packed tarball installed in a new Nest app outside the repository (test/consumer).
    {
      ...common,
      displayName: 'consumer',
      testMatch: ['<rootDir>/test/consumer/**/*.consumer-spec.ts'],
    },
    // Real PostgreSQL and Redis, started by the project's globalSetup from the Debian packages
    // (skipped with one message when they are not installed, a failure when CI is set).
    {
      ...common,
      displayName: 'services',
      testMatch: ['<rootDir>/test/services/**/*.services-spec.ts'],
      globalSetup: '<rootDir>/test/services/support/global-setup.ts',
      globalTeardown: '<rootDir>/test/services/support/global-teardown.ts',
    },
  ],
};
