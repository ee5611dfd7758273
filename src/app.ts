// createApp(deps): wires the plain modules (bundle, session pool, batcher, metrics) into the HTTP app; never listens.
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { Bundle } from './bundle/load-bundle.js';
import type { Config } from './config.js';
import { createInference } from './inference/infer.js';
import type { SessionPool } from './inference/session-pool.js';
import type { Metrics } from './metrics.js';
import { createHttpApp, type HttpApp, type Readiness } from './http/server.js';

/** openapi.yaml sits at the repository root, one level above src/ and dist/. */
export const API_SPEC_PATH = fileURLToPath(new URL('../openapi.yaml', import.meta.url));

export interface AppDeps {
  config: Config;
  bundle: Bundle;
  pool: Pick<SessionPool, 'run' | 'executionProvider' | 'size'>;
  metrics: Metrics;
  logger: Logger;
  readiness: Readiness;
}

export function createApp(deps: AppDeps): HttpApp {
  const { config, bundle, pool, metrics } = deps;
  const { manifest } = bundle;
  const inference = createInference(
    pool,
    manifest.input,
    manifest.classes.length,
    {
      maxBatchSize: config.ASM_FER_MAX_BATCH_SIZE,
      maxQueueDelayMs: config.ASM_FER_MAX_QUEUE_DELAY_MS,
      maxQueue: config.ASM_FER_MAX_QUEUE,
      maxInFlight: Math.max(1, pool.size),
    },
    metrics,
  );
  metrics.setModelInfo(manifest.name, manifest.version, pool.executionProvider);
  return createHttpApp({
    config,
    manifest,
    executionProvider: pool.executionProvider,
    inference,
    metrics,
    logger: deps.logger,
    readiness: deps.readiness,
    apiSpecPath: API_SPEC_PATH,
  });
}
