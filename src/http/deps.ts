// What the HTTP layer is built from: the served model, the face detector, the audit trail, metrics, logging and
// readiness. In its own module so the routers and server.ts, which imports them all, share it without a cycle.
import type { Express } from 'express';
import type { Logger } from 'pino';
import type { AuditTrail } from '../audit/trail.js';
import type { Config } from '../config.js';
import type { FaceDetector } from '../faces/detector.js';
import type { PixelBudget } from '../image/pixel-budget.js';
import type { ModelHost } from '../inference/model-host.js';
import type { Metrics } from '../metrics.js';
import type { BackendDeps } from '../label-studio/backend.js';
import type { EventWorker } from '../label-studio/worker.js';

/** The Express application, named here so code outside src/http/ need not import express. */
export type HttpApp = Express;

export interface Readiness {
  /** What /v2/health/ready reports: false from the start of a shutdown, so load balancers stop sending. */
  isReady(): boolean;
  /** Whether requests are still served: true while a shutdown drains (ASM_FER_SHUTDOWN_DELAY_MS). */
  isServing(): boolean;
}

export interface HttpDeps {
  config: Config;
  host: ModelHost;
  /** Finds faces in photos for /v1/predict and /v1/audit; not swapped by a model reload. */
  detector: FaceDetector;
  /** Decoded pixels per request and for the process, reserved from image headers before decoding. */
  pixels: PixelBudget;
  metrics: Metrics;
  logger: Logger;
  readiness: Readiness;
  /** The audit trail: store, live statistics, drift. */
  trail: AuditTrail;
  /** The Label Studio ML backend (routes under /label-studio), when configured. */
  labelStudio?: { backend: BackendDeps; worker: Pick<EventWorker, 'wake'> } | undefined;
  apiSpecPath: string;
  /** This service's version (package.json), reported by GET /v2. */
  serverVersion: string;
}
