// One throwaway PostgreSQL cluster for the whole run, so the audit-trail suites run against both backends; stopped
// and removed when the run ends, failed or not. ASM_FER_TEST_POSTGRES_URL (a URL of a `postgres` database whose
// user may create databases) uses a running server instead.
import type { TestProject } from 'vitest/node';
import { startCluster, TEST_PG_PORT } from './fixtures/postgres.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** URL of the cluster's `postgres` database, for creating one database per test. */
    postgresAdminUrl: string;
  }
}

export default function setup(project: TestProject): (() => void) | undefined {
  const external = process.env.ASM_FER_TEST_POSTGRES_URL;
  if (external) {
    project.provide('postgresAdminUrl', external);
    return undefined;
  }
  const cluster = startCluster(TEST_PG_PORT);
  project.provide('postgresAdminUrl', cluster.adminUrl);
  return () => cluster.destroy();
}
