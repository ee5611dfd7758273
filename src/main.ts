// Entry point: config → bundle → session pool (warm-up) → createApp → listen; SIGHUP reloads the model,
// SIGTERM/SIGINT stop gracefully (readiness false, stop accepting, finish in-flight requests, exit).
import type { Server } from 'node:http';
import { pino } from 'pino';
import { createApp } from './app.js';
import { openAuditTrail } from './audit/trail.js';
import { loadConfig } from './config.js';
import { FaceDetector } from './faces/detector.js';
import { listen } from './http/server.js';
import { ModelHost, startModel } from './inference/model-host.js';
import type { PoolOptions } from './onnx/session-pool.js';
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
  const metrics = createMetrics();
  const poolEvents: Partial<PoolOptions> = {
    onWorkerEvent: (e) => {
      if (e.kind === 'respawned') metrics.recordWorkerRestart();
      logger[e.kind === 'respawned' ? 'info' : 'error'](e, `session worker ${e.kind}`);
    },
  };
  const load = async () => {
    const model = await startModel(config.ASM_FER_MODEL_DIR, config, poolEvents);
    const { manifest } = model.bundle;
    const { pool } = model;
    logger.info(
      { model: manifest.name, version: manifest.version, dir: model.bundle.dir, executionProvider: pool.executionProvider, attempts: pool.plan.attempts, unavailable: pool.plan.unavailable, failures: pool.failures },
      'bundle verified, sessions loaded and warmed up',
    );
    return model;
  };
  const host = new ModelHost(await load(), config, metrics, load);
  const detector = await FaceDetector.start(config, metrics, poolEvents);
  logger.info(detector.info, 'face detector verified, session loaded and warmed up');

  const trail = openAuditTrail(config, {
    onFailure: (err) => logger.error({ err: err instanceof Error ? err.message : String(err) }, 'audit trail unusable; audits answer 503 until it can be written again'),
    onRecovery: () => logger.info('audit trail usable again'),
  });
  logger.info({ file: trail.store.file, available: trail.store.available }, 'audit trail');
  try {
    const restored = trail.restoreLive(host.current.manifest);
    logger.info({ restored, windowSize: config.ASM_FER_STATS_WINDOW }, 'live audit windows refilled from the stored records of the served model');
  } catch (err) {
    logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'live audit windows start empty: the audit trail cannot be read now');
  }

  let ready = true;
  const app = createApp({ config, host, detector, metrics, logger, readiness: { isReady: () => ready }, trail });
  const server: Server = await listen(app, { config, logger, metrics });
  const address = server.address();
  logger.info({ address }, 'listening');

  process.on('SIGHUP', () => {
    host.reload().then(
      (m) => logger.info({ model: m.manifest.name, version: m.manifest.version, signal: 'SIGHUP' }, 'model reloaded'),
      (err: unknown) => logger.error({ err: err instanceof Error ? err.message : String(err), signal: 'SIGHUP' }, 'model reload refused; the previous model keeps serving'),
    );
  });

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    // Readiness first, so a load balancer polling /v2/health/ready stops sending before the listener closes.
    ready = false;
    logger.info({ signal }, 'shutting down');
    const force = setTimeout(() => {
      logger.warn('grace period over; closing remaining connections');
      server.closeAllConnections();
    }, SHUTDOWN_GRACE_MS);
    force.unref();
    server.close(() => {
      void Promise.all([host.close(), detector.close()]).then(() => {
        trail.store.close();
        logger.info('stopped');
        process.exit(0);
      });
    });
    // Keep-alive connections turn idle as their last response ends; close them as they do, not after keepAliveTimeout.
    setInterval(() => server.closeIdleConnections(), 100).unref();
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch(fail);
