// ASM's mining rule applied to one submitted label: clean, ambiguous or noisy against that class's thresholds.
import type { Thresholds } from '../bundle/load-bundle.js';

export type Verdict = 'clean' | 'ambiguous' | 'noisy';

/** p = the model's probability of the submitted label. clean if p >= clean; noisy if p < noisy; ambiguous otherwise. */
export function verdict(p: number, t: Thresholds): Verdict {
  if (p >= t.clean) return 'clean';
  if (p < t.noisy) return 'noisy';
  return 'ambiguous';
}
