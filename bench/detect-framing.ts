// Calibrates src/faces/framing.ts's FER_FRAMING: pastes FER2013Train faces into 640x480 synthetic scenes, runs the
// detector, and prints the medians of crop side / box side, eye height in the crop and the horizontal offset of the
// crop centre from the box centre, over the faces it found; and how much crop side / X varies from face to face for
// each size cue X the detector gives (box, eye distance, eye-mouth distance, ear distance).
//
// Then sweeps crop side and eye height around those medians and prints, for each, how often the expression model
// (--model) gives the framed crop the same label as the bare crop.
//
// Usage: npx tsx bench/detect-framing.ts --data ../shared/data/ferplus [--count 300] [--seed 1] [--model models/default]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config.js';
import { eyeAngle, FER_FRAMING, faceRegion, type Framing } from '../src/faces/framing.js';
import { cropRegion } from '../src/faces/crop.js';
import { decodeImage, decodeUpright, type RgbImage } from '../src/image/decode.js';
import { preprocess, tensorSize } from '../src/inference/preprocess.js';
import { startModels } from '../src/service.js';
import { matchFace, median, pasteFace, placeAt, sample, syntheticBackground } from './detect-scenes.js';
import { readFerSplit, rng } from './ferplus-split.js';

const { values: args } = parseArgs({
  options: {
    data: { type: 'string' },
    count: { type: 'string', default: '300' },
    seed: { type: 'string', default: '1' },
    model: { type: 'string', default: 'models/default' },
  },
});
if (!args.data) throw new Error('--data <FER+ root> is required');

const WIDTH = 640;
const HEIGHT = 480;
const SIDES = [96, 144, 192];

const dist = (a: { x: number; y: number }, b: { x: number; y: number }) => Math.hypot(a.x - b.x, a.y - b.y);

const rand = rng(Number(args.seed));
const faces = sample(readFerSplit(args.data, 'FER2013Train'), Number(args.count), rand);
const config = loadConfig({ ASM_FER_MODEL_DIR: args.model, ASM_FER_INTRA_OP_THREADS: '2', ASM_FER_LOG_LEVEL: 'warn' });
const models = await startModels(config);
const { detector } = models;
const { bundle, pool } = models.first;
const spec = bundle.manifest.input;
const K = bundle.manifest.classes.length;
async function labels(crops: RgbImage[]): Promise<number[]> {
  const batch = new Float32Array(crops.length * tensorSize(spec));
  crops.forEach((c, i) => preprocess(c, spec, batch, i * tensorSize(spec)));
  const out = await pool.run(batch, [crops.length, spec.channels, spec.height, spec.width]);
  return crops.map((_, i) => {
    const row = Array.from(out.data.subarray(i * K, (i + 1) * K));
    return row.indexOf(Math.max(...row));
  });
}
const SIDE_STEPS = [0.85, 0.9, 0.95, 1, 1.05, 1.1];
const EYE_STEPS = [-0.06, -0.03, 0, 0.03];
const sweep: Framing[] = SIDE_STEPS.flatMap((m) => EYE_STEPS.map((d) => ({ ...FER_FRAMING, sidePerBox: FER_FRAMING.sidePerBox * m, eyeLevel: FER_FRAMING.eyeLevel + d })));
const agree = sweep.map(() => 0);
const bySide = new Map<number, number[]>();
const sidePerBox: number[] = [];
const perEyes: number[] = [];
const perEyeMouth: number[] = [];
const perEars: number[] = [];
const eyeLevel: number[] = [];
const xShift: number[] = [];
const angles: number[] = [];
let found = 0;
for (const [i, face] of faces.entries()) {
  const at = placeAt(WIDTH, HEIGHT, SIDES[i % SIDES.length] as number, rand);
  const scene = await pasteFace(await syntheticBackground(WIDTH, HEIGHT, rand), face.file, at);
  const hit = matchFace(await detector.detect(await decodeUpright(scene, 1e8)), at);
  if (!hit) continue;
  found++;
  const k = hit.keypoints;
  const boxSide = (hit.box.width + hit.box.height) / 2;
  const eyes = { x: (k.rightEye.x + k.leftEye.x) / 2, y: (k.rightEye.y + k.leftEye.y) / 2 };
  sidePerBox.push(at.side / boxSide);
  bySide.set(at.side, [...(bySide.get(at.side) ?? []), at.side / boxSide]);
  perEyes.push(at.side / dist(k.rightEye, k.leftEye));
  perEyeMouth.push(at.side / dist(eyes, k.mouth));
  perEars.push(at.side / dist(k.rightEar, k.leftEar));
  eyeLevel.push((eyes.y - at.y) / at.side);
  xShift.push((at.x + at.side / 2 - (hit.box.x + hit.box.width / 2)) / at.side);
  angles.push(Math.abs(eyeAngle(hit)) * (180 / Math.PI));
  const image = await decodeUpright(scene, 1e8);
  const [bare, ...framed] = await labels([
    await decodeImage(readFileSync(face.file), { width: spec.width, height: spec.height, maxPixels: 1e8 }),
    ...sweep.map((f) => cropRegion(image, faceRegion(hit, f), spec.width, spec.height)),
  ]);
  framed.forEach((l, j) => (agree[j] = (agree[j] as number) + Number(l === bare)));
}
await models.close();
const f3 = (x: number) => x.toFixed(3);
console.log(`FER2013Train faces: ${faces.length} (seed ${args.seed}), pasted at ${SIDES.join('/')} px into ${WIDTH}x${HEIGHT} synthetic scenes`);
console.log(`detected: ${found} (${((100 * found) / faces.length).toFixed(1)}%)`);
console.log(`sidePerBox median ${f3(median(sidePerBox))}  eyeLevel median ${f3(median(eyeLevel))}  xShift median ${f3(median(xShift))}`);
const quartiles = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return `${f3(s[Math.floor(s.length / 4)] as number)}..${f3(s[Math.floor((3 * s.length) / 4)] as number)}`;
};
console.log(`interquartile ranges: sidePerBox ${quartiles(sidePerBox)}  eyeLevel ${quartiles(eyeLevel)}  xShift ${quartiles(xShift)}`);
const spread = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return `${f3(median(xs))} (IQR/median ${f3(((s[Math.floor((3 * s.length) / 4)] as number) - (s[Math.floor(s.length / 4)] as number)) / median(xs))})`;
};
console.log(`side per box ${spread(sidePerBox)}, per eye distance ${spread(perEyes)}, per eye-mouth ${spread(perEyeMouth)}, per ear distance ${spread(perEars)}`);
console.log(`sidePerBox median by pasted side: ${[...bySide.entries()].map(([k, v]) => `${k} px ${f3(median(v))}`).join(', ')}`);
console.log(`|eye angle| median ${median(angles).toFixed(1)} deg`);
console.log(`same label as the bare crop (% of detected), by sidePerBox (rows) and eyeLevel (columns):`);
console.log(`${''.padEnd(10)}${EYE_STEPS.map((d) => (FER_FRAMING.eyeLevel + d).toFixed(2).padStart(8)).join('')}`);
SIDE_STEPS.forEach((m, r) => {
  const cells = EYE_STEPS.map((_, c) => `${((100 * (agree[r * EYE_STEPS.length + c] as number)) / found).toFixed(1)}%`.padStart(8));
  console.log(`${(FER_FRAMING.sidePerBox * m).toFixed(3).padEnd(10)}${cells.join('')}`);
});
