// Typed linting for the whole tree (issue 14, point 6). The rules that guard
// behaviour are errors; rules that only police taste are off, each with why.
// `npm run lint` runs this and the formatter's check; .ci/run runs that.
import js from '@eslint/js';
import { createNodeResolver, importX } from 'eslint-plugin-import-x';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

// The house style is ECMAScript #private; the `private` keyword is only a
// compile-time promise, and two styles side by side is what the issue removes.
const privateKeyword = 'Use an ECMAScript #private member, not the `private` keyword (one style for private members).';

export default defineConfig(
  {
    ignores: ['node_modules/**', 'docs/**', 'test/fixtures/**', '**/*.d.ts'],
  },
  js.configs.recommended,
  tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'module',
      parserOptions: {
        // One TypeScript program, from tsconfig.json (whose include has the
        // root vitest configs too).
        projectService: true,
        tsconfigRootDir: import.meta.dirname,
      },
    },
    plugins: { 'import-x': importX },
    settings: {
      // Imports name their .ts files (allowImportingTsExtensions), so Node's
      // own resolution finds them; no TypeScript resolver is needed.
      'import-x/extensions': ['.ts', '.js'],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
      'import-x/external-module-folders': ['node_modules'],
      'import-x/resolver-next': [createNodeResolver({ extensions: ['.ts', '.js'] })],
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // --- what this linter is for: errors ---
      // A promise nobody awaits or catches loses its rejection (an unhandled
      // rejection kills the process) and its ordering.
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      // Adding a member to a union (a state, a PDU type, an ANA state) must
      // show every switch that does not handle it. A `default:` arm counts as
      // handling the rest: the wire switches (PDU type, ANA state) end in a
      // default that refuses the PDU on purpose (18 of them today).
      '@typescript-eslint/switch-exhaustiveness-check': [
        'error',
        { allowDefaultCaseForExhaustiveSwitch: true, requireDefaultForNonUnion: false, considerDefaultExhaustiveForUnions: true },
      ],
      // Runtime import cycles make module evaluation order matter; type-only
      // imports are erased (verbatimModuleSyntax) and do not count.
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      // With verbatimModuleSyntax, `import { type A }` still loads the module at
      // run time; `import type { A }` does not. Keep the two apart.
      '@typescript-eslint/consistent-type-imports': ['error', { prefer: 'type-imports', fixStyle: 'inline-type-imports', disallowTypeAnnotations: false }],
      '@typescript-eslint/no-import-type-side-effects': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      // A caught value is re-thrown as it came (`Promise.reject(e)` in a
      // catch); rejecting with a literal or an object is still an error.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingAny: true, allowThrowingUnknown: true }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true }],

      // --- off: taste, or findings this tree has on purpose ---
      // An async method that never awaits is how an interface that returns a
      // promise (the stores, the agent handlers) is implemented; it also turns
      // a synchronous throw into a rejection, which is what callers expect.
      '@typescript-eslint/require-await': 'off',
      // Flags `TimerHandle | null` (TimerHandle is an opaque `unknown`) and
      // `LevelWithSilent | string`: both spell out what a caller may pass.
      '@typescript-eslint/no-redundant-type-constituents': 'off',

      'no-restricted-syntax': [
        'error',
        { selector: 'PropertyDefinition[accessibility="private"]', message: privateKeyword },
        // A constructor has no #private form: `private constructor` (a factory-only class) stays.
        { selector: 'MethodDefinition[accessibility="private"][kind!="constructor"]', message: privateKeyword },
        { selector: 'TSParameterProperty[accessibility="private"]', message: privateKeyword },
        { selector: 'AccessorProperty[accessibility="private"]', message: privateKeyword },
      ],
    },
  },
  {
    // Tests reach into internals through casts and read JSON documents as
    // loose records; `any` there is a test's choice, not a protocol path.
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      // expect(obj.method).toBeTypeOf('function') and spies pass methods unbound on purpose.
      '@typescript-eslint/unbound-method': 'off',
    },
  },
  {
    // Plain JavaScript (bin/ wrappers, this file): outside the TypeScript
    // program, so no type-aware rules.
    files: ['**/*.js'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', setTimeout: 'readonly' } },
  },
);
