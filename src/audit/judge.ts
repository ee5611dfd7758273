// ASM's mining rule applied to one submitted label, and the audit record it produces: the verdict (clean, ambiguous
// or noisy against that class's thresholds), the suggested label, and everything the trail keeps about the item.
import type { QualityScore, Thresholds } from '../bundle/load-bundle.js';
import type { FaceBox } from '../faces/find-faces.js';
import type { Classification } from '../inference/classify.js';
import { rankLabel } from './label-quality.js';

export type Verdict = 'clean' | 'ambiguous' | 'noisy';

export type ThresholdSource = 'bundle' | 'online';

/** p = the model's probability of the submitted label. clean if p >= clean; noisy if p < noisy; ambiguous otherwise. */
export function verdict(p: number, t: Thresholds): Verdict {
  if (p >= t.clean) return 'clean';
  if (p < t.noisy) return 'noisy';
  return 'ambiguous';
}

/** The label to put in place of a noisy one: the model's prediction; null for a clean or ambiguous verdict. */
export function suggestedLabel(r: { verdict: Verdict; predicted: string }): string | null {
  return r.verdict === 'noisy' ? r.predicted : null;
}

/** The face an item's label was audited against (AuditedFace in openapi.yaml). */
export interface AuditedFace {
  /** Its position among the image's detected faces, left to right; 0 when the detector did not run. */
  index: number;
  box: FaceBox;
  /** The detection score; null when the face was given (whole image or box part), not detected. */
  score: number | null;
}

/** One submitted item as judge() needs it: its label, client ids and the face the label is about. */
export interface LabelledItem {
  label: string;
  itemId: string | null;
  annotatorId: string | null;
  datasetId: string | null;
  imageSha256: string;
  /** The uploaded bytes when they are to be kept (ASM_FER_AUDIT_STORE_IMAGES), else null. */
  image: Buffer | null;
  face: AuditedFace;
}

/** What the audit route hands the store: the item with the model's answer and the verdict on its label. */
export interface NewAuditRecord extends LabelledItem {
  id: string;
  timeMs: number;
  model: { name: string; version: string };
  verdict: Verdict;
  labelProbability: number;
  thresholds: Thresholds;
  thresholdSource: ThresholdSource;
  predicted: string;
  confidence: number;
  /** Every class's probability, keyed by class name. */
  probabilities: Record<string, number>;
  /** The bundle's label-quality score of the label (label-quality.ts): higher = more likely right. */
  quality: number;
  /** FiftyOne's mistakenness of the label: near 1 a confident disagreement. */
  mistakenness: number;
}

/**
 * The record of `item` given the model's classification of its face and the thresholds of the label's class
 * (`byClass[item.label]` must exist: labels are checked against the model's classes first); `score` is the bundle's
 * labelQuality.score.
 */
export function judge(
  item: LabelledItem,
  c: Classification,
  thresholds: { source: ThresholdSource; byClass: Record<string, Thresholds> },
  at: { id: string; timeMs: number; model: { name: string; version: string } },
  score: QualityScore,
): NewAuditRecord {
  const t = thresholds.byClass[item.label] as Thresholds;
  const labelProbability = c.probabilities[item.label] as number;
  return {
    ...item,
    ...at,
    verdict: verdict(labelProbability, t),
    labelProbability,
    thresholds: { clean: t.clean, noisy: t.noisy },
    thresholdSource: thresholds.source,
    predicted: c.label,
    confidence: c.confidence,
    probabilities: c.probabilities,
    ...rankLabel(c.probabilities, item.label, c.label, score),
  };
}
