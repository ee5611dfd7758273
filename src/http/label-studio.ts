// The Label Studio ML backend protocol under /label-studio: GET /health, POST /setup, POST /predict (Label Studio calls
// these once the backend is connected to a project) and POST /webhook (annotation events, queued durably and audited
// behind the answer); and asm-fer's own GET/PUT/DELETE /projects/{project}/label-map (a project's choice → class map).
// Every route needs the shared secret (ASM_FER_LABEL_STUDIO_SECRET); the work is in src/label-studio/backend.ts.
import { createHash, timingSafeEqual } from 'node:crypto';
import { Router, type ErrorRequestHandler, type Request, type RequestHandler, type Response } from 'express';
import type { Logger } from 'pino';
import { LabelConfigRefused, NotReady, Forbidden, Unauthorized } from '../errors.js';
import {
  deleteLabelMap,
  getLabelMap,
  modelVersion,
  predictTasks,
  projectIdOf,
  putLabelMap,
  receiveWebhook,
  setup,
  silentProjects,
  type LabelMapView,
  type PredictTask,
} from '../label-studio/backend.js';
import { LabelConfigError } from '../label-studio/label-config.js';
import type { components } from './api.gen.js';
import type { HttpDeps } from './deps.js';
import { signalOf } from './cancel.js';
import { toAppError } from './problem.js';

type HealthResponse = components['schemas']['LabelStudioHealth'];
type SetupResponse = components['schemas']['LabelStudioSetupResponse'];
type WebhookResponse = components['schemas']['LabelStudioWebhookResponse'];
type LabelMapResponse = components['schemas']['LabelStudioLabelMap'];
type LabelMapRequest = components['schemas']['LabelStudioLabelMapRequest'];

const labelMapBody = (v: LabelMapView): LabelMapResponse => ({
  project: v.projectId,
  labelMap: { ...v.labelMap },
  source: v.source,
  updatedAt: v.updatedMs === null ? null : new Date(v.updatedMs).toISOString(),
});

const digest = (s: string) => createHash('sha256').update(s).digest();

/** The secret from `Authorization: Basic <user:secret>` (Label Studio's ML backend basic auth) or `Bearer <secret>` (a webhook header). */
function presented(req: Request): string | undefined {
  const auth = req.get('authorization') ?? '';
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(auth);
  if (bearer) return bearer[1];
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(auth);
  if (!basic) return undefined;
  const decoded = Buffer.from(basic[1] as string, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? undefined : decoded.slice(colon + 1);
}

const ROUTES = new Set(['/label-studio/health', '/label-studio/setup', '/label-studio/predict', '/label-studio/webhook']);
const LABEL_MAP_ROUTE = '/label-studio/projects/:project/label-map';

/** The route template of a /label-studio path, for logs and metrics; unknown paths share one name. */
function routeOf(path: string): string {
  if (ROUTES.has(path)) return path;
  return /^\/label-studio\/projects\/[^/]+\/label-map$/.test(path) ? LABEL_MAP_ROUTE : '/label-studio/*';
}

/**
 * Every /label-studio route: 403 while the backend is not configured, 401 without the secret (constant-time compare).
 * Names the route first, so a request refused here (before routing) is logged and measured under its route rather
 * than "unmatched"; unknown paths share one name, which keeps the route label bounded.
 */
export function labelStudioSecret(secret: string | undefined): RequestHandler {
  return (req, res, next) => {
    const route = req.originalUrl.split('?')[0] ?? '';
    res.locals.route = routeOf(route);
    if (secret === undefined) throw new Forbidden('the Label Studio backend is off: set LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY and ASM_FER_LABEL_STUDIO_SECRET');
    const given = presented(req);
    if (given === undefined || !timingSafeEqual(digest(given), digest(secret))) {
      throw new Unauthorized('send ASM_FER_LABEL_STUDIO_SECRET as the basic-auth password of the ML backend connection, or as Authorization: Bearer <secret>');
    }
    next();
  };
}

/**
 * A config asm-fer cannot audit as 422 problem+json. Label Studio shows the connecting user only "422 Client Error",
 * so the refusal is also logged as one warn line naming the project (as Label Studio sends it: "<id>.<timestamp>" on
 * /setup) and the unmapped choices.
 */
function refused(err: unknown, classes: readonly string[], log: Logger, project: unknown): never {
  if (err instanceof LabelConfigError) {
    const named = typeof project === 'string' || typeof project === 'number' ? String(project) : 'unknown';
    log.warn({ project: named, unmappedChoices: err.unmapped, reason: err.message }, `Label Studio project ${named}: labeling config refused: ${err.message}`);
    throw new LabelConfigRefused(err.message, err.unmapped, classes);
  }
  throw err;
}

/**
 * Counts and logs a refused webhook (its reason: the problem type slug) before the problem handler answers it. Label
 * Studio does not resend a webhook that failed, so each one is an annotation that waits for the next sweep: worth a
 * warn line and a counter to alert on (a rotated secret, a header lost from the webhook's settings).
 */
export function labelStudioWebhookRejections(deps: Pick<HttpDeps, 'logger' | 'metrics'>): ErrorRequestHandler {
  return (err: unknown, req, res, next) => {
    const known = toAppError(err, '/label-studio/webhook', { contentType: req.headers['content-type'] });
    const reason = known?.slug ?? 'internal';
    deps.metrics.recordLabelStudioRejectedWebhook(reason);
    const log = (res.locals.log as Logger | undefined) ?? deps.logger;
    log.warn({ route: '/label-studio/webhook', status: known?.status ?? 500, reason }, 'label studio webhook refused; its annotation waits for the next sweep');
    next(err);
  };
}

export function labelStudioRouter(deps: HttpDeps): Router {
  const router = Router();
  const logOf = (res: Response): Logger => (res.locals.log as Logger | undefined) ?? deps.logger;
  const ls = deps.labelStudio;
  if (!ls) return router;
  const { backend, worker } = ls;

  router.get('/label-studio/health', async (_req, res) => {
    // Still UP with silent projects: Label Studio reads a health that is not UP as the backend being down.
    const silent = (await silentProjects(backend)).map((p) => ({ project: p.projectId, since: new Date(p.sinceMs).toISOString(), missed: p.missed }));
    res.json({ status: 'UP', model_version: modelVersion(deps.host.current.manifest), silent_projects: silent } satisfies HealthResponse);
  });

  router.post('/label-studio/setup', async (req, res) => {
    const body = req.body as { schema: string; project?: unknown };
    try {
      const { modelVersion: version } = await setup(backend, body.schema, projectIdOf(body.project), Date.now());
      res.json({ model_version: version } satisfies SetupResponse);
    } catch (err) {
      refused(err, deps.host.current.manifest.classes, logOf(res), body.project);
    }
  });

  router.post('/label-studio/predict', async (req, res) => {
    if (!deps.readiness.isReady()) throw new NotReady();
    const body = req.body as { tasks: PredictTask[]; label_config: string; project?: unknown };
    try {
      res.json(await predictTasks(backend, body.label_config, body.tasks, projectIdOf(body.project), signalOf(res)));
    } catch (err) {
      refused(err, deps.host.current.manifest.classes, logOf(res), body.project);
    }
  });

  // The contract has checked the project id (a positive integer) and the map's shape and size.
  router.get(LABEL_MAP_ROUTE, async (req, res) => {
    res.json(labelMapBody(await getLabelMap(backend, Number(req.params.project))));
  });
  router.put(LABEL_MAP_ROUTE, async (req, res) => {
    res.json(labelMapBody(await putLabelMap(backend, Number(req.params.project), req.body as LabelMapRequest, Date.now())));
  });
  router.delete(LABEL_MAP_ROUTE, async (req, res) => {
    res.json(labelMapBody(await deleteLabelMap(backend, Number(req.params.project), Date.now())));
  });

  router.post('/label-studio/webhook', async (req, res) => {
    // Committed (fsynced) before the answer: a 2xx means the event survives a crash; the audit follows behind it.
    const { events, queued } = await receiveWebhook(backend, req.body as Record<string, unknown>, Date.now());
    if (queued > 0) worker.wake();
    res.json({ events, queued } satisfies WebhookResponse);
  });
  return router;
}
