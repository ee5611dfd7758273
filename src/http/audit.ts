// POST /v1/audit: image + label parts (+ optional face boxes or face indices, ?detect=) → the labelled face's
// probabilities → ASM verdict per item against that class's thresholds.
import { Router } from 'express';
import { verdict } from '../audit/verdict.js';
import type { FoundFace, ImageFaces } from '../detect/faces.js';
import { BadRequest, NoFace, NotReady, SeveralFaces, UnknownLabel } from '../errors.js';
import { classify } from '../inference/classify.js';
import { preprocess } from '../inference/preprocess.js';
import type { components } from './api.gen.js';
import { detectMode, faceBox, faceParts, findFaces } from './faces.js';
import type { HttpDeps } from './server.js';
import { boxParts, imageParts, labelParts } from './upload.js';

type AuditResponse = components['schemas']['AuditResponse'];
type AuditItem = components['schemas']['AuditItem'];

export function auditRouter(deps: HttpDeps): Router {
  const { host, metrics, readiness } = deps;
  const router = Router();
  router.post('/v1/audit', async (req, res) => {
    if (!readiness.isReady()) throw new NotReady();
    const images = imageParts(req);
    const labels = labelParts(req);
    if (labels.length !== images.length) {
      throw new BadRequest(`got ${images.length} image part(s) and ${labels.length} label part(s); send one label per image, in the same order`);
    }
    const boxes = boxParts(req, images.length);
    const chosen = faceParts(req, images.length);
    const mode = detectMode(req);
    const body = await host.use(async ({ manifest, inference }): Promise<AuditResponse> => {
      const classIndex = new Map(manifest.classes.map((c, i) => [c, i]));
      labels.forEach((label, i) => {
        if (!classIndex.has(label)) throw new UnknownLabel(label, i, manifest.classes);
      });
      const found = await findFaces(deps, manifest.input, images, boxes, mode);
      const picks = found.map((image, i) => pickFace(image, chosen[i], i));
      const rows = await inference.probabilities(picks.map(({ face }) => preprocess(face.pixels, manifest.input)));
      const results = rows.map((row, i): AuditItem => {
        const label = labels[i] as string;
        const pick = picks[i] as { index: number; face: FoundFace };
        const thresholds = manifest.thresholds[label] as { clean: number; noisy: number };
        const labelProbability = row[classIndex.get(label) as number] as number;
        const v = verdict(labelProbability, thresholds);
        const predicted = classify(row, manifest.classes);
        metrics.recordVerdict(label, v);
        metrics.recordPrediction(predicted.label);
        return {
          label,
          verdict: v,
          labelProbability,
          thresholds: { clean: thresholds.clean, noisy: thresholds.noisy },
          predicted: predicted.label,
          confidence: predicted.confidence,
          suggestedLabel: v === 'noisy' ? predicted.label : null,
          probabilities: predicted.probabilities,
          face: { index: pick.index, box: faceBox(pick.face, found[i] as ImageFaces), score: pick.face.score },
        };
      });
      return { model: { name: manifest.name, version: manifest.version }, results };
    });
    res.json(body);
  });
  return router;
}

/** The face image `index`'s label is about: the `face` part's, or the only one; none or an unsaid choice is a 422. */
function pickFace(image: ImageFaces, chosen: number | undefined, index: number): { index: number; face: FoundFace } {
  const n = image.faces.length;
  const at = chosen ?? 0;
  const face = image.faces[at];
  if (chosen !== undefined) {
    if (!face) throw new NoFace(`face ${chosen} was asked for, but image ${index} has ${n} face(s)`, index);
    return { index: at, face };
  }
  if (n === 0) throw new NoFace(`image ${index} has no face the detector can find; send a box part to name one, or ?detect=never`, index);
  if (n > 1 || !face) throw new SeveralFaces(`image ${index} has ${n} faces; send a face part (0-${n - 1}, left to right) or a box part to say which the label is about`, index);
  return { index: 0, face };
}
