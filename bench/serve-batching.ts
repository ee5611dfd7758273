// Dynamic batching on vs off under concurrent HTTP load (a benchmark, not a test; numbers go to docs/results.md).
// Starts src/main.ts as a child process per setting on the fixture model (or --model-dir), drives POST /v1/predict
// (whole images, detect=never, as E5) with autocannon using generated 48x48 PNGs (one image per request), and prints
// images/s, p50/p99 latency and the mean batch size read back from /metrics.
//
// Usage: npm run bench:batching -- [--model-dir test/fixtures/generated/bundle] [--duration 10] [--connections 32]
//        [--max-batch 32] [--delay-ms 2] [--workers 1] [--threads 2]
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import sharp from 'sharp';
import { imagePart } from '../test/fixtures/multipart.js';
import { BOUNDARY, multipartBody, PREDICT_PATH, startService } from './e5-load.js';

const { values: args } = parseArgs({
  options: {
    'model-dir': { type: 'string', default: 'test/fixtures/generated/bundle' },
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '32' },
    'max-batch': { type: 'string', default: '32' },
    'delay-ms': { type: 'string', default: '2' },
    workers: { type: 'string', default: '1' },
    threads: { type: 'string', default: '2' },
  },
});

const IMAGES = 16;

/** Seeded grey noise over a gradient, so every request carries a different real PNG. */
async function makePng(seed: number): Promise<Buffer> {
  let s = seed * 2654435761 + 1;
  const rand = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32) * 64;
  const px = Buffer.alloc(48 * 48);
  for (let i = 0; i < px.length; i++) px[i] = Math.min(255, ((i % 48) * 4 + Math.floor(i / 48) * 1) % 192 + rand());
  return sharp(px, { raw: { width: 48, height: 48, channels: 1 } }).png().toBuffer();
}

function metric(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line ? Number(line.slice(series.length + 1)) : Number.NaN;
}

interface Row {
  setting: string;
  imagesPerSec: number;
  p50: number;
  p99: number;
  ok: number;
  failed: number;
  meanBatch: number;
}

async function run(setting: string, env: Record<string, string>, bodies: Buffer[]): Promise<Row> {
  const svc = await startService(env);
  try {
    const result = await autocannon({
      url: `${svc.base}${PREDICT_PATH}`,
      connections: Number(args.connections),
      duration: Number(args.duration),
      requests: bodies.map((body) => ({ method: 'POST', path: PREDICT_PATH, headers: { 'content-type': `multipart/form-data; boundary=${BOUNDARY}` }, body })),
    });
    const text = await (await fetch(`${svc.base}/metrics`)).text();
    const ok = result['2xx'];
    return {
      setting,
      imagesPerSec: ok / Number(args.duration),
      p50: result.latency.p50,
      p99: result.latency.p99,
      ok,
      failed: result.non2xx + result.errors + result.timeouts,
      meanBatch: metric(text, 'asm_fer_batch_size_sum') / metric(text, 'asm_fer_batch_size_count'),
    };
  } finally {
    await svc.stop();
  }
}

const bodies = await Promise.all(Array.from({ length: IMAGES }, async (_, i) => multipartBody([imagePart(await makePng(i))])));
const common = {
  ASM_FER_MODEL_DIR: String(args['model-dir']),
  ASM_FER_WORKERS: String(args.workers),
  ASM_FER_INTRA_OP_THREADS: String(args.threads),
  ASM_FER_MAX_QUEUE: '1024',
};
const rows = [
  await run(`on (max batch ${args['max-batch']}, delay ${args['delay-ms']} ms)`, { ...common, ASM_FER_MAX_BATCH_SIZE: String(args['max-batch']), ASM_FER_MAX_QUEUE_DELAY_MS: String(args['delay-ms']) }, bodies),
  await run('off (max batch 1)', { ...common, ASM_FER_MAX_BATCH_SIZE: '1', ASM_FER_MAX_QUEUE_DELAY_MS: '0' }, bodies),
];
console.log(`model ${args['model-dir']}, ${args.connections} connections, ${args.duration} s per setting, ${args.workers} worker(s) x ${args.threads} intra-op thread(s)`);
console.log('| batching | images/s | p50 ms | p99 ms | mean batch | 2xx | failed |');
console.log('|---|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(`| ${r.setting} | ${r.imagesPerSec.toFixed(0)} | ${r.p50} | ${r.p99} | ${r.meanBatch.toFixed(1)} | ${r.ok} | ${r.failed} |`);
}
