// Writes dlib-vectors.json: face descriptors that @vladmandic/face-api's own recognition net (TF.js, cpu
// backend) computes for a few 150x150 RGB inputs, the reference of training/tests/test_dlib_resnet.py.
// Inputs: three integer pixel patterns that the test regenerates exactly (PATTERNS, mirrored in Python),
// and a face cut from face-api's demo photo with sharp, committed as dlib-face.png (lossless).
// Run once from the repository root after `npm ci`: node training/tests/parity/make-dlib-vectors.mjs
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import sharp from 'sharp';

const here = path.dirname(fileURLToPath(import.meta.url));
const pkgJson = createRequire(import.meta.url).resolve('@vladmandic/face-api/package.json');
const pkg = path.dirname(pkgJson);
const SIZE = 150;

// face-api's bundled TF.js picks its Node platform from a `util` module the browser bundle stubs out;
// posing as a worker makes it take the browser platform, which Node 20's globals (fetch, TextEncoder)
// satisfy. No weights are fetched: they are decoded below from the package's files.
globalThis.WorkerGlobalScope = class {};
const faceapi = await import(pathToFileURL(path.join(pkg, 'dist/face-api.esm.js')).href);
const tf = faceapi.tf;
await tf.setBackend('cpu');
await tf.ready();

/** Integer-exact patterns (uint8 HWC), the same formulas as PATTERNS in test_dlib_resnet.py. */
const PATTERNS = {
  stripes: (y, x, c) => (x * 7 + y * 3 + c * 50) % 256,
  rings: (y, x, c) => Math.floor((x * x + y * y) / (7 + c)) % 256,
  noise: (() => {
    let s = 20250101; // MINSTD: products stay below 2^47, exact in doubles
    const values = new Uint8Array(SIZE * SIZE * 3);
    for (let i = 0; i < values.length; i++) {
      s = (s * 48271) % 2147483647;
      values[i] = Math.floor(s / 256) % 256;
    }
    return (y, x, c) => values[(y * SIZE + x) * 3 + c];
  })(),
};

function pattern(f) {
  const data = new Uint8Array(SIZE * SIZE * 3);
  for (let y = 0; y < SIZE; y++) for (let x = 0; x < SIZE; x++) for (let c = 0; c < 3; c++) data[(y * SIZE + x) * 3 + c] = f(y, x, c);
  return data;
}

// the left-most face of sample1.jpg (box about 420,409 187x187), with a margin as a detector would give
const facePng = path.join(here, 'dlib-face.png');
const face = await sharp(path.join(pkg, 'demo/sample1.jpg'))
  .extract({ left: 395, top: 384, width: 237, height: 237 })
  .resize(SIZE, SIZE)
  .removeAlpha()
  .png({ compressionLevel: 9 })
  .toBuffer();
writeFileSync(facePng, face);
const faceRaw = await sharp(readFileSync(facePng)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
if (faceRaw.info.width !== SIZE || faceRaw.info.height !== SIZE || faceRaw.info.channels !== 3) throw new Error('unexpected face crop');

const manifestPath = path.join(pkg, 'model/face_recognition_model-weights_manifest.json');
const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
const shards = manifest.flatMap((g) => g.paths.map((p) => readFileSync(path.join(pkg, 'model', p))));
const bytes = Buffer.concat(shards);
const weightMap = tf.io.decodeWeights(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length), manifest.flatMap((g) => g.weights));
const net = faceapi.nets.faceRecognitionNet;
net.loadFromWeightMap(weightMap);

const inputs = [
  ...Object.entries(PATTERNS).map(([name, f]) => ({ name, source: 'pattern', pixels: pattern(f) })),
  { name: 'face', source: 'dlib-face.png', pixels: new Uint8Array(faceRaw.data) },
];
const out = [];
for (const { name, source, pixels } of inputs) {
  const x = tf.tensor3d(Float32Array.from(pixels), [SIZE, SIZE, 3]);
  const descriptor = await net.computeFaceDescriptor(x);
  x.dispose();
  out.push({ name, source, descriptor: Array.from(descriptor) });
}
const version = JSON.parse(readFileSync(pkgJson, 'utf8')).version;
const doc = {
  generator: 'training/tests/parity/make-dlib-vectors.mjs',
  package: `@vladmandic/face-api@${version}`,
  tfjs: `${tf.version_core} (${tf.getBackend()} backend)`,
  size: SIZE,
  inputs: out,
};
writeFileSync(path.join(here, 'dlib-vectors.json'), JSON.stringify(doc, null, 1) + '\n');
console.log(`wrote ${out.length} descriptors; |face| = ${Math.hypot(...out.at(-1).descriptor).toFixed(4)}`);
