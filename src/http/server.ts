// Assembles the Express app: request context (id, log, metrics, timeout), JSON body limit, contract validation, routes,
// the problem handler.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import express, { type Express, type RequestHandler } from 'express';
import type { Logger } from 'pino';
import type { AuditTrail } from '../audit/trail.js';
import type { Config } from '../config.js';
import type { FaceDetector } from '../detect/detector.js';
import { RequestTimeout } from '../errors.js';
import type { ModelHost } from '../inference/model-host.js';
import type { Metrics } from '../metrics.js';
import { auditRouter } from './audit.js';
import { auditsRouter } from './audits.js';
import { apiKeyIfConfigured } from './auth.js';
import { healthRouter } from './health.js';
import { modelsRouter } from './models.js';
import { predictRouter } from './predict.js';
import { notFound, problemHandler, sendProblem } from './problem.js';
import { v2Router } from './v2.js';
import { contractValidator } from './upload.js';

/** The Express application, named here so code outside src/http/ need not import express. */
export type HttpApp = Express;

export interface Readiness {
  isReady(): boolean;
}

export interface HttpDeps {
  config: Config;
  host: ModelHost;
  /** Finds faces in photos for /v1/predict and /v1/audit; not swapped by a model reload. */
  detector: FaceDetector;
  metrics: Metrics;
  logger: Logger;
  readiness: Readiness;
  /** The audit trail: store, live statistics, drift. */
  trail: AuditTrail;
  apiSpecPath: string;
  /** This service's version (package.json), reported by GET /v2. */
  serverVersion: string;
}

/** Client-chosen request ids are echoed only when short and plain, so they are safe in logs and headers. */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

function requestContext(logger: Logger, metrics: Metrics): RequestHandler {
  return (req, res, next) => {
    const given = req.get('x-request-id');
    const id = given && REQUEST_ID.test(given) ? given : randomUUID();
    res.setHeader('X-Request-Id', id);
    const log = logger.child({ reqId: id });
    res.locals.log = log;
    const started = performance.now();
    res.on('finish', () => {
      const seconds = (performance.now() - started) / 1000;
      // Route templates only (never raw URLs) keep the label set bounded.
      const route: string = (req.route as { path?: string } | undefined)?.path ?? (req as { openapi?: { openApiRoute?: string } }).openapi?.openApiRoute ?? 'unmatched';
      metrics.observeRequest(route, req.method, res.statusCode, seconds);
      log.info({ method: req.method, route, status: res.statusCode, ms: Math.round(seconds * 1000) }, 'request');
    });
    next();
  };
}

/**
 * Answers 503 request-timeout when a request is still unanswered after `ms`. The work itself is not cancelled (an
 * image already queued still runs); the handler's late reply is dropped by sendProblem.
 */
function requestTimeout(ms: number, logger: Logger, metrics: Metrics): RequestHandler {
  return (req, res, next) => {
    const timer = setTimeout(() => {
      if (!res.headersSent) sendProblem(new RequestTimeout(ms), req, res, logger, metrics);
    }, ms);
    res.once('close', () => clearTimeout(timer));
    next();
  };
}

export function createHttpApp(deps: HttpDeps): Express {
  const spec = readFileSync(deps.apiSpecPath, 'utf8');
  const app = express();
  app.disable('x-powered-by');
  app.use(requestContext(deps.logger, deps.metrics));
  app.get('/openapi.yaml', (_req, res) => {
    res.type('application/yaml').send(spec);
  });
  app.get('/metrics', async (_req, res) => {
    res.type(deps.metrics.contentType).send(await deps.metrics.render());
  });
  app.use(healthRouter(deps));
  app.use(requestTimeout(deps.config.ASM_FER_REQUEST_TIMEOUT_MS, deps.logger, deps.metrics));
  // Before the body is parsed, so an unauthenticated upload is refused without buffering it.
  app.use(['/v1/audit', '/v1/audits'], apiKeyIfConfigured(deps.config.ASM_FER_API_KEY));
  // Parsed before the validator, which checks the parsed body against the contract.
  app.use(express.json({ limit: deps.config.ASM_FER_MAX_JSON_BYTES }));
  app.use(contractValidator(deps.config, deps.apiSpecPath));
  app.use(predictRouter(deps));
  app.use(auditRouter(deps));
  app.use(auditsRouter(deps));
  app.use(modelsRouter(deps));
  app.use(v2Router(deps));
  app.use(notFound);
  app.use(problemHandler(deps.logger, deps.metrics));
  return app;
}
