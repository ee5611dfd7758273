// POST /v1/audit: image + label parts (+ optional face boxes) → probabilities → ASM verdict per item against that class's thresholds.
import { Router } from 'express';
import { verdict } from '../audit/verdict.js';
import { BadRequest, NotReady, UnknownLabel } from '../errors.js';
import { classify } from '../inference/classify.js';
import { tensorsFromImages } from '../inference/infer.js';
import type { components } from './api.gen.js';
import type { HttpDeps } from './server.js';
import { boxParts, imageParts, labelParts } from './upload.js';

type AuditResponse = components['schemas']['AuditResponse'];
type AuditItem = components['schemas']['AuditItem'];

export function auditRouter(deps: HttpDeps): Router {
  const { host, metrics, config, readiness } = deps;
  const router = Router();
  router.post('/v1/audit', async (req, res) => {
    if (!readiness.isReady()) throw new NotReady();
    const images = imageParts(req);
    const labels = labelParts(req);
    if (labels.length !== images.length) {
      throw new BadRequest(`got ${images.length} image part(s) and ${labels.length} label part(s); send one label per image, in the same order`);
    }
    const boxes = boxParts(req, images.length);
    const body = await host.use(async ({ manifest, inference }): Promise<AuditResponse> => {
      const classIndex = new Map(manifest.classes.map((c, i) => [c, i]));
      labels.forEach((label, i) => {
        if (!classIndex.has(label)) throw new UnknownLabel(label, i, manifest.classes);
      });
      const tensors = await tensorsFromImages(images, manifest.input, config.ASM_FER_MAX_PIXELS, boxes);
      const rows = await inference.probabilities(tensors);
      const results = rows.map((row, i): AuditItem => {
        const label = labels[i] as string;
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
        };
      });
      return { model: { name: manifest.name, version: manifest.version }, results };
    });
    res.json(body);
  });
  return router;
}
