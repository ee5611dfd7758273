// E5: the service's speed beside the raw-runtime limit, in one run and one table (a benchmark, not a test).
//   (1) the limit: onnxruntime-node in this process on the model, every batch size, the best images/s;
//   (2) the service under concurrent load (autocannon, loopback): FER+ 48x48 PNGs, then larger JPEGs made from them
//       that the service must resize: images/s, p50/p99, peak RSS of the service process;
//       and 8 PNGs per request, which shows how much of the gap to (1) is per-request HTTP cost;
//   (3) the service at concurrency 1 on a 48x48 PNG: p50/p99.
// The machine's load average is printed with each row: on a shared machine the numbers move with it.
//
// Usage: npx tsx bench/e5-speed.ts [--model-dir models/default] [--data <FER2013Valid>] [--duration 10]
//        [--connections 32] [--workers N] [--threads N] [--max-batch N] [--delay-ms N] [--jpeg-side 480]
import os from 'node:os';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { loadBundle } from '../src/bundle/load-bundle.js';
import { decodeImage } from '../src/image/decode.js';
import { preprocess } from '../src/inference/preprocess.js';
import { sessionOptions } from '../src/onnx/providers.js';
import { cpuSecondsOf, ferplusPngs, largeJpegs, load, loadNote, memoryOf, multipartBody, predictBody, PREDICT_PATH, startService, type LoadResult } from './e5-load.js';

const { values: args } = parseArgs({
  options: {
    'model-dir': { type: 'string', default: 'models/default' },
    data: { type: 'string', default: '../shared/data/ferplus/FER2013Valid' },
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '32' },
    workers: { type: 'string' },
    threads: { type: 'string' },
    'max-batch': { type: 'string' },
    'delay-ms': { type: 'string' },
    'jpeg-side': { type: 'string', default: '480' },
    images: { type: 'string', default: '64' },
  },
});
const duration = Number(args.duration);
const connections = Number(args.connections);
const cores = os.availableParallelism();

interface Row {
  measure: string;
  setting: string;
  imagesPerSec?: number;
  p50?: number;
  p99?: number;
  peakRssMiB?: number;
  /** CPU time (all threads of the process doing the work) per image. */
  cpuMsPerImage?: number;
  load: string;
}
const rows: Row[] = [];

/** (1) Batches of real preprocessed FER+ images through one in-process session using every core. */
async function rawLimit(tensors: Float32Array[], shape: [number, number, number]): Promise<{ best: number; batch: number; cpuMs: number; perBatch: string[] }> {
  const bundle = await loadBundle(String(args['model-dir']));
  const session = await ort.InferenceSession.create(bundle.modelPath, { ...sessionOptions(cores), executionProviders: ['cpu'] });
  const per = shape[0] * shape[1] * shape[2];
  let best = { rate: 0, batch: 0, cpuMs: 0 };
  const perBatch: string[] = [];
  for (const b of [1, 2, 4, 8, 16, 32, 64]) {
    const data = new Float32Array(b * per);
    for (let i = 0; i < b; i++) data.set(tensors[i % tensors.length] as Float32Array, i * per);
    const feeds = { [bundle.manifest.input.name]: new ort.Tensor('float32', data, [b, ...shape]) };
    for (let i = 0; i < 3; i++) await session.run(feeds);
    let runs = 0;
    const cpu = process.cpuUsage();
    const started = performance.now();
    while (performance.now() - started < Math.max(1000, (duration * 1000) / 7)) {
      await session.run(feeds);
      runs++;
    }
    const rate = (b * runs) / ((performance.now() - started) / 1000);
    const used = process.cpuUsage(cpu);
    const cpuMs = (used.user + used.system) / 1000 / (b * runs);
    perBatch.push(`${b}: ${rate.toFixed(0)}/s ${cpuMs.toFixed(2)} CPU ms/img`);
    if (rate > best.rate) best = { rate, batch: b, cpuMs };
  }
  await session.release();
  return { best: best.rate, batch: best.batch, cpuMs: best.cpuMs, perBatch };
}

function serviceEnv(): Record<string, string> {
  const env: Record<string, string> = { ASM_FER_MODEL_DIR: String(args['model-dir']) };
  if (args.workers) env.ASM_FER_WORKERS = args.workers;
  if (args.threads) env.ASM_FER_INTRA_OP_THREADS = args.threads;
  if (args['max-batch']) env.ASM_FER_MAX_BATCH_SIZE = args['max-batch'];
  if (args['delay-ms']) env.ASM_FER_MAX_QUEUE_DELAY_MS = args['delay-ms'];
  return env;
}

/** One fresh service per row, so each row's peak RSS is its own. */
async function serviceRow(measure: string, setting: string, bodies: Buffer[], conns: number, imagesPerRequest = 1): Promise<LoadResult> {
  const svc = await startService(serviceEnv());
  try {
    // A short warm-up so the first batches' arena growth and JIT do not land in the measurement.
    await load(svc.base, PREDICT_PATH, bodies, { connections: conns, duration: 2 });
    const pid = svc.child.pid as number;
    const cpuBefore = cpuSecondsOf(pid);
    const r = await load(svc.base, PREDICT_PATH, bodies, { connections: conns, duration });
    const cpuMsPerImage = ((cpuSecondsOf(pid) - cpuBefore) * 1000) / Math.max(1, r.ok * imagesPerRequest);
    const failed = r.non2xx + r.errors + r.timeouts;
    if (failed > 0) console.error(`${measure}: ${failed} failed requests (${JSON.stringify(r.statuses)})`);
    rows.push({ measure, setting, imagesPerSec: r.okPerSec * imagesPerRequest, p50: r.p50, p99: r.p99, peakRssMiB: memoryOf(pid).peak / 2 ** 20, cpuMsPerImage, load: loadNote() });
    return r;
  } finally {
    await svc.stop();
  }
}

const pngs = ferplusPngs(String(args.data), Number(args.images));
const jpegs = await largeJpegs(pngs, Number(args['jpeg-side']));
const bundle = await loadBundle(String(args['model-dir']));
const { input } = bundle.manifest;
const tensors = await Promise.all(pngs.map(async (png) => preprocess(await decodeImage(png, { width: input.width, height: input.height, maxPixels: 40_000_000 }), input)));

const limit = await rawLimit(tensors, [input.channels, input.height, input.width]);
rows.push({ measure: '(1) limit: onnxruntime-node in-process', setting: `best batch ${limit.batch}, ${cores} intra-op threads`, imagesPerSec: limit.best, cpuMsPerImage: limit.cpuMs, load: loadNote() });
console.error(`raw images/s by batch size: ${limit.perBatch.join(', ')}`);

const pngLoad = await serviceRow('(2) service, FER+ PNG 48x48', `${connections} connections`, pngs.map(predictBody), connections);
const side = args['jpeg-side'];
await serviceRow(`(2) service, JPEG ${side}x${side} (resized)`, `${connections} connections`, jpegs.map(predictBody), connections);
// Several images per request spread the per-request HTTP cost: how much of the gap to (1) that cost is.
const PER_REQUEST = 8;
const multi = pngs.map((_, i) => multipartBody(Array.from({ length: PER_REQUEST }, (_, j) => ({ name: 'image', data: pngs[(i + j) % pngs.length] as Buffer, filename: 'face' }))));
await serviceRow(`(2) service, ${PER_REQUEST} FER+ PNGs per request`, `${connections / 4} connections`, multi, connections / 4, PER_REQUEST);
await serviceRow('(3) service, FER+ PNG 48x48', '1 connection', pngs.map(predictBody), 1);

const env = serviceEnv();
console.log(
  `E5 on ${os.cpus()[0]?.model ?? 'unknown CPU'} (${cores} cores), model ${bundle.manifest.name}@${bundle.manifest.version}, ${duration} s per row; ` +
    `service settings: ${Object.entries(env).map(([k, v]) => `${k}=${v}`).join(' ')} (others default)`,
);
console.log('| measure | setting | images/s | p50 ms | p99 ms | peak RSS MiB | CPU ms/image | machine load |');
console.log('|---|---|---|---|---|---|---|---|');
const fmt = (v: number | undefined, digits = 0) => (v === undefined ? '' : v.toFixed(digits));
for (const r of rows) console.log(`| ${r.measure} | ${r.setting} | ${fmt(r.imagesPerSec)} | ${fmt(r.p50, 1)} | ${fmt(r.p99, 1)} | ${fmt(r.peakRssMiB)} | ${fmt(r.cpuMsPerImage, 2)} | ${r.load} |`);
const ratio = pngLoad.okPerSec / limit.best;
const c1 = rows.at(-1) as Row;
console.log(`\n(2)/(1) on PNG = ${ratio.toFixed(2)} (target >= 0.85); (3) p99 = ${fmt(c1.p99, 1)} ms (target < 20 ms)`);
