// Adaptive Threshold Learning as training does it (training/asm_fer/method/thresholds.py, asm-method.md), for re-estimating
// the thresholds from live class means.
import type { ThresholdLearning, Thresholds } from '../bundle/load-bundle.js';

/**
 * Per-class thresholds from class means mu (length K, same order as the result). adaptive + max: rho_k = mu_k / max mu
 * (all 1 when max mu is 0); adaptive + none: rho_k = mu_k; fixed: rho_k = 1. Then clean = base.clean * rho_k and
 * noisy = base.noisy * rho_k.
 */
export function adaptiveThresholds(means: readonly number[], rule: Pick<ThresholdLearning, 'mode' | 'base' | 'normalisation'>): Thresholds[] {
  const top = Math.max(...means);
  const rho = (mu: number) => {
    if (rule.mode === 'fixed') return 1;
    if (rule.normalisation === 'none') return mu;
    return top > 0 ? mu / top : 1;
  };
  return means.map((mu) => ({ clean: rule.base.clean * rho(mu), noisy: rule.base.noisy * rho(mu) }));
}
