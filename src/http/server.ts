// Assembles the Express app: request context (id, log, metrics, timeout), JSON body limit, contract validation, routes,
// the problem handler.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import express, { type Express, type RequestHandler } from 'express';
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import { admission } from './admission.js';
import { auditHandler, auditLabelsRouter } from './audit-labels.js';
import { auditTrailRouter } from './audit-trail.js';
import { cancellation } from './cancel.js';
import { apiKeyIfConfigured } from './auth.js';
import { cors } from './cors.js';
import type { HttpDeps } from './deps.js';
import { healthRouter } from './health.js';
import { labelStudioRouter, labelStudioSecret, labelStudioWebhookRejections } from './label-studio.js';
import { modelsRouter } from './models.js';
import { predictHandler, predictRouter } from './predict.js';
import { imageRouteIntake } from './image-intake.js';
import { parseQuery } from './query.js';
import { clientErrorProblem, notFound, problemHandler } from './problem.js';
import { RequestTiming } from './server-timing.js';
import { v2Router } from './v2.js';
import { contractValidator } from './upload.js';

/** Client-chosen request ids are echoed only when short and plain, so they are safe in logs and headers. */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

function requestContext(logger: Logger, metrics: Metrics): RequestHandler {
  return (req, res, next) => {
    const given = req.get('x-request-id');
    const id = given && REQUEST_ID.test(given) ? given : randomUUID();
    res.setHeader('X-Request-Id', id);
    // The request's child logger is made on first use: below the info level a served request never logs.
    let log: Logger | undefined;
    const requestLog = () => (log ??= logger.child({ reqId: id }));
    Object.defineProperty(res.locals, 'log', { get: requestLog, enumerable: true });
    const timing = new RequestTiming();
    res.locals.timing = timing;
    res.on('finish', () => {
      const seconds = (performance.now() - timing.started) / 1000;
      // Route templates only (never raw URLs) keep the label set bounded.
      const route: string = (res.locals.route as string | undefined) ?? (req.route as { path?: string } | undefined)?.path ?? (req as { openapi?: { openApiRoute?: string } }).openapi?.openApiRoute ?? 'unmatched';
      metrics.observeRequest(route, req.method, res.statusCode, seconds);
      if (logger.isLevelEnabled('info')) requestLog().info({ method: req.method, route, status: res.statusCode, ms: Math.round(seconds * 1000) }, 'request');
    });
    next();
  };
}

export function createHttpApp(deps: HttpDeps): Express {
  const spec = readFileSync(deps.apiSpecPath, 'utf8');
  const app = express();
  app.disable('x-powered-by');
  // Every response is fresh (POST results, live health and metrics): hashing each body for an ETag is wasted work.
  app.set('etag', false);
  app.set('query parser', parseQuery);
  app.use(requestContext(deps.logger, deps.metrics));
  app.use(cors(deps.config.ASM_FER_CORS_ORIGINS));
  app.get('/openapi.yaml', (_req, res) => {
    res.type('application/yaml').send(spec);
  });
  app.get('/metrics', async (_req, res) => {
    res.type(deps.metrics.contentType).send(await deps.metrics.render());
  });
  app.use(healthRouter(deps));
  app.use(cancellation(deps.config.ASM_FER_REQUEST_TIMEOUT_MS, deps.logger, deps.metrics));
  // Before the body is parsed, so an unauthenticated upload is refused without buffering it, and before admission, so
  // it never holds one of the inference slots.
  app.use(['/v1/audit', '/v1/audits'], apiKeyIfConfigured(deps.config.ASM_FER_API_KEY));
  app.use('/label-studio', labelStudioSecret(deps.labelStudio ? deps.config.ASM_FER_LABEL_STUDIO_SECRET : undefined));
  app.use(admission(deps.config.ASM_FER_MAX_QUEUE, deps.logger, deps.metrics));
  // The image routes' own intake (same schemas, limits and answers), without the validator's per-request route lookup
  // and Express's routing; what it does not take whole goes on below.
  app.use(imageRouteIntake(deps.config, deps.apiSpecPath, { '/v1/predict': predictHandler(deps), '/v1/audit': auditHandler(deps) }));
  // Parsed before the validator, which checks the parsed body against the contract.
  app.use(express.json({ limit: deps.config.ASM_FER_MAX_JSON_BYTES }));
  app.use(contractValidator(deps.config, deps.apiSpecPath));
  app.use(predictRouter(deps));
  app.use(auditLabelsRouter(deps));
  app.use(auditTrailRouter(deps));
  app.use(modelsRouter(deps));
  app.use(v2Router(deps));
  app.use(labelStudioRouter(deps));
  app.use(notFound);
  app.use('/label-studio/webhook', labelStudioWebhookRejections(deps));
  app.use(problemHandler(deps.logger, deps.metrics, { maxFiles: deps.config.ASM_FER_MAX_FILES, maxFileBytes: deps.config.ASM_FER_MAX_FILE_BYTES }));
  return app;
}

/** How often Node checks connections against the header and request timeouts (its default, 30 s, is far too coarse). */
const CONNECTION_CHECK_MS = 500;

/**
 * Listens with connection-level guards that act before Express sees a request: request line and headers must arrive
 * within ASM_FER_REQUEST_TIMEOUT_MS (slowloris), the whole request within that plus a second (a backstop behind the
 * per-request timer), and what Node's parser rejects is answered as problem+json instead of a bare status line.
 */
export function listen(app: Express, deps: Pick<HttpDeps, 'config' | 'logger' | 'metrics'>): Promise<Server> {
  const ms = deps.config.ASM_FER_REQUEST_TIMEOUT_MS;
  const server = createServer({ headersTimeout: ms, requestTimeout: ms + 1000, connectionsCheckingInterval: CONNECTION_CHECK_MS }, app);
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    // A response already under way on this connection (e.g. a refusal whose body is still trickling in) must not get
    // a second one written after it; Node's own handler makes the same check.
    const current = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    const answer = socket.writable && !current?.headersSent ? clientErrorProblem(err, ms) : undefined;
    if (!answer) {
      socket.destroy();
      return;
    }
    deps.logger.info({ code: err.code, status: answer.problem.status }, 'connection refused before routing');
    deps.metrics.recordRejection(answer.problem.slug);
    socket.end(answer.raw);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(deps.config.PORT, deps.config.ASM_FER_HOST, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
