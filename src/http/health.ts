// KServe v2 health: live while the process runs; ready once the model is loaded and warmed up, until shutdown.
import { Router } from 'express';
import { NotReady } from '../errors.js';
import type { components } from './api.gen.js';
import type { HttpDeps } from './deps.js';

type Health = components['schemas']['Health'];

export function healthRouter(deps: Pick<HttpDeps, 'readiness'>): Router {
  const router = Router();
  router.get('/v2/health/live', (_req, res) => {
    const body: Health = { status: 'live' };
    res.json(body);
  });
  router.get('/v2/health/ready', (_req, res) => {
    if (!deps.readiness.isReady()) throw new NotReady('the model is not loaded and warmed up, or the service is stopping');
    const body: Health = { status: 'ready' };
    res.json(body);
  });
  return router;
}
