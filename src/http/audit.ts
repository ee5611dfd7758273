// POST /v1/audit: image + label parts (+ optional face boxes and client ids) → probabilities → ASM verdict per item
// against that class's thresholds → committed to the audit trail → answered.
import { createHash, randomUUID } from 'node:crypto';
import { Router } from 'express';
import type { NewAuditRecord } from '../audit/record.js';
import { verdict } from '../audit/verdict.js';
import { BadRequest, NotReady, UnknownLabel } from '../errors.js';
import { classify } from '../inference/classify.js';
import { tensorsFromImages } from '../inference/infer.js';
import type { components } from './api.gen.js';
import type { HttpDeps } from './server.js';
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
    const body = await host.use(async ({ manifest, inference }): Promise<AuditResponse> => {
      const classIndex = new Map(manifest.classes.map((c, i) => [c, i]));
      labels.forEach((label, i) => {
        if (!classIndex.has(label)) throw new UnknownLabel(label, i, manifest.classes);
      });
      const tensors = await tensorsFromImages(images, manifest.input, config.ASM_FER_MAX_PIXELS, boxes);
      const rows = await inference.probabilities(tensors);
      const chosen = trail.thresholdsFor(manifest);
      const model = { name: manifest.name, version: manifest.version };
      const timeMs = Date.now();
      const records = rows.map((row, i): NewAuditRecord => {
        const label = labels[i] as string;
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
        };
      });
      return { model, results };
    });
    res.json(body);
  });
  return router;
}
