// POST /v1/predict: image parts (+ optional face boxes, ?detect=) → faces per image (detected or given) → classified →
// JSON, one result per image in order, listing its faces.
import { Router, type Request, type Response } from 'express';
import { NotReady } from '../errors.js';
import { faceBox, findFaces, type FoundFace, type ImageFaces } from '../faces/find-faces.js';
import { classifyFaces } from '../inference/classify-faces.js';
import type { components } from './api.gen.js';
import type { HttpDeps } from './deps.js';
import { predictRequest } from './parts.js';
import { withRequestWork } from './cancel.js';
import { sendTimed, timingOf } from './server-timing.js';

type PredictResponse = components['schemas']['PredictResponse'];
type Prediction = components['schemas']['Prediction'];
type Face = components['schemas']['Face'];

/** Box, score and (when detected) keypoints of a face, as the contract's Face has them. */
function faceJson(face: FoundFace, image: ImageFaces): Pick<Face, 'box' | 'score' | 'keypoints'> {
  return { box: faceBox(face, image), score: face.score, ...(face.keypoints ? { keypoints: face.keypoints } : {}) };
}

/** The handler, for the route's own intake (image-intake.ts) and for the router behind the validator. */
export function predictHandler(deps: HttpDeps): (req: Request, res: Response) => Promise<void> {
  const { host, metrics, readiness } = deps;
  return async (req, res) => {
    const timing = timingOf(res);
    timing.intakeDone();
    if (!readiness.isServing()) throw new NotReady();
    const { mode, items } = predictRequest(req);
    const body = await host.use((model) => withRequestWork(deps, res, mode, model, async (search, signal): Promise<PredictResponse> => {
      const { manifest } = model;
      const found = await timing.decode(() => findFaces(items, search));
      const classified = await classifyFaces(model, found.flatMap((image) => image.faces), signal, timing);
      let next = 0;
      const results = found.map((image): Prediction => {
        const faces = image.faces.map((face) => {
          const c = classified[next++] as (typeof classified)[number];
          metrics.recordPrediction(c.label);
          return { ...faceJson(face, image), ...c };
        });
        const whole = !image.detected && faces[0] ? { label: faces[0].label, confidence: faces[0].confidence, probabilities: faces[0].probabilities } : {};
        return { ...whole, detected: image.detected, faces };
      });
      return { model: { name: manifest.name, version: manifest.version }, results };
    }));
    sendTimed(res, body);
  };
}

export function predictRouter(deps: HttpDeps): Router {
  const router = Router();
  router.post('/v1/predict', predictHandler(deps));
  return router;
}
