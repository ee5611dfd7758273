// POST /v1/predict: image parts (+ optional face boxes) → decode/crop → preprocess → batch → classify → JSON,
// one result per image in order.
import { Router } from 'express';
import { NotReady } from '../errors.js';
import { classify } from '../inference/classify.js';
import { tensorsFromImages } from '../inference/infer.js';
import type { components } from './api.gen.js';
import type { HttpDeps } from './server.js';
import { boxParts, imageParts } from './upload.js';

type PredictResponse = components['schemas']['PredictResponse'];

export function predictRouter(deps: HttpDeps): Router {
  const { host, metrics, config, readiness } = deps;
  const router = Router();
  router.post('/v1/predict', async (req, res) => {
    if (!readiness.isReady()) throw new NotReady();
    const images = imageParts(req);
    const boxes = boxParts(req, images.length);
    const body = await host.use(async ({ manifest, inference }): Promise<PredictResponse> => {
      const tensors = await tensorsFromImages(images, manifest.input, config.ASM_FER_MAX_PIXELS, boxes);
      const rows = await inference.probabilities(tensors);
      const results = rows.map((row) => classify(row, manifest.classes));
      for (const r of results) metrics.recordPrediction(r.label);
      return { model: { name: manifest.name, version: manifest.version }, results };
    });
    res.json(body);
  });
  return router;
}
