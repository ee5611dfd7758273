// Weighted and plain non-maximum suppression on detections with known overlaps.
import { describe, expect, it } from 'vitest';
import type { Detection } from '../../src/faces/blazeface.js';
import { iou, suppress } from '../../src/faces/nms.js';

const det = (score: number, cx: number, cy: number, w = 0.2, h = 0.2, k = 0): Detection => ({
  score,
  cx,
  cy,
  w,
  h,
  keypoints: Array.from({ length: 6 }, (_, i) => ({ x: cx + k + i / 100, y: cy })),
});

describe('iou', () => {
  it('is 1 for the same box, 0 for disjoint ones, and the overlap ratio in between', () => {
    expect(iou(det(1, 0.5, 0.5), det(1, 0.5, 0.5))).toBeCloseTo(1, 12);
    expect(iou(det(1, 0.2, 0.2), det(1, 0.8, 0.8))).toBe(0);
    // Shifted by half a width: intersection 0.1 x 0.2, union 2 * 0.04 - 0.02.
    expect(iou(det(1, 0.5, 0.5), det(1, 0.6, 0.5))).toBeCloseTo(0.02 / 0.06, 12);
    expect(iou(det(1, 0.5, 0.5, 0, 0), det(1, 0.5, 0.5, 0, 0))).toBe(0);
  });
});

describe('suppress', () => {
  it('merges overlapping detections into their score-weighted mean, keeping the best score', () => {
    const [merged, ...rest] = suppress([det(0.6, 0.52, 0.5, 0.2, 0.2, 0.01), det(0.9, 0.5, 0.5)], 0.3, 10);
    expect(rest).toEqual([]);
    expect(merged?.score).toBe(0.9);
    expect(merged?.cx).toBeCloseTo((0.9 * 0.5 + 0.6 * 0.52) / 1.5, 12);
    expect(merged?.keypoints[0]?.x).toBeCloseTo((0.9 * 0.5 + 0.6 * 0.53) / 1.5, 12);
  });

  it('keeps separate faces apart, best first', () => {
    const out = suppress([det(0.7, 0.2, 0.2), det(0.95, 0.8, 0.8), det(0.8, 0.21, 0.2)], 0.3, 10);
    expect(out.map((d) => d.score)).toEqual([0.95, 0.8]);
  });

  it('plain NMS keeps the best detection of a cluster unchanged', () => {
    const best = det(0.9, 0.5, 0.5);
    expect(suppress([det(0.6, 0.52, 0.5), best], 0.3, 10, { weighted: false })).toEqual([best]);
  });

  it('leaves detections overlapping less than the threshold alone', () => {
    expect(suppress([det(0.9, 0.5, 0.5), det(0.8, 0.6, 0.5)], 0.5, 10)).toHaveLength(2);
  });

  it('stops at maxFaces and ends on degenerate boxes', () => {
    const scores = [0.51, 0.57, 0.52, 0.56, 0.53, 0.55, 0.54, 0.5];
    const many = scores.map((s, i) => det(s, 0.1 * i + 0.05, 0.5, 0.05, 0.05));
    expect(suppress(many, 0.3, 3).map((d) => d.score)).toEqual([0.57, 0.56, 0.55]);
    expect(suppress([det(0.9, 0.5, 0.5, 0, 0), det(0.8, 0.5, 0.5, 0, 0)], 0.3, 10)).toHaveLength(2);
    expect(suppress([], 0.3, 10)).toEqual([]);
  });
});
