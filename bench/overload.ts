// Overload: offered load far above capacity must give fast 503s with Retry-After, bounded latency for the requests
// that are accepted, and full recovery once the load stops (a benchmark, not a test; numbers go to docs/results.md).
//   1. capacity: 32 connections for --duration s;
//   2. overload: --overload-connections connections (default 16 x the queue's worth of work) for --duration s;
//   3. recovery: right after, 200 sequential requests at concurrency 1 must all be 200 at normal latency.
//
// Usage: npx tsx bench/overload.ts [--model-dir models/default] [--data <FER2013Valid>] [--duration 10]
//        [--overload-connections 512] [--max-queue 256]
import { parseArgs } from 'node:util';
import { ferplusPngs, load, loadByStatus, loadNote, memoryOf, predictBody, PREDICT_PATH, quantile, startService } from './e5-load.js';

const { values: args } = parseArgs({
  options: {
    'model-dir': { type: 'string', default: 'models/default' },
    data: { type: 'string', default: '../shared/data/ferplus/FER2013Valid' },
    duration: { type: 'string', default: '10' },
    'overload-connections': { type: 'string', default: '512' },
    'max-queue': { type: 'string', default: '256' },
  },
});
const duration = Number(args.duration);
const bodies = ferplusPngs(String(args.data), 64).map(predictBody);
const traffic = bodies.map((body) => ({ path: PREDICT_PATH, body }));
const svc = await startService({ ASM_FER_MODEL_DIR: String(args['model-dir']), ASM_FER_MAX_QUEUE: String(args['max-queue']) });
const pid = svc.child.pid as number;
const f = (x: number) => (Number.isNaN(x) ? '-' : x.toFixed(0));
try {
  await load(svc.base, PREDICT_PATH, bodies, { connections: 8, duration: 2 });
  const capacity = await load(svc.base, PREDICT_PATH, bodies, { connections: 32, duration });
  const capLoad = loadNote();
  const over = await loadByStatus(svc.base, traffic, { connections: Number(args['overload-connections']), duration });
  const overLoad = loadNote();
  const ok = over.latencies.get(200) ?? [];
  const busy = over.latencies.get(503) ?? [];
  const other = [...over.latencies].filter(([s]) => s !== 200 && s !== 503);

  const after: number[] = [];
  let recoveredOk = 0;
  for (let i = 0; i < 200; i++) {
    const t0 = performance.now();
    const res = await fetch(`${svc.base}${PREDICT_PATH}`, { method: 'POST', headers: { 'content-type': `multipart/form-data; boundary=asmferbenchboundary` }, body: bodies[i % bodies.length] });
    await res.arrayBuffer();
    after.push(performance.now() - t0);
    if (res.status === 200) recoveredOk++;
  }
  const ready = (await fetch(`${svc.base}/v2/health/ready`)).status;

  console.log(`overload on models ${args['model-dir']}, ASM_FER_MAX_QUEUE=${args['max-queue']}, ${duration} s per phase`);
  console.log('| phase | connections | 200/s | 503/s | other | p50 ms (200) | p99 ms (200) | max ms (200) | p50 ms (503) | p99 ms (503) | machine load |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  console.log(`| capacity | 32 | ${f(capacity.okPerSec)} | 0 | ${capacity.non2xx + capacity.errors} | ${capacity.p50} | ${capacity.p99} | ${capacity.max} | - | - | ${capLoad} |`);
  console.log(
    `| overload | ${args['overload-connections']} | ${f(ok.length / over.seconds)} | ${f(busy.length / over.seconds)} | ${other.map(([s, l]) => `${s}: ${l.length}`).join(', ') || 0}; errors ${over.errors}, timeouts ${over.timeouts} | ` +
      `${f(quantile(ok, 0.5))} | ${f(quantile(ok, 0.99))} | ${f(Math.max(...ok))} | ${f(quantile(busy, 0.5))} | ${f(quantile(busy, 0.99))} | ${overLoad} |`,
  );
  console.log(`| recovery (sequential) | 1 | ${recoveredOk} of 200 were 200 | | | ${quantile(after, 0.5).toFixed(1)} | ${quantile(after, 0.99).toFixed(1)} | ${Math.max(...after).toFixed(1)} | | | ${loadNote()} |`);
  console.log(`\n503s without Retry-After: ${over.missingRetryAfter}; readiness after: ${ready}; service peak RSS ${(memoryOf(pid).peak / 2 ** 20).toFixed(0)} MiB`);
} finally {
  await svc.stop();
}
