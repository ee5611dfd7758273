// Entry point: config → bundle → session pool (warm-up) → createApp → listen → graceful shutdown on SIGTERM/SIGINT.
import type { Server } from 'node:http';
import { pino } from 'pino';
import { createApp } from './app.js';
import { loadBundle } from './bundle/load-bundle.js';
import { loadConfig } from './config.js';
import { tensorSize } from './inference/preprocess.js';
import { SessionPool } from './inference/session-pool.js';
import { createMetrics } from './metrics.js';

/** In-flight requests get this long to finish after a signal before the process exits anyway. */
const SHUTDOWN_GRACE_MS = 10_000;

function fail(reason: unknown): never {
  const msg = reason instanceof Error ? reason.message : String(reason);
  process.stderr.write(`asm-fer: cannot start: ${msg.split('\n')[0]}\n`);
  process.exit(1);
}

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = pino({ level: config.ASM_FER_LOG_LEVEL, base: { service: 'asm-fer' } });
  const bundle = await loadBundle(config.ASM_FER_MODEL_DIR);
  const { manifest } = bundle;
  logger.info({ model: manifest.name, version: manifest.version, dir: bundle.dir }, 'bundle verified');

  const pool = await SessionPool.start({
    modelPath: bundle.modelPath,
    inputName: manifest.input.name,
    outputName: manifest.output.name,
    preferredProviders: config.ASM_FER_EXECUTION_PROVIDERS,
    workers: config.ASM_FER_WORKERS,
    intraOpThreads: config.ASM_FER_INTRA_OP_THREADS,
  });
  logger.info(
    { executionProvider: pool.executionProvider, attempts: pool.plan.attempts, unavailable: pool.plan.unavailable, failures: pool.failures },
    'sessions loaded',
  );

  // One zero image per worker: the first run allocates arenas and picks kernels, and readiness must wait for that.
  const { input } = manifest;
  await Promise.all(
    Array.from({ length: pool.size }, () => pool.run(new Float32Array(tensorSize(input)), [1, input.channels, input.height, input.width])),
  );

  let ready = true;
  const metrics = createMetrics();
  const app = createApp({ config, bundle, pool, metrics, logger, readiness: { isReady: () => ready } });
  const server: Server = await new Promise((resolve, reject) => {
    const s = app.listen(config.PORT, config.ASM_FER_HOST, () => resolve(s));
    s.once('error', reject);
  });
  const address = server.address();
  logger.info({ address }, 'listening');

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    ready = false;
    logger.info({ signal }, 'shutting down');
    const force = setTimeout(() => {
      logger.warn('grace period over; closing remaining connections');
      server.closeAllConnections();
    }, SHUTDOWN_GRACE_MS);
    force.unref();
    server.close(() => {
      void pool.close().then(() => {
        logger.info('stopped');
        process.exit(0);
      });
    });
    server.closeIdleConnections();
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch(fail);
