// One lint setup for the whole repository; formatting is Prettier's (eslint-config-prettier turns
// off the rules that would fight it).
import js from "@eslint/js";
import prettier from "eslint-config-prettier";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["node_modules/", ".stayup/", "cdk.out/", "dist/", ".ci/.venv/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  prettier,
  {
    // The examples and the launcher in bin/ are plain JavaScript run by Node, outside the TypeScript project.
    files: ["examples/**/*.js", "bin/**/*.mjs"],
    languageOptions: {
      globals: { process: "readonly", console: "readonly", setTimeout: "readonly", clearTimeout: "readonly" },
    },
  },
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
    },
  },
);
