// Drift: the live window's per-class mean probability of the submitted label against the training-time class means
// stored in the bundle (thresholdLearning.classMeans).
import type { ThresholdLearning } from '../bundle/load-bundle.js';

export interface DriftClass {
  label: string;
  /** mu_k on the training set; null when the bundle has none for this class. */
  trainingMean: number | null;
  /** The window's mean; null before the first item. */
  liveMean: number | null;
  /** Items of this class in the window. */
  samples: number;
  /** liveMean - trainingMean; null when either is missing. */
  shift: number | null;
  /** |shift| > threshold with at least minSamples items. */
  drifted: boolean;
}

export interface DriftReport {
  threshold: number;
  minSamples: number;
  /** The bundle's statistic; only given-label means are the quantity the live statistics measure. */
  statistic: ThresholdLearning['statistic'];
  comparable: boolean;
  classes: DriftClass[];
  /** Labels of the drifted classes, in class order. */
  drifted: string[];
}

/** `windowMean(label)` gives the live window's mean and item count for a class. */
export function detectDrift(
  classes: readonly string[],
  learning: Pick<ThresholdLearning, 'statistic' | 'classMeans'>,
  windowMean: (label: string) => { mean: number | null; count: number },
  opts: { threshold: number; minSamples: number },
): DriftReport {
  const comparable = learning.statistic === 'given-label';
  const rows = classes.map((label): DriftClass => {
    const trainingMean = learning.classMeans[label] ?? null;
    const { mean: liveMean, count: samples } = windowMean(label);
    const shift = trainingMean === null || liveMean === null ? null : liveMean - trainingMean;
    const drifted = comparable && shift !== null && samples >= opts.minSamples && Math.abs(shift) > opts.threshold;
    return { label, trainingMean, liveMean, samples, shift, drifted };
  });
  return { threshold: opts.threshold, minSamples: opts.minSamples, statistic: learning.statistic, comparable, classes: rows, drifted: rows.filter((r) => r.drifted).map((r) => r.label) };
}
