// Anchor layout and raw-output decoding of BlazeFace, on hand-made output tensors with known answers.
import { describe, expect, it } from 'vitest';
import { anchors, decodeDetections, DETECTOR_VARIANTS, REGRESSORS_PER_ANCHOR, sigmoid } from '../../src/faces/blazeface.js';

const { layers } = DETECTOR_VARIANTS['blazeface-back-256'];

describe('anchors', () => {
  it('lays 16x16x2 then 8x8x6 anchors (896, the outputs 512 + 384) in row-major cell order', () => {
    const a = anchors(layers);
    expect(a).toHaveLength(896);
    expect(a[0]).toEqual({ x: 0.5 / 16, y: 0.5 / 16 });
    expect(a[1]).toEqual(a[0]);
    expect(a[2]).toEqual({ x: 1.5 / 16, y: 0.5 / 16 });
    expect(a[32]).toEqual({ x: 0.5 / 16, y: 1.5 / 16 });
    expect(a[512]).toEqual({ x: 0.5 / 8, y: 0.5 / 8 });
    expect(a[517]).toEqual(a[512]);
    expect(a[518]).toEqual({ x: 1.5 / 8, y: 0.5 / 8 });
    expect(a[895]).toEqual({ x: 7.5 / 8, y: 7.5 / 8 });
  });
});

describe('sigmoid', () => {
  it('maps logits to (0, 1) and stays finite far out', () => {
    expect(sigmoid(0)).toBe(0.5);
    expect(sigmoid(Math.log(3))).toBeCloseTo(0.75, 12);
    expect(sigmoid(1e6)).toBeLessThanOrEqual(1);
    expect(sigmoid(-1e6)).toBeGreaterThan(0);
    expect(Number.isFinite(sigmoid(-1e6))).toBe(true);
  });
});

describe('decodeDetections', () => {
  const points = anchors(layers);
  const size = 256;
  const raw = () => ({ scores: new Float32Array(points.length).fill(-10), boxes: new Float32Array(points.length * REGRESSORS_PER_ANCHOR) });

  it('keeps anchors whose sigmoid score reaches the threshold and offsets box and keypoints from the anchor in input pixels', () => {
    const { scores, boxes } = raw();
    const i = 600; // second layer
    scores[i] = 2;
    boxes.set([12.8, -25.6, 64, 51.2, -10, -10, 10, -10, 0, 5, 0, 20, -30, 0, 30, 0], i * REGRESSORS_PER_ANCHOR);
    const [d, ...rest] = decodeDetections(scores, boxes, points, size, 0.5);
    expect(rest).toEqual([]);
    const a = points[i] as { x: number; y: number };
    expect(d?.score).toBeCloseTo(1 / (1 + Math.exp(-2)), 6);
    expect(d?.cx).toBeCloseTo(a.x + 0.05, 6);
    expect(d?.cy).toBeCloseTo(a.y - 0.1, 6);
    expect(d?.w).toBeCloseTo(0.25, 6);
    expect(d?.h).toBeCloseTo(0.2, 6);
    expect(d?.keypoints[0]?.x).toBeCloseTo(a.x - 10 / size, 6);
    expect(d?.keypoints[1]?.x).toBeCloseTo(a.x + 10 / size, 6);
    expect(d?.keypoints[3]?.y).toBeCloseTo(a.y + 20 / size, 6);
    expect(d?.keypoints[5]?.x).toBeCloseTo(a.x + 30 / size, 6);
    expect(d?.keypoints).toHaveLength(6);
  });

  it('drops scores under the threshold and returns survivors in anchor order', () => {
    const { scores, boxes } = raw();
    scores[3] = 0.1; // sigmoid 0.525
    scores[700] = 5;
    scores[100] = -0.1; // sigmoid 0.475: under 0.5
    expect(decodeDetections(scores, boxes, points, size, 0.5).map((d) => d.score)).toEqual([sigmoid(0.1), sigmoid(5)].map((s) => expect.closeTo(s, 6)));
    expect(decodeDetections(scores, boxes, points, size, 0.99)).toHaveLength(1);
  });

  it('refuses outputs whose sizes do not match the anchors', () => {
    const { scores } = raw();
    expect(() => decodeDetections(scores, new Float32Array(10), points, size, 0.5)).toThrow(/896 anchors/);
  });
});
