import { describe, expect, it } from 'vitest';
import { judge, suggestedLabel, verdict } from '../../src/audit/judge.js';

describe('verdict', () => {
  const t = { clean: 0.7, noisy: 0.2 };

  it.each([
    [0.95, 'clean'],
    [0.7, 'clean'],
    [0.69, 'ambiguous'],
    [0.2, 'ambiguous'],
    [0.19, 'noisy'],
    [0, 'noisy'],
  ])('p=%s against {clean 0.7, noisy 0.2} is %s', (p, expected) => {
    expect(verdict(p, t)).toBe(expected);
  });

  it('has no ambiguous band when both thresholds are equal', () => {
    expect(verdict(0.5, { clean: 0.5, noisy: 0.5 })).toBe('clean');
    expect(verdict(0.49, { clean: 0.5, noisy: 0.5 })).toBe('noisy');
  });
});

describe('suggestedLabel', () => {
  it('suggests the prediction for a noisy label only', () => {
    expect(suggestedLabel({ verdict: 'noisy', predicted: 'happy' })).toBe('happy');
    expect(suggestedLabel({ verdict: 'ambiguous', predicted: 'happy' })).toBeNull();
    expect(suggestedLabel({ verdict: 'clean', predicted: 'happy' })).toBeNull();
  });
});

describe('judge', () => {
  const face = { index: 0, box: { x: 0, y: 0, width: 48, height: 48, relative: { x: 0, y: 0, width: 1, height: 1 } }, score: null };
  const item = { label: 'sad', itemId: 'i1', annotatorId: null, datasetId: 'd', imageSha256: 'ab', image: null, face };
  const classification = { label: 'happy', confidence: 0.8, probabilities: { happy: 0.8, sad: 0.15, neutral: 0.05 } };
  const thresholds = { source: 'bundle' as const, byClass: { happy: { clean: 0.9, noisy: 0.3 }, sad: { clean: 0.7, noisy: 0.2 } } };
  const at = { id: 'r1', timeMs: 1000, model: { name: 'm', version: '1' } };

  it("judges the label's probability against its own class's thresholds and keeps the item with the model's answer", () => {
    expect(judge(item, classification, thresholds, at, 'self-confidence')).toEqual({
      ...at,
      label: 'sad',
      verdict: 'noisy',
      labelProbability: 0.15,
      thresholds: { clean: 0.7, noisy: 0.2 },
      thresholdSource: 'bundle',
      predicted: 'happy',
      confidence: 0.8,
      probabilities: classification.probabilities,
      itemId: 'i1',
      annotatorId: null,
      datasetId: 'd',
      imageSha256: 'ab',
      image: null,
      face,
      quality: 0.15,
      mistakenness: expect.closeTo((Math.exp(0.8 * Math.log(0.8) + 0.15 * Math.log(0.15) + 0.05 * Math.log(0.05)) + 1) / 2, 12),
    });
  });

  it("ranks with the bundle's score: normalized margin of a wrong label is below a half", () => {
    const r = judge(item, classification, thresholds, at, 'normalized-margin');
    expect(r.quality).toBeCloseTo((0.15 - 0.8 + 1) / 2, 12);
    expect(r.mistakenness).toBeGreaterThan(0.5);
    expect(judge({ ...item, label: 'happy' }, classification, thresholds, at, 'normalized-margin').mistakenness).toBeLessThan(0.5);
  });
});
