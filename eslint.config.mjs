// ESLint (flat config, typescript-eslint) for every TypeScript and JavaScript file of the repository.
// `npm test` runs it (`npm run lint`) together with `prettier --check` (`npm run format:check`).
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

/** An `eslint-disable…` comment must say why, after ` -- ` on the same line. */
const requireDisableReason = {
  meta: {
    type: 'problem',
    docs: { description: 'eslint-disable comments give a reason' },
    schema: [],
  },
  create(context) {
    return {
      Program() {
        for (const comment of context.sourceCode.getAllComments()) {
          const text = comment.value.trim();
          if (
            /^eslint-(disable|enable)/.test(text) &&
            !/ -- \S/.test(text) &&
            !text.startsWith('eslint-enable')
          ) {
            context.report({
              loc: comment.loc,
              message: 'Say why after " -- " on the same line: eslint-disable… -- <reason>.',
            });
          }
        }
      },
    };
  },
};

export default tseslint.config(
  {
    ignores: [
      '**/dist/**',
      '**/node_modules/**',
      'libs/discourse-connect/pack/**',
      'test-results/**',
      'coverage/**',
      'data/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    languageOptions: { globals: { ...globals.node, ...globals.jest } },
    plugins: { local: { rules: { 'require-disable-reason': requireDisableReason } } },
    rules: {
      'local/require-disable-reason': 'error',
      // Input validation here deliberately matches control characters (headers, usernames, logs).
      'no-control-regex': 'off',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
    },
  },
  {
    // Tests poke at untyped JSON, rows and mocks.
    files: ['test/**/*.ts', '**/*.spec.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    files: ['**/*.cjs', '**/*.js'],
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
