// ESLint for the web pages' ES modules (server/static) and their unit tests (tests/js).
// Flat config; `npx eslint` from the repository's root (scripts/test does).
import js from "@eslint/js";
import globals from "globals";

const rules = {
  "no-unused-vars": ["error", { args: "after-used", caughtErrors: "none" }],
  "no-undef": "error",
  eqeqeq: ["error", "always"],
  "no-var": "error",
  "prefer-const": "error",
};

export default [
  { ignores: ["node_modules/", ".venv/", "build/", "dist/", "data/", "test-output/"] },
  js.configs.recommended,
  {
    // What the browser runs: plain ES modules, browser globals only.
    files: ["server/static/**/*.js"],
    languageOptions: { ecmaVersion: 2022, sourceType: "module", globals: { ...globals.browser } },
    rules,
  },
  {
    // Unit tests under Node's test runner, the identity tests' OpenID provider, and this file.
    files: ["tests/js/**/*.js", "tests/**/*.mjs", "eslint.config.js"],
    languageOptions: { ecmaVersion: 2022, sourceType: "module", globals: { ...globals.node } },
    rules,
  },
];
