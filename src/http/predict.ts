// POST /v1/predict: image parts (+ optional face boxes, ?detect=) → faces per image (detected or given) → preprocess →
// batch → classify → JSON, one result per image in order, listing its faces.
import { Router } from 'express';
import { NotReady } from '../errors.js';
import { classify } from '../inference/classify.js';
import { preprocess } from '../inference/preprocess.js';
import type { components } from './api.gen.js';
import { detectMode, faceJson, findFaces } from './faces.js';
import type { HttpDeps } from './deps.js';
import { boxParts, imageParts } from './upload.js';

type PredictResponse = components['schemas']['PredictResponse'];
type Prediction = components['schemas']['Prediction'];

export function predictRouter(deps: HttpDeps): Router {
  const { host, metrics, readiness } = deps;
  const router = Router();
  router.post('/v1/predict', async (req, res) => {
    if (!readiness.isReady()) throw new NotReady();
    const images = imageParts(req);
    const boxes = boxParts(req, images.length);
    const mode = detectMode(req);
    const body = await host.use(async ({ manifest, inference }): Promise<PredictResponse> => {
      const found = await findFaces(deps, manifest.input, images, boxes, mode);
      const crops = found.flatMap((image) => image.faces.map((face) => preprocess(face.pixels, manifest.input)));
      const rows = crops.length > 0 ? await inference.probabilities(crops) : [];
      let next = 0;
      const results = found.map((image): Prediction => {
        const faces = image.faces.map((face) => {
          const c = classify(rows[next++] as Float32Array, manifest.classes);
          metrics.recordPrediction(c.label);
          return { ...faceJson(face, image), ...c };
        });
        const whole = !image.detected && faces[0] ? { label: faces[0].label, confidence: faces[0].confidence, probabilities: faces[0].probabilities } : {};
        return { ...whole, detected: image.detected, faces };
      });
      return { model: { name: manifest.name, version: manifest.version }, results };
    });
    res.json(body);
  });
  return router;
}
