// POST /v1/audit: image + label parts (+ optional face boxes or face indices, ?detect=, client ids) → the labelled
// face of each image → classified → judged against that class's thresholds → committed to the audit trail → answered.
import { createHash, randomUUID } from 'node:crypto';
import { Router, type Request, type Response } from 'express';
import { judge, suggestedLabel } from '../audit/judge.js';
import { DEFAULT_QUALITY_SCORE } from '../audit/label-quality.js';
import { NotReady, UnknownLabel } from '../errors.js';
import { faceBox, findFaces, pickFace } from '../faces/find-faces.js';
import { classifyFaces } from '../inference/classify-faces.js';
import type { components } from './api.gen.js';
import type { HttpDeps } from './deps.js';
import { auditRequest } from './parts.js';
import { withRequestWork } from './cancel.js';

type AuditResponse = components['schemas']['AuditResponse'];
type AuditItem = components['schemas']['AuditItem'];

/** The handler, for the image routes' own intake (image-intake.ts) and for the router behind the validator. */
export function auditHandler(deps: HttpDeps): (req: Request, res: Response) => Promise<void> {
  const { host, metrics, config, readiness, trail } = deps;
  return async (req, res) => {
    if (!readiness.isServing()) throw new NotReady();
    const { mode, items } = auditRequest(req);
    const body = await host.use((served) => withRequestWork(deps, res, mode, served, async (search, signal): Promise<AuditResponse> => {
      const { manifest } = served;
      items.forEach((item, i) => {
        if (!manifest.classes.includes(item.label)) throw new UnknownLabel(item.label, i, manifest.classes);
      });
      const found = await findFaces(items, search);
      const labelled = items.map((item, i) => {
        const image = found[i] as (typeof found)[number];
        const pick = pickFace(image, item.face, i);
        return {
          pick,
          item: {
            label: item.label,
            itemId: item.itemId,
            annotatorId: item.annotatorId,
            datasetId: item.datasetId,
            imageSha256: createHash('sha256').update(item.image).digest('hex'),
            image: config.ASM_FER_AUDIT_STORE_IMAGES ? item.image : null,
            face: { index: pick.index, box: faceBox(pick.face, image), score: pick.face.score },
          },
        };
      });
      const classified = await classifyFaces(served, labelled.map(({ pick }) => pick.face), signal);
      // Nothing is committed for a request already answered (timed out) or abandoned.
      signal.throwIfAborted();
      const thresholds = await trail.thresholdsFor(manifest);
      const model = { name: manifest.name, version: manifest.version };
      const timeMs = Date.now();
      const score = manifest.labelQuality?.score ?? DEFAULT_QUALITY_SCORE;
      const records = labelled.map(({ item }, i) =>
        judge(item, classified[i] as (typeof classified)[number], thresholds, { id: randomUUID(), timeMs, model }, score),
      );
      // Committed before anything is counted or answered: a 200 means the records are on disk.
      await trail.record(records);
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
          suggestedLabel: suggestedLabel(r),
          probabilities: r.probabilities,
          face: r.face,
          quality: r.quality,
          mistakenness: r.mistakenness,
          reliability: manifest.reliability?.perClass[r.label] ?? null,
        };
      });
      return { model, results };
    }));
    res.json(body);
  };
}

export function auditLabelsRouter(deps: HttpDeps): Router {
  const router = Router();
  router.post('/v1/audit', auditHandler(deps));
  return router;
}
