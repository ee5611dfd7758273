// Scenes for the face-detection benchmarks: FER+ faces (bare 48x48 crops) pasted at a known place and scale into
// larger synthetic backgrounds or real photos, so the detector's output can be checked against where the face is.
import sharp from 'sharp';
import type { Face } from '../src/faces/framing.js';

/** `count` distinct items drawn with `rand`. */
export function sample<T>(items: readonly T[], count: number, rand: () => number): T[] {
  const pool = [...items];
  for (let i = pool.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [pool[i], pool[j]] = [pool[j] as T, pool[i] as T];
  }
  return pool.slice(0, count);
}

/** A smooth two-colour gradient with pixel noise and a few soft blobs: texture without anything face-like. */
export async function syntheticBackground(width: number, height: number, rand: () => number): Promise<Buffer> {
  const data = Buffer.alloc(width * height * 3);
  const c0 = [rand() * 255, rand() * 255, rand() * 255];
  const c1 = [rand() * 255, rand() * 255, rand() * 255];
  const blobs = Array.from({ length: 6 }, () => ({ x: rand() * width, y: rand() * height, r: 20 + rand() * 120, v: rand() * 120 - 60 }));
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const t = (x / width + y / height) / 2;
      let shade = 0;
      for (const b of blobs) shade += b.v * Math.exp(-((x - b.x) ** 2 + (y - b.y) ** 2) / (2 * b.r * b.r));
      for (let c = 0; c < 3; c++) {
        const base = (c0[c] as number) * (1 - t) + (c1[c] as number) * t;
        data[(y * width + x) * 3 + c] = Math.max(0, Math.min(255, base + shade + (rand() - 0.5) * 24));
      }
    }
  }
  return sharp(data, { raw: { width, height, channels: 3 } }).png({ compressionLevel: 1 }).toBuffer();
}

/** A real photo resized to cover width x height (centre crop). */
export async function photoBackground(file: string, width: number, height: number): Promise<Buffer> {
  return sharp(file).rotate().resize(width, height, { fit: 'cover' }).removeAlpha().png({ compressionLevel: 1 }).toBuffer();
}

export interface Placement {
  x: number;
  y: number;
  side: number;
}

/** The grey 48x48 crop scaled to `at.side` (bilinear) and pasted at (at.x, at.y); returns a PNG of the scene. */
export async function pasteFace(background: Buffer, faceFile: string, at: Placement): Promise<Buffer> {
  const face = await sharp(faceFile).resize(at.side, at.side, { kernel: 'linear' }).toColourspace('srgb').png().toBuffer();
  return sharp(background).composite([{ input: face, left: at.x, top: at.y }]).png({ compressionLevel: 1 }).toBuffer();
}

/** A random placement of a side-pixel face fully inside width x height. */
export function placeAt(width: number, height: number, side: number, rand: () => number): Placement {
  return { x: Math.floor(rand() * (width - side + 1)), y: Math.floor(rand() * (height - side + 1)), side };
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

/** The detected face overlapping the pasted square most (IoU >= 0.3), if any. */
export function matchFace(faces: readonly Face[], at: Placement): Face | undefined {
  let best: Face | undefined;
  let bestIou = 0.3;
  for (const f of faces) {
    const ix = Math.min(f.box.x + f.box.width, at.x + at.side) - Math.max(f.box.x, at.x);
    const iy = Math.min(f.box.y + f.box.height, at.y + at.side) - Math.max(f.box.y, at.y);
    const inter = Math.max(0, ix) * Math.max(0, iy);
    const iou = inter / (f.box.width * f.box.height + at.side * at.side - inter);
    if (iou >= bestIou) [best, bestIou] = [f, iou];
  }
  return best;
}
