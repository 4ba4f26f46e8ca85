import { defineConfig } from '@playwright/test';
import base from './playwright.config';

// Benchmarks: run on request only (`npx playwright test -c playwright.bench.config.ts`), never
// by `npx playwright test`, whose testDir is ./tests. They print tables; they assert that the
// page works, never how fast it is (a timed assertion would fail on a busy machine).
export default defineConfig({
  ...base,
  testDir: './bench',
  timeout: 900_000,
});
