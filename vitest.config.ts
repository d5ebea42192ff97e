import { defineConfig } from 'vitest/config';

// Unit tests are fast and independent. Integration tests drive real hosts and services (the lab,
// sshd, podman, Glance, ...) and share them, so they run one file at a time with long timeouts.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          fileParallelism: false,
          testTimeout: 600_000,
          hookTimeout: 900_000,
        },
      },
    ],
  },
});
