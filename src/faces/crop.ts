// Cuts a square, possibly rotated face region out of decoded RGB pixels and resamples it to the expression model's
// size; pure and synchronous (a 48x48 crop is a few hundred thousand samples at most, well under a millisecond).
import type { RgbImage } from '../image/decode.js';

/** A square region of the source image, in its pixels: centre, side, and rotation (radians, clockwise on screen). */
export interface CropRegion {
  cx: number;
  cy: number;
  side: number;
  angle: number;
}

/** Sub-samples per output pixel side are capped here: beyond 8x8 the mean barely changes and cost grows fourfold. */
const MAX_SUBSAMPLES = 8;

/**
 * region of src → (height, width, 3) uint8. Each output pixel averages n x n bilinear samples spread over its
 * footprint (n = ceil(source pixels per output pixel)), so large faces are area-averaged the way a resize filter
 * would, not aliased. Samples outside the image repeat its edge pixels: a face at the border keeps its own tones
 * instead of a black band FER2013 crops never have.
 */
export function cropRegion(src: RgbImage, region: CropRegion, width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  const stepX = region.side / width;
  const stepY = region.side / height;
  const n = Math.min(MAX_SUBSAMPLES, Math.max(1, Math.ceil(Math.max(stepX, stepY))));
  const cos = Math.cos(region.angle);
  const sin = Math.sin(region.angle);
  const acc = [0, 0, 0];
  for (let v = 0; v < height; v++) {
    for (let u = 0; u < width; u++) {
      acc[0] = acc[1] = acc[2] = 0;
      for (let j = 0; j < n; j++) {
        const oy = (v + (j + 0.5) / n) * stepY - region.side / 2;
        for (let i = 0; i < n; i++) {
          const ox = (u + (i + 0.5) / n) * stepX - region.side / 2;
          bilinear(src, region.cx + ox * cos - oy * sin, region.cy + ox * sin + oy * cos, acc);
        }
      }
      const o = (v * width + u) * 3;
      for (let c = 0; c < 3; c++) data[o + c] = Math.round((acc[c] as number) / (n * n));
    }
  }
  return { data, width, height, format: src.format };
}

const clamp = (v: number, hi: number) => (v < 0 ? 0 : v > hi ? hi : v);

/** Adds the bilinear sample at continuous coordinates (x, y) (pixel centres at k + 0.5) to acc. */
function bilinear(src: RgbImage, x: number, y: number, acc: number[]): void {
  const fx = clamp(x - 0.5, src.width - 1);
  const fy = clamp(y - 0.5, src.height - 1);
  const x0 = Math.floor(fx);
  const y0 = Math.floor(fy);
  const x1 = Math.min(x0 + 1, src.width - 1);
  const y1 = Math.min(y0 + 1, src.height - 1);
  const ax = fx - x0;
  const ay = fy - y0;
  const d = src.data;
  const row0 = y0 * src.width;
  const row1 = y1 * src.width;
  for (let c = 0; c < 3; c++) {
    const top = (d[(row0 + x0) * 3 + c] as number) * (1 - ax) + (d[(row0 + x1) * 3 + c] as number) * ax;
    const bottom = (d[(row1 + x0) * 3 + c] as number) * (1 - ax) + (d[(row1 + x1) * 3 + c] as number) * ax;
    acc[c] = (acc[c] as number) + top * (1 - ay) + bottom * ay;
  }
}
