// ESLint's recommended rules over the library, the page and this file (`npm run lint`).
import js from "@eslint/js";
import globals from "globals";

export default [
  { ignores: ["node_modules/", "types/"] },
  js.configs.recommended,
  {
    files: ["*.js", "lib/*.js"],
    languageOptions: { ecmaVersion: 2025, sourceType: "module", globals: globals.browser },
    rules: { "no-unused-vars": ["error", { caughtErrors: "none" }], eqeqeq: "error", "prefer-const": "error" },
  },
];
