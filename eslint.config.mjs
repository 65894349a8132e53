// Lint rules that guard what the compiler alone does not: every switch over a union is exhaustive,
// no promise is left floating, no `any` hides a type, and nothing evaluates text as code.
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      '**/dist/**',
      'packages/kyc/web-dist/**',
      '**/node_modules/**',
      'bench/**',
      'test/crash/**',
      'test/fixtures/**',
      '*.config.*',
      'eslint.config.mjs',
    ],
  },
  {
    files: ['packages/*/src/**/*.ts', 'packages/*/test/**/*.ts', 'test/**/*.ts'],
    extends: [tseslint.configs.base],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/switch-exhaustiveness-check': [
        'error',
        { considerDefaultExhaustiveForUnions: false, requireDefaultForNonUnion: false },
      ],
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-implied-eval': 'error',
      'no-eval': 'error',
      'no-new-func': 'error',
      'no-restricted-imports': [
        'error',
        {
          paths: [
            { name: 'node:vm', message: 'no code is ever loaded from data (DESIGN.md §3)' },
            { name: 'vm', message: 'no code is ever loaded from data (DESIGN.md §3)' },
          ],
        },
      ],
    },
  },
);
