// POST /v1/audit: image + label parts (+ optional face boxes or face indices, ?detect=, client ids) → the labelled
// face of each image → audited (classified, judged, committed to the trail: audit/audit-face.ts) → answered.
import { randomUUID } from 'node:crypto';
import { Router, type Request, type Response } from 'express';
import { auditFaces } from '../audit/audit-face.js';
import { suggestedLabel } from '../audit/judge.js';
import { NotReady, UnknownLabel } from '../errors.js';
import { findFaces, pickFace } from '../faces/find-faces.js';
import type { components } from './api.gen.js';
import type { HttpDeps } from './deps.js';
import { auditRequest } from './parts.js';
import { withRequestWork } from './cancel.js';
import { sendTimed, timingOf } from './server-timing.js';

type AuditResponse = components['schemas']['AuditResponse'];
type AuditItem = components['schemas']['AuditItem'];

/** The handler, for the image routes' own intake (image-intake.ts) and for the router behind the validator. */
export function auditHandler(deps: HttpDeps): (req: Request, res: Response) => Promise<void> {
  const { host, metrics, config, readiness, trail } = deps;
  return async (req, res) => {
    const timing = timingOf(res);
    timing.intakeDone();
    if (!readiness.isServing()) throw new NotReady();
    const { mode, items } = auditRequest(req);
    const body = await host.use((served) => withRequestWork(deps, res, mode, served, async (search, signal): Promise<AuditResponse> => {
      const { manifest } = served;
      // Before any image is read: an unknown label is the request's fault whatever its images hold.
      items.forEach((item, i) => {
        if (!manifest.classes.includes(item.label)) throw new UnknownLabel(item.label, i, manifest.classes);
      });
      const found = await timing.decode(() => findFaces(items, search));
      const faces = items.map((item, i) => {
        const image = found[i] as (typeof found)[number];
        const { label, itemId, annotatorId, datasetId } = item;
        return { label, itemId, annotatorId, datasetId, image: item.image, found: image, pick: pickFace(image, item.face, i) };
      });
      const records = await auditFaces(
        { trail, metrics, storeImages: config.ASM_FER_AUDIT_STORE_IMAGES },
        served,
        faces,
        { ids: faces.map(() => randomUUID()), nowMs: () => Date.now(), signal, timing },
      );
      const results = records.map(
        (r): AuditItem => ({
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
        }),
      );
      return { model: { name: manifest.name, version: manifest.version }, results };
    }));
    sendTimed(res, body);
  };
}

export function auditLabelsRouter(deps: HttpDeps): Router {
  const router = Router();
  router.post('/v1/audit', auditHandler(deps));
  return router;
}
