// Scores that rank submitted labels, computed exactly as training/asm_fer/method/label_quality.py does; parity:
// test/audit/label-quality.parity.test.ts. Probabilities are the graph's, already calibrated (temperature folded).
import type { QualityScore } from '../bundle/load-bundle.js';

/** The score used when a bundle has no labelQuality section: cleanlab's default. */
export const DEFAULT_QUALITY_SCORE: QualityScore = 'self-confidence';

/** p(label). `probs` in class order, `label` an index into it. */
export function selfConfidence(probs: readonly number[], label: number): number {
  return probs[label] as number;
}

/** (p(label) - max over the other classes of p + 1) / 2, in [0, 1]. */
export function normalizedMargin(probs: readonly number[], label: number): number {
  let other = -Infinity;
  probs.forEach((p, j) => {
    if (j !== label && p > other) other = p;
  });
  return (selfConfidence(probs, label) - other + 1) / 2;
}

/** The label-quality score named `score`: higher means the label is more likely right. */
export function quality(probs: readonly number[], label: number, score: QualityScore): number {
  return score === 'normalized-margin' ? normalizedMargin(probs, label) : selfConfidence(probs, label);
}

/**
 * FiftyOne's mistakenness: (s * exp(-H(p)) + 1) / 2, s = +1 when the most probable class (the first on ties, as
 * numpy's argmax) differs from the label and -1 when it agrees, H the natural-log entropy with 0 log 0 = 0. Near 1
 * a confident disagreement, near 0 a confident agreement, 0.5 when the model knows nothing.
 */
export function mistakenness(probs: readonly number[], label: number): number {
  let argmax = 0;
  probs.forEach((p, j) => {
    if (p > (probs[argmax] as number)) argmax = j;
  });
  return mistakennessOf(probs, argmax !== label);
}

/** (s * exp(-H(probs)) + 1) / 2 with s = +1 when the prediction `disagrees` with the label, -1 when it agrees. */
export function mistakennessOf(probs: readonly number[], disagrees: boolean): number {
  let entropy = 0;
  for (const raw of probs) {
    const p = Math.min(Math.max(raw, 0), 1);
    if (p > 0) entropy -= p * Math.log(p);
  }
  return ((disagrees ? 1 : -1) * Math.exp(-entropy) + 1) / 2;
}

/**
 * Both scores of `label` given a class → probability map and the model's prediction (classify()'s argmax, first
 * class on ties): neither score then depends on the map's key order.
 */
export function rankLabel(
  probabilities: Record<string, number>,
  label: string,
  predicted: string,
  score: QualityScore,
): { quality: number; mistakenness: number } {
  const classes = Object.keys(probabilities);
  const probs = classes.map((c) => probabilities[c] as number);
  const k = classes.indexOf(label);
  if (k < 0) throw new Error(`label ${label} is not one of the probabilities' classes`);
  return { quality: quality(probs, k, score), mistakenness: mistakennessOf(probs, predicted !== label) };
}
