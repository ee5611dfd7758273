// Memory abuse (issue 20): uploads within every per-file limit that decode to far more than they weigh, and clients
// that give up, against a fresh service per case on loopback. Reports baseline, peak and settled RSS of the service
// process (/proc VmRSS, VmHWM), answers by status, whether every refusal was problem+json, and the detections and
// inference batches that ran after the last answer (a benchmark, not a test; the numbers go to docs/results.md).
//   amplification    1 request: 32 copies of an all-black 6000 x 6000 PNG (~35 KB each), detect=always
//   amplification x3 3 such requests at once
//   under budget x4  4 requests at once of 2 such images each (72 M pixels, just under the request budget)
//   abandoned flood  --flood requests at once of 32 small photos each (detect=always); every client gives up after 1 s
//
// Usage: npx tsx bench/memory-abuse.ts [--model-dir models/default] [--settle 15] [--flood 40] [--cases a,b,c,d]
// The service gets MALLOC_*, VIPS_*, UV_THREADPOOL_SIZE, NODE_OPTIONS and ASM_FER_* from this process's environment, so
// allocator and libvips settings can be compared: `MALLOC_ARENA_MAX=8 npx tsx bench/memory-abuse.ts --cases c`.
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { memoryOf, metric, multipartBody, startService, BOUNDARY } from './e5-load.js';
import { landscape } from '../test/fixtures/photos.js';

const { values: args } = parseArgs({
  options: {
    'model-dir': { type: 'string', default: 'models/default' },
    settle: { type: 'string', default: '15' },
    flood: { type: 'string', default: '40' },
    cases: { type: 'string', default: 'a,b,c,d' },
  },
});
const settleS = Number(args.settle);
const MiB = 2 ** 20;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const black = await sharp({ create: { width: 6000, height: 6000, channels: 3, background: { r: 0, g: 0, b: 0 } } }).png({ compressionLevel: 9 }).toBuffer();
const small = await landscape(320, 240);
const body = (images: Buffer[]) => multipartBody(images.map((data, i) => ({ name: 'image', data, filename: `i${i}.png` })));

interface Case {
  key: string;
  name: string;
  requests: Buffer[];
  /** Client gives up after this many ms (undefined: waits for the answer). */
  abortMs?: number;
}
const cases: Case[] = [
  { key: 'a', name: 'amplification: 1 x 32 black 6000² PNG', requests: [body(Array(32).fill(black))] },
  { key: 'b', name: 'amplification x3 at once', requests: Array(3).fill(body(Array(32).fill(black))) },
  { key: 'c', name: 'under budget: 4 at once of 2 black 6000² PNG', requests: Array(4).fill(body([black, black])) },
  { key: 'd', name: `abandoned flood: ${args.flood} x 32 photos 320x240, clients give up at 1 s`, requests: Array(Number(args.flood)).fill(body(Array(32).fill(small))), abortMs: 1000 },
].filter((c) => String(args.cases).split(',').includes(c.key));

async function work(base: string): Promise<{ detections: number; batches: number }> {
  const text = await (await fetch(`${base}/metrics`)).text();
  return { detections: metric(text, 'asm_fer_detection_duration_seconds_count'), batches: metric(text, 'asm_fer_batch_executions_total') };
}

console.log(`memory abuse on ${args['model-dir']}; settled = RSS ${settleS} s after the last answer (and along the way); one fresh service per case`);
console.log('| case | wire MB | answers | all refusals problem+json | baseline RSS MiB | peak RSS MiB | settled RSS MiB | detections / batches after the last answer | seconds |');
console.log('|---|---|---|---|---|---|---|---|---|');
for (const c of cases) {
  const passed = Object.entries(process.env).filter(([k]) => /^(MALLOC_|VIPS_|ASM_FER_)/.test(k) || k === 'UV_THREADPOOL_SIZE' || k === 'NODE_OPTIONS');
  const svc = await startService({ ...(Object.fromEntries(passed) as Record<string, string>), ASM_FER_MODEL_DIR: String(args['model-dir']) });
  const pid = svc.child.pid as number;
  try {
    // Warm: one detected photo, so baseline includes the detector's and the model's first runs.
    await fetch(`${svc.base}/v1/predict?detect=always`, { method: 'POST', headers: { 'content-type': `multipart/form-data; boundary=${BOUNDARY}` }, body: body([small]) }).then((r) => r.arrayBuffer());
    await sleep(500);
    const baseline = memoryOf(pid).rss;
    const statuses = new Map<string, number>();
    let problems = true;
    const started = performance.now();
    await Promise.all(
      c.requests.map(async (b) => {
        let key: string;
        try {
          const res = await fetch(`${svc.base}/v1/predict?detect=always`, {
            method: 'POST',
            headers: { 'content-type': `multipart/form-data; boundary=${BOUNDARY}` },
            body: b,
            signal: c.abortMs === undefined ? undefined : AbortSignal.timeout(c.abortMs),
          });
          await res.arrayBuffer();
          key = String(res.status);
          if (res.status >= 400 && !String(res.headers.get('content-type')).startsWith('application/problem+json')) problems = false;
        } catch {
          key = 'client gave up';
        }
        statuses.set(key, (statuses.get(key) ?? 0) + 1);
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    const atAnswer = await work(svc.base);
    // RSS along the settle: at 5, 15 and 30 s (those within it) and at its end.
    const marks = [...[5, 15, 30].filter((m) => m < settleS), settleS];
    const along: number[] = [];
    const settleStart = performance.now();
    for (const m of marks) {
      await sleep(Math.max(0, m * 1000 - (performance.now() - settleStart)));
      along.push(memoryOf(pid).rss);
    }
    const settled = memoryOf(pid);
    const after = await work(svc.base);
    const answers = [...statuses].sort().map(([s, n]) => `${s}: ${n}`).join(', ');
    const wire = c.requests.reduce((n, b) => n + b.length, 0) / 1e6;
    const f = (bytes: number) => (bytes / MiB).toFixed(0);
    console.log(
      `| ${c.name} | ${wire.toFixed(1)} | ${answers} | ${problems ? 'yes' : 'no'} | ${f(baseline)} | ${f(settled.peak)} | ${f(settled.rss)} (${marks.map((m, i) => `${m} s: ${f(along[i] as number)}`).join(', ')}) | ` +
        `${after.detections - atAnswer.detections} / ${after.batches - atAnswer.batches} | ${seconds.toFixed(1)} |`,
    );
  } finally {
    await svc.stop();
  }
}
