// Turns one row of model probabilities into the predicted label, its confidence and a class → probability map.

export interface Classification {
  label: string;
  confidence: number;
  probabilities: Record<string, number>;
}

/** probs: (K,) in class order; classes: (K,). Ties go to the earlier class, as numpy's argmax does. */
export function classify(probs: ArrayLike<number>, classes: readonly string[]): Classification {
  if (probs.length !== classes.length) {
    throw new Error(`model returned ${probs.length} probabilities for ${classes.length} classes`);
  }
  let best = 0;
  const probabilities: Record<string, number> = {};
  for (let k = 0; k < classes.length; k++) {
    const p = probs[k] as number;
    probabilities[classes[k] as string] = p;
    if (p > (probs[best] as number)) best = k;
  }
  return { label: classes[best] as string, confidence: probs[best] as number, probabilities };
}
