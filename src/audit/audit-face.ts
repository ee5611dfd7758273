// The audit of labelled faces, the one use case behind POST /v1/audit and the Label Studio worker: each face found for
// a submitted label is classified, judged against its class's thresholds with the bundle's label-quality score,
// committed to the trail and only then counted. A change to that rule is made here, once, for both.
import { createHash } from 'node:crypto';
import { faceBox, type FoundFace, type ImageFaces } from '../faces/find-faces.js';
import type { RunTiming } from '../inference/batcher.js';
import { classifyFaces } from '../inference/classify-faces.js';
import type { ServedModel } from '../inference/model-host.js';
import type { Metrics } from '../metrics.js';
import { judge, type NewAuditRecord } from './judge.js';
import { DEFAULT_QUALITY_SCORE } from './label-quality.js';
import type { AuditTrail } from './trail.js';

export interface AuditFaceDeps {
  trail: Pick<AuditTrail, 'thresholdsFor' | 'record'>;
  metrics: Pick<Metrics, 'recordVerdict' | 'recordPrediction'>;
  /** Keep the audited image bytes in the trail (ASM_FER_AUDIT_STORE_IMAGES). */
  storeImages: boolean;
}

/** A submitted label, its client ids, and the face of its image it is about (pickFace's answer). */
export interface LabelledFace {
  /** One of the served model's classes: callers check it (or map it) before any image is searched. */
  label: string;
  itemId: string | null;
  annotatorId: string | null;
  datasetId: string | null;
  /** The image's bytes as received: hashed into the record, and kept when storeImages. */
  image: Buffer;
  /** All faces found in the image, for the box's size relative to the image. */
  found: ImageFaces;
  pick: { index: number; face: FoundFace };
}

export interface AuditRun {
  /** The record id of each face, in order. */
  ids: readonly string[];
  /** Read once, after classification: the time of every record of the run. */
  nowMs: () => number;
  /** Aborted (the request timed out or its client left): nothing is committed or counted. */
  signal?: AbortSignal;
  /** Told the classification's queue wait and inference time. */
  timing?: RunTiming;
}

/**
 * The audit records of `faces`, in order, committed to the trail (all in one write) before their verdicts and
 * predictions are counted: when this resolves, the records are stored. Classification runs as one batch.
 */
export async function auditFaces(deps: AuditFaceDeps, served: Pick<ServedModel, 'manifest' | 'inference'>, faces: readonly LabelledFace[], run: AuditRun): Promise<NewAuditRecord[]> {
  const { manifest } = served;
  const items = faces.map((f) => ({
    label: f.label,
    itemId: f.itemId,
    annotatorId: f.annotatorId,
    datasetId: f.datasetId,
    imageSha256: createHash('sha256').update(f.image).digest('hex'),
    image: deps.storeImages ? f.image : null,
    face: { index: f.pick.index, box: faceBox(f.pick.face, f.found), score: f.pick.face.score },
  }));
  const classified = await classifyFaces(served, faces.map((f) => f.pick.face), run.signal, run.timing);
  // Nothing is committed for a request already answered (timed out) or abandoned.
  run.signal?.throwIfAborted();
  const thresholds = await deps.trail.thresholdsFor(manifest);
  const model = { name: manifest.name, version: manifest.version };
  const timeMs = run.nowMs();
  const score = manifest.labelQuality?.score ?? DEFAULT_QUALITY_SCORE;
  const records = items.map((item, i) =>
    judge(item, classified[i] as (typeof classified)[number], thresholds, { id: run.ids[i] as string, timeMs, model }, score),
  );
  // Committed before anything is counted or answered: an answer means the records are on disk.
  await deps.trail.record(records);
  for (const r of records) {
    deps.metrics.recordVerdict(r.label, r.verdict);
    deps.metrics.recordPrediction(r.predicted);
  }
  return records;
}
