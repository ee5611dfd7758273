// FER-style framing from a detected face, and the crop resampler that cuts it out.
import { describe, expect, it } from 'vitest';
import { eyeAngle, faceRegion, FER_FRAMING, type Face } from '../../src/faces/framing.js';
import { cropRegion } from '../../src/faces/crop.js';
import type { RgbImage } from '../../src/image/decode.js';

/** A level face: 100 px box at (200, 100), eyes 40 px apart at y = 140, centred across the box. */
function face(over: Partial<Face['keypoints']> = {}): Face {
  const p = (x: number, y: number) => ({ x, y });
  return {
    score: 0.9,
    box: { x: 200, y: 100, width: 100, height: 100 },
    keypoints: { rightEye: p(230, 140), leftEye: p(270, 140), noseTip: p(250, 160), mouth: p(250, 180), rightEar: p(205, 150), leftEar: p(295, 150), ...over },
  };
}

describe('faceRegion', () => {
  it('sizes the crop from the box and puts the eyes at eyeLevel of its height, centred across the box', () => {
    const r = faceRegion(face(), { sidePerBox: 1.2, eyeLevel: 0.4, xShift: 0, rotate: false });
    expect(r.side).toBeCloseTo(120, 9);
    expect(r.angle).toBe(0);
    expect(r.cx).toBeCloseTo(250, 9);
    // Eye line 0.4 * 120 = 48 px below the crop's top edge.
    expect(r.cy - r.side / 2).toBeCloseTo(140 - 48, 9);
  });

  it('shifts the centre by xShift of the side', () => {
    expect(faceRegion(face(), { sidePerBox: 1, eyeLevel: 0.5, xShift: 0.1, rotate: false }).cx).toBeCloseTo(260, 9);
  });

  it('turns the crop with the eye line when rotate is on, keeping the eyes at the same height in it', () => {
    const tilted = face({ rightEye: { x: 230, y: 130 }, leftEye: { x: 270, y: 170 } });
    expect(eyeAngle(tilted)).toBeCloseTo(Math.PI / 4, 9);
    const r = faceRegion(tilted, { sidePerBox: 1, eyeLevel: 0.5, xShift: 0, rotate: true });
    expect(r.angle).toBeCloseTo(Math.PI / 4, 9);
    // eyeLevel 0.5: the eye midpoint is the crop centre, whatever the angle.
    expect(r.cx).toBeCloseTo(250, 9);
    expect(r.cy).toBeCloseTo(150, 9);
    expect(faceRegion(tilted, { ...FER_FRAMING, rotate: false }).angle).toBe(0);
  });
});

/** width x height RGB where pixel (x, y) has R = x, G = y, B = 7. */
function ramp(width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set([x, y, 7], (y * width + x) * 3);
  return { data, width, height, format: 'png' };
}
const px = (img: RgbImage, x: number, y: number) => Array.from(img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3));

describe('cropRegion', () => {
  it('returns the pixels themselves for a same-size, unrotated region', () => {
    const src = ramp(10, 8);
    const out = cropRegion(src, { cx: 5, cy: 4, side: 8, angle: 0 }, 8, 8);
    expect(px(out, 0, 0)).toEqual([1, 0, 7]);
    expect(px(out, 7, 7)).toEqual([8, 7, 7]);
  });

  it('area-averages when shrinking: a 2x2 checkerboard of 0 and 255 becomes mid-grey', () => {
    const data = new Uint8Array(4 * 4 * 3);
    for (let y = 0; y < 4; y++) for (let x = 0; x < 4; x++) data.fill((x + y) % 2 ? 255 : 0, (y * 4 + x) * 3, (y * 4 + x) * 3 + 3);
    const out = cropRegion({ data, width: 4, height: 4, format: 'png' }, { cx: 2, cy: 2, side: 4, angle: 0 }, 2, 2);
    expect(Array.from(out.data)).toEqual(new Array(12).fill(128));
  });

  it('rotates: a quarter turn maps the crop\'s x axis onto the image\'s y axis', () => {
    const src = ramp(9, 9);
    const out = cropRegion(src, { cx: 4.5, cy: 4.5, side: 9, angle: Math.PI / 2 }, 9, 9);
    // Output column u walks down the image; output row v walks right to left.
    expect(px(out, 0, 0)).toEqual([8, 0, 7]);
    expect(px(out, 8, 0)).toEqual([8, 8, 7]);
    expect(px(out, 0, 8)).toEqual([0, 0, 7]);
  });

  it('repeats edge pixels past the border instead of painting black', () => {
    const out = cropRegion(ramp(10, 10), { cx: 0, cy: 0, side: 10, angle: 0 }, 10, 10);
    expect(px(out, 0, 0)).toEqual([0, 0, 7]);
    expect(px(out, 9, 9)).toEqual([4, 4, 7]);
  });
});
