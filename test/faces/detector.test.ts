// The BlazeFace detector end to end on real photos: one face, several faces, none; boxes and keypoints land on the
// faces, and letterbox coordinates map back to the image.
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import type { Detection } from '../../src/faces/blazeface.js';
import { FaceDetector, detectorInput, readingOrder, toImageFace } from '../../src/faces/detector.js';
import type { Face } from '../../src/faces/framing.js';
import { decodeUpright } from '../../src/image/decode.js';
import { createMetrics } from '../../src/metrics.js';
import { moduleOptions } from '../../src/service.js';
import { fourFaces, landscape, oneFace, threeFaces } from '../fixtures/photos.js';

const metrics = createMetrics({ defaultMetrics: false });
let detector: FaceDetector;
beforeAll(async () => {
  detector = await FaceDetector.start(moduleOptions(loadConfig({ ASM_FER_INTRA_OP_THREADS: '1', ASM_FER_LOG_LEVEL: 'silent' })).detector, metrics);
});
afterAll(() => detector.close());

const detect = async (buf: Buffer) => detector.detect(await decodeUpright(buf, 40_000_000));
const inside = (p: { x: number; y: number }, f: Face) => p.x > f.box.x && p.x < f.box.x + f.box.width && p.y > f.box.y && p.y < f.box.y + f.box.height;

describe('FaceDetector on real photos', () => {
  it('finds the one face in a single-face photo, with its eyes, nose and mouth inside the box in face order', async () => {
    const [face, ...rest] = await detect(await oneFace());
    expect(rest).toEqual([]);
    expect(face?.score).toBeGreaterThan(0.8);
    // The face sits at about (170, 159) 187x187 in the 500x500 cut.
    expect(face?.box.x).toBeGreaterThan(140);
    expect(face?.box.x).toBeLessThan(200);
    expect(face?.box.width).toBeGreaterThan(150);
    expect(face?.box.width).toBeLessThan(230);
    const k = (face as Face).keypoints;
    for (const p of [k.rightEye, k.leftEye, k.noseTip, k.mouth]) expect(inside(p, face as Face)).toBe(true);
    // The subject's right eye is on the viewer's left; eyes above the nose, the nose above the mouth.
    expect(k.rightEye.x).toBeLessThan(k.leftEye.x);
    expect(Math.max(k.rightEye.y, k.leftEye.y)).toBeLessThan(k.mouth.y);
    expect(k.noseTip.y).toBeLessThan(k.mouth.y);
  });

  it('finds every face of group photos, left to right', async () => {
    const three = await detect(threeFaces());
    const four = await detect(fourFaces());
    expect(three).toHaveLength(3);
    expect(four).toHaveLength(4);
    for (const faces of [three, four]) {
      const centres = faces.map((f) => f.box.x + f.box.width / 2);
      expect(centres).toEqual([...centres].sort((a, b) => a - b));
      for (const f of faces) expect(f.score).toBeGreaterThanOrEqual(0.5);
    }
  });

  it('finds no face in a landscape or in noise, and records each detection in the metrics', async () => {
    const noise = await sharp(Buffer.from(Array.from({ length: 320 * 240 * 3 }, (_, i) => (i * 7919) % 251)), { raw: { width: 320, height: 240, channels: 3 } })
      .png()
      .toBuffer();
    expect(await detect(await landscape())).toEqual([]);
    expect(await detect(noise)).toEqual([]);
    expect(await metrics.render()).toMatch(/asm_fer_detection_duration_seconds_count [1-9]/);
    expect(await metrics.render()).toMatch(/asm_fer_detected_faces_bucket\{le="0"\} [1-9]/);
  });

  it('reports the same face wherever the photo is padded: boxes follow the image, not the letterbox', async () => {
    const cut = await oneFace();
    const padded = await sharp(cut).extend({ left: 300, top: 40, right: 0, bottom: 160, background: { r: 30, g: 30, b: 30 } }).png().toBuffer();
    const [a] = await detect(cut);
    const [b] = await detect(padded);
    expect(b?.box.x).toBeCloseTo((a?.box.x ?? 0) + 300, -1);
    expect(b?.box.y).toBeCloseTo((a?.box.y ?? 0) + 40, -1);
    expect(b?.box.width).toBeCloseTo(a?.box.width ?? 0, -1);
  });

  it('the 128 px front variant finds the close-up face at the same place', async () => {
    const front = await FaceDetector.start(moduleOptions(loadConfig({ ASM_FER_INTRA_OP_THREADS: '1', ASM_FER_DETECTOR: 'blazeface-front-128' })).detector);
    try {
      const img = await decodeUpright(await oneFace(), 40_000_000);
      const [back] = await detector.detect(img);
      const found = await front.detect(img);
      expect(front.info).toMatchObject({ name: 'blazeface-front-128', inputSize: 128 });
      expect(found).toHaveLength(1);
      expect(Math.abs((found[0]?.box.x ?? 0) - (back?.box.x ?? 0))).toBeLessThan(25);
      expect(Math.abs((found[0]?.box.y ?? 0) - (back?.box.y ?? 0))).toBeLessThan(25);
    } finally {
      await front.close();
    }
  });

  it('keeps at most ASM_FER_DETECT_MAX_FACES faces and drops those under ASM_FER_DETECT_MIN_SCORE', async () => {
    const capped = await FaceDetector.start(moduleOptions(loadConfig({ ASM_FER_INTRA_OP_THREADS: '1', ASM_FER_DETECT_MAX_FACES: '2' })).detector);
    const strict = await FaceDetector.start(moduleOptions(loadConfig({ ASM_FER_INTRA_OP_THREADS: '1', ASM_FER_DETECT_MIN_SCORE: '0.999' })).detector);
    try {
      const img = await decodeUpright(fourFaces(), 40_000_000);
      expect(await capped.detect(img)).toHaveLength(2);
      expect(await strict.detect(img)).toEqual([]);
    } finally {
      await Promise.all([capped.close(), strict.close()]);
    }
  });
});

describe('detector arithmetic', () => {
  it('scales 8-bit pixels to [-1, 1]', () => {
    expect(Array.from(detectorInput({ data: new Uint8Array([0, 255, 51]), width: 1, height: 1, format: 'png' }))).toEqual([-1, 1, expect.closeTo(-0.6, 6)]);
  });

  it('maps letterbox coordinates back to image pixels', () => {
    const d: Detection = { score: 0.9, cx: 0.5, cy: 0.5, w: 0.25, h: 0.25, keypoints: Array.from({ length: 6 }, () => ({ x: 0.5, y: 0.25 })) };
    // A 512x256 image in a 256 square: scale 0.5, 64 px bands above and below.
    const f = toImageFace(d, { size: 256, scaleX: 0.5, scaleY: 0.5, padX: 0, padY: 64 });
    expect(f.box).toEqual({ x: 192, y: 64, width: 128, height: 128 });
    expect(f.keypoints.mouth).toEqual({ x: 256, y: 0 });
  });

  it('orders faces left to right, then top to bottom', () => {
    const at = (x: number, y: number): Face => ({ score: 1, box: { x, y, width: 10, height: 10 }, keypoints: {} as Face['keypoints'] });
    expect(readingOrder([at(50, 0), at(0, 30), at(0, 5)]).map((f) => [f.box.x, f.box.y])).toEqual([[0, 5], [0, 30], [50, 0]]);
  });
});
