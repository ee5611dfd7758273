// The service assembled in one place: config → the expression model (bundle verified, sessions warmed up) and the
// face detector → the audit trail (live windows refilled) → metrics wired → the HTTP app. main.ts listens on it and
// handles signals; the tests start the same service around the tiny model, and the benchmarks start its models.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { pino, type Logger } from 'pino';
import type { PostgresOptions } from './audit/postgres-store.js';
import { openAuditTrail, type AuditTrail, type AuditTrailOptions } from './audit/trail.js';
import type { Config } from './config.js';
import { DETECTOR_VARIANTS } from './faces/blazeface.js';
import { FaceDetector, type DetectorOptions } from './faces/detector.js';
import { PixelBudget, type PixelBudgetOptions } from './image/pixel-budget.js';
import type { HttpApp } from './http/deps.js';
import { createHttpApp } from './http/server.js';
import { ModelHost, startModel, type BatchSettings, type LoadedModel, type SessionSettings } from './inference/model-host.js';
import type { PoolOptions, SessionPool } from './onnx/session-pool.js';
import { createMetrics, type Metrics } from './metrics.js';
import { silentProjects, type BackendDeps } from './label-studio/backend.js';
import { LabelStudioClient, type LabelStudioOptions } from './label-studio/client.js';
import { PostgresEventQueue } from './label-studio/queue-postgres.js';
import { SqliteEventQueue } from './label-studio/queue-sqlite.js';
import type { EventQueue } from './label-studio/queue.js';
import { EventWorker, type WorkerOptions } from './label-studio/worker.js';

/** openapi.yaml and package.json sit at the repository root, one level above src/ and dist/. */
export const API_SPEC_PATH = fileURLToPath(new URL('../openapi.yaml', import.meta.url));
const PACKAGE_JSON = fileURLToPath(new URL('../package.json', import.meta.url));

export interface ServiceHooks {
  /** Where the service logs; by default pino at ASM_FER_LOG_LEVEL. */
  logger?: Logger;
  /** Metrics registry; by default a fresh one with Node's default metrics. */
  metrics?: Metrics;
  /** Tests only: expression-model pool knobs (injected provider list, crash hook); the detector gets the provider list. */
  pool?: Partial<PoolOptions>;
  /** Tests only: wraps the first loaded model, e.g. to put a stub in front of its pool. */
  wrap?: (model: LoadedModel & { pool: SessionPool }) => LoadedModel;
}

/**
 * Config → each module's options, mapped here once, so the modules below src/http/ take plain settings and never
 * read environment-variable-named fields.
 */
export function moduleOptions(config: Config): {
  sessions: SessionSettings;
  batching: BatchSettings;
  detector: DetectorOptions;
  pixels: PixelBudgetOptions;
  trail: AuditTrailOptions;
  /** The Label Studio backend, when configured (config.ts checks its variables come together). */
  labelStudio: { client: LabelStudioOptions; labelMap: Readonly<Record<string, string>>; worker: WorkerOptions; queue: QueueOptions } | undefined;
} {
  const providers = { preferredProviders: config.ASM_FER_EXECUTION_PROVIDERS, intraOpThreads: config.ASM_FER_INTRA_OP_THREADS };
  const postgres =
    config.ASM_FER_AUDIT_DB === undefined
      ? undefined
      : {
          url: config.ASM_FER_AUDIT_DB,
          poolSize: config.ASM_FER_AUDIT_DB_POOL_SIZE,
          acquireTimeoutMs: config.ASM_FER_AUDIT_DB_ACQUIRE_TIMEOUT_MS,
          queryTimeoutMs: config.ASM_FER_AUDIT_DB_QUERY_TIMEOUT_MS,
        };
  return {
    // The detector has no lone-run session: on 480-px JPEGs at one connection it changed nothing (issue 32).
    sessions: { ...providers, workers: config.ASM_FER_WORKERS, loneThreads: config.ASM_FER_LONE_RUN_THREADS },
    batching: {
      maxBatchSize: config.ASM_FER_MAX_BATCH_SIZE,
      maxQueueDelayMs: config.ASM_FER_MAX_QUEUE_DELAY_MS,
      idleQueueDelayMs: config.ASM_FER_IDLE_QUEUE_DELAY_MS,
      maxQueue: config.ASM_FER_MAX_QUEUE,
    },
    detector: {
      ...providers,
      variant: DETECTOR_VARIANTS[config.ASM_FER_DETECTOR],
      minScore: config.ASM_FER_DETECT_MIN_SCORE,
      iouThreshold: config.ASM_FER_DETECT_IOU,
      maxFaces: config.ASM_FER_DETECT_MAX_FACES,
    },
    pixels: { perRequest: config.ASM_FER_REQUEST_PIXEL_BUDGET, perProcess: config.ASM_FER_PROCESS_PIXEL_BUDGET },
    trail: {
      database: postgres === undefined ? { kind: 'sqlite', dir: config.ASM_FER_DATA_DIR, maxBytes: config.ASM_FER_AUDIT_MAX_BYTES } : { kind: 'postgres', ...postgres },
      sharedStatsTtlMs: config.ASM_FER_STATS_CACHE_MS,
      windowSize: config.ASM_FER_STATS_WINDOW,
      onlineThresholds: config.ASM_FER_ONLINE_THRESHOLDS,
      driftThreshold: config.ASM_FER_DRIFT_THRESHOLD,
      minSamples: config.ASM_FER_DRIFT_MIN_SAMPLES,
    },
    labelStudio:
      config.LABEL_STUDIO_URL !== undefined && config.LABEL_STUDIO_API_KEY !== undefined
        ? {
            client: { url: config.LABEL_STUDIO_URL, apiKey: config.LABEL_STUDIO_API_KEY, timeoutMs: config.ASM_FER_LABEL_STUDIO_TIMEOUT_MS, maxImageBytes: config.ASM_FER_MAX_FILE_BYTES },
            labelMap: config.ASM_FER_LABEL_STUDIO_LABEL_MAP,
            // 1 s first: a Label Studio restart or a network blip usually passes within seconds. Polled every 5 s on
            // a shared queue: notifications wake a worker at once, polling covers one lost while its listener reconnects.
            worker: {
              retryBaseMs: 1000,
              retryMaxMs: config.ASM_FER_LABEL_STUDIO_RETRY_MAX_MS,
              sweepMs: config.ASM_FER_LABEL_STUDIO_SWEEP_MS,
              leaseMs: config.ASM_FER_LABEL_STUDIO_LEASE_MS,
              pollMs: 5000,
            },
            // The queue lives where the trail does: in label-studio.db beside audits.db for one process, in the
            // audit database for replicas sharing it, so that one event is written back by one of them.
            queue: postgres === undefined ? { kind: 'sqlite', dir: config.ASM_FER_DATA_DIR } : { kind: 'postgres', ...postgres },
          }
        : undefined,
  };
}

/** Where the Label Studio queue is kept. */
export type QueueOptions = { kind: 'sqlite'; dir: string } | ({ kind: 'postgres' } & PostgresOptions);

/** Opens the queue: a SQLite file that cannot be opened throws, a PostgreSQL database down now is opened later. */
export async function openEventQueue(opts: QueueOptions): Promise<EventQueue> {
  return opts.kind === 'sqlite' ? SqliteEventQueue.open(opts.dir) : PostgresEventQueue.open(opts);
}

/** The Label Studio backend's use-case dependencies and the worker draining its queue. */
export interface LabelStudioBackend {
  backend: BackendDeps;
  worker: EventWorker;
}

/** The two ONNX models the request path runs: the expression model behind its host, and the face detector. */
export interface Models {
  host: ModelHost;
  detector: FaceDetector;
  /** The first expression model loaded (a reload replaces host.current). */
  first: LoadedModel & { pool: SessionPool };
  logger: Logger;
  metrics: Metrics;
  close(): Promise<void>;
}

export interface Service extends Models {
  config: Config;
  trail: AuditTrail;
  app: HttpApp;
  /** The Label Studio ML backend, when configured. */
  labelStudio: LabelStudioBackend | undefined;
  /**
   * Ready from start until `draining` is set (main.ts does on SIGTERM): /v2/health/ready then answers 503 while
   * requests are still served, until `ready` is set false just before the listener closes.
   */
  readiness: { ready: boolean; draining: boolean; isReady(): boolean; isServing(): boolean };
  /** How long a stopping process keeps serving after its readiness turns false (ASM_FER_SHUTDOWN_DELAY_MS). */
  shutdownDelayMs: number;
}

/** Loads, verifies and warms up the expression model (reloadable) and the face detector, each in its own workers. */
export async function startModels(config: Config, hooks: ServiceHooks = {}): Promise<Models> {
  const logger = hooks.logger ?? pino({ level: config.ASM_FER_LOG_LEVEL, base: { service: 'asm-fer' } });
  const metrics = hooks.metrics ?? createMetrics();
  const opts = moduleOptions(config);
  const onWorkerEvent: PoolOptions['onWorkerEvent'] = (e) => {
    if (e.kind === 'respawned') metrics.recordWorkerRestart();
    logger[e.kind === 'respawned' ? 'info' : 'error'](e, `session worker ${e.kind}`);
  };
  const load = async () => {
    const model = await startModel(config.ASM_FER_MODEL_DIR, opts.sessions, { ...hooks.pool, onWorkerEvent });
    const { manifest } = model.bundle;
    const { pool } = model;
    logger.info(
      { model: manifest.name, version: manifest.version, dir: model.bundle.dir, executionProvider: pool.executionProvider, workers: pool.size, intraOpThreads: config.ASM_FER_INTRA_OP_THREADS, loneRunThreads: pool.loneThreads ?? null, attempts: pool.plan.attempts, unavailable: pool.plan.unavailable, failures: pool.failures },
      'bundle verified, sessions loaded and warmed up',
    );
    return model;
  };
  const first = await load();
  const host = new ModelHost(hooks.wrap ? hooks.wrap(first) : first, opts.batching, metrics, load);
  let detector: FaceDetector;
  try {
    // The injected provider list describes the onnxruntime build, which both models share.
    const available = hooks.pool?.available;
    detector = await FaceDetector.start(opts.detector, metrics, { onWorkerEvent, ...(available ? { available } : {}) });
  } catch (err) {
    await host.close();
    throw err;
  }
  logger.info(detector.info, 'face detector verified, session loaded and warmed up');
  const close = async () => {
    await Promise.all([host.close(), detector.close()]);
  };
  return { host, detector, first, logger, metrics, close };
}

/** The whole service, ready to listen; close() stops its sessions and closes the audit trail. */
export async function startService(config: Config, hooks: ServiceHooks = {}): Promise<Service> {
  const models = await startModels(config, hooks);
  const { host, logger, metrics } = models;
  const trail = await openAuditTrail(moduleOptions(config).trail, {
    onFailure: (err) => logger.error({ err: err instanceof Error ? err.message : String(err) }, 'audit trail unusable; audits answer 503 until it can be written again'),
    onRecovery: () => logger.info('audit trail usable again'),
  });
  logger.info({ location: trail.store.location, shared: trail.store.shared, available: trail.store.available }, 'audit trail');
  try {
    if (trail.store.shared) logger.info({ windowSize: config.ASM_FER_STATS_WINDOW, cacheMs: config.ASM_FER_STATS_CACHE_MS }, 'live audit windows are read from the shared trail');
    else {
      const restored = await trail.restoreLive(host.current.manifest);
      logger.info({ restored, windowSize: config.ASM_FER_STATS_WINDOW }, 'live audit windows refilled from the stored records of the served model');
    }
  } catch (err) {
    logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'live audit windows start empty: the audit trail cannot be read now');
  }

  const pixels = new PixelBudget(moduleOptions(config).pixels);
  metrics.trackPixels(() => pixels.inUse);
  metrics.trackQueueDepth(() => host.current.inference.queued);
  metrics.trackAuditStats(() => trail.statsNow(host.current.manifest));
  const readiness = {
    ready: true,
    draining: false,
    isReady() {
      return this.ready && !this.draining;
    },
    isServing() {
      return this.ready;
    },
  };
  let labelStudio: LabelStudioBackend | undefined;
  const ls = moduleOptions(config).labelStudio;
  if (ls) {
    // Opened here, not lazily: a queue file that cannot be opened must stop the start, not lose the first webhook.
    const queue = await openEventQueue(ls.queue);
    const backend: BackendDeps = {
      host,
      trail,
      client: new LabelStudioClient(ls.client),
      queue,
      labelMap: ls.labelMap,
      faces: { maxPixels: config.ASM_FER_MAX_PIXELS, autoMaxSide: config.ASM_FER_DETECT_AUTO_MAX_SIDE, detector: models.detector, pixels },
      storeImages: config.ASM_FER_AUDIT_STORE_IMAGES,
      metrics,
    };
    const worker = new EventWorker(backend, ls.worker, metrics, logger.child({ component: 'label-studio' }));
    metrics.trackLabelStudioQueue(() => queue.stats(Date.now()));
    metrics.trackLabelStudioSilentProjects(async () => (await silentProjects(backend)).length);
    labelStudio = { backend, worker };
    const pending = await queue.stats(Date.now()).catch(() => undefined);
    logger.info(
      { labelStudio: backend.client.origin, queue: queue.location, shared: queue.shared, pending: pending?.depth ?? 'unknown (queue unavailable)', failed: pending?.failed },
      'label studio backend on; resuming its queue',
    );
    worker.start();
  }
  const { version } = JSON.parse(readFileSync(PACKAGE_JSON, 'utf8')) as { version: string };
  const app = createHttpApp({ config, host, detector: models.detector, pixels, metrics, logger, readiness, trail, labelStudio, apiSpecPath: API_SPEC_PATH, serverVersion: version });
  const close = async () => {
    // The event in progress settles first (its outcome on disk, or still pending for the next start).
    await labelStudio?.worker.stop();
    await labelStudio?.backend.queue.close();
    await models.close();
    await trail.store.close();
  };
  return { ...models, config, trail, app, readiness, shutdownDelayMs: config.ASM_FER_SHUTDOWN_DELAY_MS, labelStudio, close };
}
