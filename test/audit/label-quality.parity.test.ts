// The service's label-quality scores against the values training/asm_fer/method/label_quality.py computed for the same
// rows (test/fixtures/label-quality-parity.json, checked on the Python side by tests/test_label_quality_parity.py).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { mistakenness, quality } from '../../src/audit/label-quality.js';
import type { QualityScore } from '../../src/bundle/load-bundle.js';

interface Vectors {
  probabilities: number[][];
  labels: number[];
  quality: Record<QualityScore, number[]>;
  mistakenness: number[];
}

const vectors = JSON.parse(readFileSync(new URL('../fixtures/label-quality-parity.json', import.meta.url), 'utf8')) as Vectors;
const rows = vectors.probabilities.map((probs, i) => ({ probs, label: vectors.labels[i] as number, i }));

describe('label quality parity with label_quality.py', () => {
  it.each(['self-confidence', 'normalized-margin'] as const)('%s matches to 1e-9', (score) => {
    for (const { probs, label, i } of rows) expect(Math.abs(quality(probs, label, score) - (vectors.quality[score][i] as number))).toBeLessThan(1e-9);
  });

  it('mistakenness matches to 1e-9, one-hot, uniform and tied rows included', () => {
    expect(rows.length).toBe(27);
    for (const { probs, label, i } of rows) expect(Math.abs(mistakenness(probs, label) - (vectors.mistakenness[i] as number))).toBeLessThan(1e-9);
  });
});
