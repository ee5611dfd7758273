// GET /v1/models: what is served (classes, thresholds, input contract, execution provider, provenance);
// POST /v1/models/reload: swap in the bundle on disk again, behind the admin bearer token.
import { createHash, timingSafeEqual } from 'node:crypto';
import { Router, type Request } from 'express';
import { Forbidden, Unauthorized } from '../errors.js';
import type { ServedModel } from '../inference/model-host.js';
import type { components } from './api.gen.js';
import type { HttpDeps } from './server.js';

type ModelInfo = components['schemas']['ModelInfo'];
type ModelList = components['schemas']['ModelList'];

export function modelInfo({ manifest: m, pool }: ServedModel): ModelInfo {
  return {
    name: m.name,
    version: m.version,
    classes: [...m.classes],
    thresholds: Object.fromEntries(m.classes.map((c) => [c, { clean: m.thresholds[c]?.clean ?? 1, noisy: m.thresholds[c]?.noisy ?? 0 }])),
    input: { ...m.input },
    executionProvider: pool.executionProvider,
    provenance: {
      dataset: m.provenance.dataset,
      noise: m.provenance.noise,
      method: m.provenance.method,
      evalSplit: m.provenance.evalSplit,
      accuracy: m.provenance.metrics.accuracy,
      createdAt: m.provenance.createdAt,
    },
  };
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/**
 * Without a configured token the endpoint is off (403): loopback-only would still admit any sidecar sharing the
 * network namespace, and SIGHUP already gives operators a tokenless reload. Digests make the comparison
 * constant-time whatever the lengths.
 */
function authorize(req: Request, token: string | undefined): void {
  if (token === undefined) throw new Forbidden('model reload over HTTP is disabled; set ASM_FER_ADMIN_TOKEN, or send the process SIGHUP');
  const m = /^Bearer\s+(\S+)\s*$/i.exec(req.get('authorization') ?? '');
  if (!m || !timingSafeEqual(digest(m[1] as string), digest(token))) throw new Unauthorized('send Authorization: Bearer <ASM_FER_ADMIN_TOKEN>');
}

export function modelsRouter(deps: HttpDeps): Router {
  const { host, config, detector } = deps;
  const router = Router();
  router.get('/v1/models', (_req, res) => {
    const body: ModelList = { models: [modelInfo(host.current)], detector: { ...detector.info, autoMaxSide: config.ASM_FER_DETECT_AUTO_MAX_SIDE } };
    res.json(body);
  });
  router.post('/v1/models/reload', async (req, res) => {
    authorize(req, config.ASM_FER_ADMIN_TOKEN);
    const log = res.locals.log as HttpDeps['logger'];
    try {
      const served = await host.reload();
      log.info({ model: served.manifest.name, version: served.manifest.version, executionProvider: served.pool.executionProvider }, 'model reloaded');
      const body: ModelInfo = modelInfo(served);
      res.json(body);
    } catch (err) {
      log.warn({ err: err instanceof Error ? err.message : String(err) }, 'model reload refused; the previous model keeps serving');
      throw err;
    }
  });
  return router;
}
