import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: { conditions: ['source'] },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Vitest's default is one worker fewer than the cores: on CI's two cores that is one, and the
    // files ran one after another while most end-to-end files wait on child processes, locks and
    // timers. Two workers overlap that waiting; every file already keeps its own temp directories,
    // ports (0) and PostgreSQL schemas, so files do not collide.
    maxWorkers: 2,
  },
});
