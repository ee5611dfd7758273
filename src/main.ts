// Entry point: config → startService (models warmed up, audit trail, app) → listen; SIGHUP reloads the model,
// SIGTERM/SIGINT stop gracefully (readiness false, optionally keep serving a while, stop accepting, finish in-flight
// requests, exit).
import type { Server } from 'node:http';
import { loadConfig } from './config.js';
import { listen } from './http/server.js';
import { startService } from './service.js';

/** In-flight requests get this long to finish after a signal before the process exits anyway. */
const SHUTDOWN_GRACE_MS = 10_000;

function fail(reason: unknown): never {
  const msg = reason instanceof Error ? reason.message : String(reason);
  process.stderr.write(`asm-fer: cannot start: ${msg.split('\n')[0]}\n`);
  process.exit(1);
}

async function main(): Promise<void> {
  const config = loadConfig();
  const service = await startService(config);
  const { host, logger, readiness } = service;
  const server: Server = await listen(service.app, { config, logger, metrics: service.metrics });
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
    // Readiness first, so a load balancer polling /v2/health/ready stops sending before the listener closes; with
    // ASM_FER_SHUTDOWN_DELAY_MS the process keeps serving that long first, for balancers that poll (HAProxy, a
    // Kubernetes Service) rather than learn of the stop at once.
    readiness.draining = true;
    logger.info({ signal, delayMs: service.shutdownDelayMs }, 'shutting down');
    const stop = () => {
      readiness.ready = false;
      const force = setTimeout(() => {
        logger.warn('grace period over; closing remaining connections');
        server.closeAllConnections();
      }, SHUTDOWN_GRACE_MS);
      force.unref();
      server.close(() => {
        void service.close().then(() => {
          logger.info('stopped');
          process.exit(0);
        });
      });
      // Keep-alive connections turn idle as their last response ends; close them as they do, not after keepAliveTimeout.
      setInterval(() => server.closeIdleConnections(), 100).unref();
    };
    if (service.shutdownDelayMs > 0) setTimeout(stop, service.shutdownDelayMs);
    else stop();
  };

  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch(fail);
