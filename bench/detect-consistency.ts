// Issue 8's measurements: FER+ Valid faces pasted at several sizes and places into 640x480 scenes (synthetic
// backgrounds, and real photos from @vladmandic/face-api's samples) should get the same expression from the
// detected, FER-framed crop as from the bare 48x48 crop. Prints (1) that consistency per scene kind and size, beside
// variants that measure the framing's choices (eye-level rotation, a 3-scale average), test-time mirroring, and the
// exact pasted square (the resampling's own cost), (2) detection recall, (3) the latency detection adds to a 640x480 photo, and the
// accuracy of bare and framed crops against the FER+ majority label.
//
// Usage: npx tsx bench/detect-consistency.ts --data ../shared/data/ferplus [--count 500] [--seed 7] [--model models/default]
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config.js';
import { facesInImage } from '../src/faces/find-faces.js';
import { FER_FRAMING, faceRegion, type Face } from '../src/faces/framing.js';
import { cropRegion, type CropRegion } from '../src/faces/crop.js';
import { decodeImage, decodeUpright, type RgbImage } from '../src/image/decode.js';
import { preprocess, tensorSize } from '../src/inference/preprocess.js';
import { startModels } from '../src/service.js';
import { matchFace, median, pasteFace, photoBackground, placeAt, sample, syntheticBackground } from './detect-scenes.js';
import { readFerSplit, rng } from './ferplus-split.js';

const { values: args } = parseArgs({
  options: {
    data: { type: 'string' },
    count: { type: 'string', default: '500' },
    seed: { type: 'string', default: '7' },
    model: { type: 'string', default: 'models/default' },
  },
});
if (!args.data) throw new Error('--data <FER+ root> is required');

const WIDTH = 640;
const HEIGHT = 480;
/** Pasted face sides in pixels: from a small face in a room shot to a close-up. */
const SIDES = [64, 96, 144, 224];
/** One scene in REAL_EVERY uses a real photo as background (which already holds faces of its own). */
const REAL_EVERY = 5;
const SYNTHETIC_BACKGROUNDS = 24;
const MAX_PIXELS = 40_000_000;

const config = loadConfig({ ASM_FER_MODEL_DIR: args.model, ASM_FER_INTRA_OP_THREADS: '2', ASM_FER_LOG_LEVEL: 'warn' });
const models = await startModels(config);
const { detector } = models;
const { bundle, pool } = models.first;
const { input: spec, classes } = bundle.manifest;
const rand = rng(Number(args.seed));

const demo = path.join(path.dirname(createRequire(import.meta.url).resolve('@vladmandic/face-api/package.json')), 'demo');
const photos = await Promise.all([1, 2, 3, 4, 5, 6].map((k) => photoBackground(path.join(demo, `sample${k}.jpg`), WIDTH, HEIGHT)));
const synthetic = await Promise.all(Array.from({ length: SYNTHETIC_BACKGROUNDS }, () => syntheticBackground(WIDTH, HEIGHT, rand)));

/** (N,) crops → (N, K) probability rows, in one batched run. */
async function probabilities(crops: RgbImage[]): Promise<number[][]> {
  const per = tensorSize(spec);
  const batch = new Float32Array(crops.length * per);
  crops.forEach((c, i) => preprocess(c, spec, batch, i * per));
  const out = await pool.run(batch, [crops.length, spec.channels, spec.height, spec.width]);
  const k = classes.length;
  return crops.map((_, i) => Array.from(out.data.subarray(i * k, (i + 1) * k)));
}
const argmax = (row: number[]) => row.indexOf(Math.max(...row));
const sum = (...rows: number[][]) => (rows[0] as number[]).map((_, k) => rows.reduce((s, r) => s + (r[k] as number), 0));

/** The image flipped left to right. */
function mirror(img: RgbImage): RgbImage {
  const data = new Uint8Array(img.data.length);
  for (let y = 0; y < img.height; y++) {
    for (let x = 0; x < img.width; x++) {
      const from = (y * img.width + x) * 3;
      const to = (y * img.width + img.width - 1 - x) * 3;
      data.set(img.data.subarray(from, from + 3), to);
    }
  }
  return { ...img, data };
}

/** Crop variants compared with the bare crop: the service's, eye-levelled, a 3-scale probability average, the
 *  service's averaged with its mirror image (against the bare crop averaged with its own: test-time flipping on both
 *  sides), and the exact pasted square (what resampling alone costs, with perfect framing). */
const VARIANTS = ['framed', 'rotated', 'scales3', 'mirrored', 'exact'] as const;
type Variant = (typeof VARIANTS)[number];
interface Tally {
  scenes: number;
  found: number;
  same: Record<Variant, number>;
}
const noneSame = () => Object.fromEntries(VARIANTS.map((v) => [v, 0])) as Record<Variant, number>;
const tally = new Map<string, Tally>();
const entry = (key: string): Tally => {
  const t = tally.get(key) ?? { scenes: 0, found: 0, same: noneSame() };
  tally.set(key, t);
  return t;
};
let bareCorrect = 0;
let framedCorrect = 0;
let foundScenes = 0;
const addedMs: number[] = [];
const opts = { spec, maxPixels: MAX_PIXELS, autoMaxSide: config.ASM_FER_DETECT_AUTO_MAX_SIDE, detector };
const crop = (img: RgbImage, region: CropRegion) => cropRegion(img, region, spec.width, spec.height);

const faces = sample(readFerSplit(args.data, 'FER2013Valid'), Number(args.count), rand);
for (const [i, face] of faces.entries()) {
  const bareImage = await decodeImage(readFileSync(face.file), { width: spec.width, height: spec.height, maxPixels: MAX_PIXELS });
  const [bareRow, bareMirror] = (await probabilities([bareImage, mirror(bareImage)])) as [number[], number[]];
  const bare = argmax(bareRow);
  const bareMirrored = argmax(sum(bareRow, bareMirror));
  bareCorrect += Number(bare === face.label);
  const side = SIDES[i % SIDES.length] as number;
  const real = i % REAL_EVERY === 0;
  const background = real ? photos[i % photos.length] : synthetic[Math.floor(rand() * synthetic.length)];
  const at = placeAt(WIDTH, HEIGHT, side, rand);
  const scene = await pasteFace(background as Buffer, face.file, at);

  const t0 = performance.now();
  await facesInImage(scene, 0, { ...opts, mode: 'never' });
  const t1 = performance.now();
  const found = await facesInImage(scene, 0, { ...opts, mode: 'always' });
  addedMs.push(performance.now() - t1 - (t1 - t0));

  const t = entry(`${real ? 'photo' : 'synthetic'} ${String(side).padStart(3)} px`);
  t.scenes++;
  const hit = matchFace(found.faces.map((f) => ({ score: f.score ?? 0, box: f.box, keypoints: f.keypoints as Face['keypoints'] })), at);
  if (!hit) continue;
  t.found++;
  foundScenes++;
  const image = await decodeUpright(scene, MAX_PIXELS);
  const region = faceRegion(hit);
  const framedCrop = crop(image, region);
  const rows = await probabilities([
    framedCrop,
    mirror(framedCrop),
    crop(image, faceRegion(hit, { ...FER_FRAMING, rotate: true })),
    crop(image, { cx: at.x + at.side / 2, cy: at.y + at.side / 2, side: at.side, angle: 0 }),
    ...[0.9, 1.1].map((m) => crop(image, { ...region, side: region.side * m })),
  ]);
  const [framed, framedMirror, rotated, exact, smaller, larger] = rows as [number[], number[], number[], number[], number[], number[]];
  const labels: Record<Variant, number> = {
    framed: argmax(framed),
    rotated: argmax(rotated),
    scales3: argmax(sum(framed, smaller, larger)),
    mirrored: argmax(sum(framed, framedMirror)),
    exact: argmax(exact),
  };
  for (const v of VARIANTS) t.same[v] += Number(labels[v] === (v === 'mirrored' ? bareMirrored : bare));
  framedCorrect += Number(labels.framed === face.label);
}
await models.close();

const pct = (a: number, b: number) => (b === 0 ? '-' : `${((100 * a) / b).toFixed(1)}%`);
const all: Tally = { scenes: 0, found: 0, same: noneSame() };
console.log(`FER2013Valid faces: ${faces.length} (seed ${args.seed}), one ${WIDTH}x${HEIGHT} scene each; model ${bundle.manifest.name} ${bundle.manifest.version}; detector ${detector.info.name}, min score ${detector.info.minScore}`);
console.log(`same label as the bare crop, % of found faces:`);
console.log(`${'scene'.padEnd(16)} scenes  recall  ${VARIANTS.map((v) => v.padStart(9)).join('')}  framed, % of all scenes`);
const row = (key: string, t: Tally) =>
  console.log(`${key.padEnd(16)} ${String(t.scenes).padStart(6)}  ${pct(t.found, t.scenes).padStart(6)}  ${VARIANTS.map((v) => pct(t.same[v], t.found).padStart(9)).join('')}  ${pct(t.same.framed, t.scenes).padStart(8)}`);
for (const [key, t] of [...tally.entries()].sort()) {
  all.scenes += t.scenes;
  all.found += t.found;
  for (const v of VARIANTS) all.same[v] += t.same[v];
  row(key, t);
}
row('all', all);
console.log(`accuracy vs FER+ majority: bare crops ${pct(bareCorrect, faces.length)}, framed crops ${pct(framedCorrect, foundScenes)} (of found)`);
const sorted = [...addedMs].sort((a, b) => a - b);
console.log(
  `added latency per ${WIDTH}x${HEIGHT} photo (detect=always minus detect=never, in process): median ${median(addedMs).toFixed(1)} ms, p95 ${(sorted[Math.floor(0.95 * (sorted.length - 1))] as number).toFixed(1)} ms`,
);
