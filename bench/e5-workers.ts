// Picks the default worker count and intra-op threads per worker (issue 5) by measurement: one service per setting,
// all started up front and driven in interleaved rounds, so a shared machine's changing load hits every setting alike.
// Prints the median images/s, p99 and service CPU per image of each setting (a benchmark, not a test).
//
// Usage: npx tsx bench/e5-workers.ts [--model-dir models/default] [--data <FER2013Valid>] [--rounds 3] [--duration 5]
//        [--connections 32] [--settings 1x2,2x1,1x1]
import { parseArgs } from 'node:util';
import { cpuSecondsOf, ferplusPngs, load, loadNote, memoryOf, predictBody, PREDICT_PATH, startService, type Service } from './e5-load.js';

const { values: args } = parseArgs({
  options: {
    'model-dir': { type: 'string', default: 'models/default' },
    data: { type: 'string', default: '../shared/data/ferplus/FER2013Valid' },
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '5' },
    connections: { type: 'string', default: '32' },
    settings: { type: 'string', default: '1x2,2x1,1x1' },
  },
});

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const bodies = ferplusPngs(String(args.data), 64).map(predictBody);
const settings = String(args.settings).split(',').map((s) => s.split('x') as [string, string]);
const services: { label: string; svc: Service; rate: number[]; p99: number[]; cpu: number[]; loads: string[] }[] = [];
for (const [workers, threads] of settings) {
  const svc = await startService({ ASM_FER_MODEL_DIR: String(args['model-dir']), ASM_FER_WORKERS: workers, ASM_FER_INTRA_OP_THREADS: threads });
  await load(svc.base, PREDICT_PATH, bodies, { connections: 8, duration: 2 });
  services.push({ label: `${workers} worker(s) x ${threads} thread(s)`, svc, rate: [], p99: [], cpu: [], loads: [] });
}
try {
  for (let round = 0; round < Number(args.rounds); round++) {
    for (const s of services) {
      const pid = s.svc.child.pid as number;
      const cpu0 = cpuSecondsOf(pid);
      const r = await load(s.svc.base, PREDICT_PATH, bodies, { connections: Number(args.connections), duration: Number(args.duration) });
      s.rate.push(r.okPerSec);
      s.p99.push(r.p99);
      s.cpu.push(((cpuSecondsOf(pid) - cpu0) * 1000) / Math.max(1, r.ok));
      s.loads.push(loadNote());
    }
  }
  console.log(`${args.rounds} interleaved rounds of ${args.duration} s, ${args.connections} connections, FER+ 48x48 PNG, one image per request`);
  console.log('| setting | median images/s | images/s per round | median p99 ms | median CPU ms/image | peak RSS MiB |');
  console.log('|---|---|---|---|---|---|');
  for (const s of services) {
    console.log(
      `| ${s.label} | ${median(s.rate).toFixed(0)} | ${s.rate.map((r) => r.toFixed(0)).join(' / ')} | ${median(s.p99).toFixed(0)} | ${median(s.cpu).toFixed(2)} | ${(memoryOf(s.svc.child.pid as number).peak / 2 ** 20).toFixed(0)} |`,
    );
  }
  console.log(`machine load at the end: ${loadNote()}`);
} finally {
  await Promise.all(services.map((s) => s.svc.stop()));
}
