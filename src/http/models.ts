// GET /v1/models: what is served (classes, thresholds, input contract, execution provider, provenance);
// POST /v1/models/reload: swap in the bundle on disk again, behind the API key.
import { Router } from 'express';
import type { Calibration } from '../bundle/load-bundle.js';
import type { ServedModel } from '../inference/model-host.js';
import type { components } from './api.gen.js';
import { apiKeyRequired } from './auth.js';
import type { HttpDeps } from './deps.js';

type ModelInfo = components['schemas']['ModelInfo'];
type ModelList = components['schemas']['ModelList'];

/** The calibration section without `split.ids`: the names of training images are not the clients' business. */
function calibrationInfo(c: Calibration): NonNullable<ModelInfo['calibration']> {
  const { ids: _ids, ...split } = c.split;
  return { split, temperature: c.temperature, folded: c.folded, ece: { ...c.ece }, nll: { ...c.nll } };
}

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
    calibration: m.calibration ? calibrationInfo(m.calibration) : null,
    labelQuality: m.labelQuality ? structuredClone(m.labelQuality) : null,
    reliability: m.reliability ? structuredClone(m.reliability) : null,
  };
}

export function modelsRouter(deps: HttpDeps): Router {
  const { host, config, detector } = deps;
  const router = Router();
  router.get('/v1/models', (_req, res) => {
    const body: ModelList = { models: [modelInfo(host.current)], detector: { ...detector.info, autoMaxSide: config.ASM_FER_DETECT_AUTO_MAX_SIDE } };
    res.json(body);
  });
  const admin = apiKeyRequired(config.ASM_FER_API_KEY, 'model reload over HTTP is disabled; set ASM_FER_API_KEY, or send the process SIGHUP');
  router.post('/v1/models/reload', admin, async (_req, res) => {
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
