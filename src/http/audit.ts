// POST /v1/audit: image + label parts (+ optional face boxes or face indices, ?detect=, client ids) → the labelled
// face's probabilities → ASM verdict per item against that class's thresholds → committed to the audit trail → answered.
import { createHash, randomUUID } from 'node:crypto';
import { Router } from 'express';
import type { NewAuditRecord } from '../audit/record.js';
import { verdict } from '../audit/verdict.js';
import type { FoundFace, ImageFaces } from '../faces/find-faces.js';
import { BadRequest, NoFace, NotReady, SeveralFaces, UnknownLabel } from '../errors.js';
import { classify } from '../inference/classify.js';
import { preprocess } from '../inference/preprocess.js';
import type { components } from './api.gen.js';
import { detectMode, faceBox, faceParts, findFaces } from './faces.js';
import type { HttpDeps } from './deps.js';
import { boxParts, clientIdParts, imageParts, labelParts } from './upload.js';

type AuditResponse = components['schemas']['AuditResponse'];
type AuditItem = components['schemas']['AuditItem'];

export function auditRouter(deps: HttpDeps): Router {
  const { host, metrics, config, readiness, trail } = deps;
  const router = Router();
  router.post('/v1/audit', async (req, res) => {
    if (!readiness.isReady()) throw new NotReady();
    const images = imageParts(req);
    const labels = labelParts(req);
    if (labels.length !== images.length) {
      throw new BadRequest(`got ${images.length} image part(s) and ${labels.length} label part(s); send one label per image, in the same order`);
    }
    const boxes = boxParts(req, images.length);
    const itemIds = clientIdParts(req, 'itemId', images.length, false);
    const annotatorIds = clientIdParts(req, 'annotatorId', images.length, true);
    const datasetIds = clientIdParts(req, 'datasetId', images.length, true);
    const faceIndices = faceParts(req, images.length);
    const mode = detectMode(req);
    const body = await host.use(async ({ manifest, inference }): Promise<AuditResponse> => {
      const classIndex = new Map(manifest.classes.map((c, i) => [c, i]));
      labels.forEach((label, i) => {
        if (!classIndex.has(label)) throw new UnknownLabel(label, i, manifest.classes);
      });
      const found = await findFaces(deps, manifest.input, images, boxes, mode);
      const picks = found.map((image, i) => pickFace(image, faceIndices[i], i));
      const rows = await inference.probabilities(picks.map(({ face }) => preprocess(face.pixels, manifest.input)));
      const chosen = trail.thresholdsFor(manifest);
      const model = { name: manifest.name, version: manifest.version };
      const timeMs = Date.now();
      const records = rows.map((row, i): NewAuditRecord => {
        const label = labels[i] as string;
        const pick = picks[i] as { index: number; face: FoundFace };
        const thresholds = chosen.byClass[label] as { clean: number; noisy: number };
        const labelProbability = row[classIndex.get(label) as number] as number;
        const predicted = classify(row, manifest.classes);
        const image = images[i] as Buffer;
        return {
          id: randomUUID(),
          timeMs,
          model,
          label,
          verdict: verdict(labelProbability, thresholds),
          labelProbability,
          thresholds: { clean: thresholds.clean, noisy: thresholds.noisy },
          thresholdSource: chosen.source,
          predicted: predicted.label,
          confidence: predicted.confidence,
          probabilities: predicted.probabilities,
          itemId: itemIds[i] ?? null,
          annotatorId: annotatorIds[i] ?? null,
          datasetId: datasetIds[i] ?? null,
          imageSha256: createHash('sha256').update(image).digest('hex'),
          image: config.ASM_FER_AUDIT_STORE_IMAGES ? image : null,
          face: { index: pick.index, box: faceBox(pick.face, found[i] as ImageFaces), score: pick.face.score },
        };
      });
      // Committed before anything is counted or answered: a 200 means the records are on disk.
      trail.record(records);
      const results = records.map((r): AuditItem => {
        metrics.recordVerdict(r.label, r.verdict);
        metrics.recordPrediction(r.predicted);
        return {
          id: r.id,
          label: r.label,
          verdict: r.verdict,
          labelProbability: r.labelProbability,
          thresholds: r.thresholds,
          thresholdSource: r.thresholdSource,
          predicted: r.predicted,
          confidence: r.confidence,
          suggestedLabel: r.verdict === 'noisy' ? r.predicted : null,
          probabilities: r.probabilities,
          face: r.face,
        };
      });
      return { model, results };
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
