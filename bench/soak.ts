// Soak: mixed predict/audit traffic for --duration seconds (10 minutes by default) against one service process,
// sampling its resident memory; passes when RSS grew < 10% from the end of warm-up to the end and nothing failed.
// Writes the samples as CSV and the RSS curve as SVG (a bounded benchmark, not part of `make test`).
//
// Usage: npx tsx bench/soak.ts [--duration 600] [--rate 50] [--connections 8] [--sample 5]
//        [--csv docs/soak.csv] [--svg docs/img/soak-rss.svg] [--model-dir models/default] [--data <FER2013Valid>]
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ferplusPngs, loadByStatus, loadNote, memoryOf, multipartBody, predictBody, startService, type Traffic } from './e5-load.js';

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '600' },
    rate: { type: 'string', default: '50' },
    connections: { type: 'string', default: '8' },
    sample: { type: 'string', default: '5' },
    csv: { type: 'string', default: 'docs/soak.csv' },
    svg: { type: 'string', default: 'docs/img/soak-rss.svg' },
    'model-dir': { type: 'string', default: 'models/default' },
    data: { type: 'string', default: '../shared/data/ferplus/FER2013Valid' },
  },
});
const duration = Number(args.duration);
/** Memory settles during the first tenth of the run (at least 10 s): arenas, JIT, allocator pools. */
const warmup = Math.max(10, duration / 10);
const GROWTH_LIMIT = 0.1;

const { classes } = JSON.parse(readFileSync(`${args['model-dir']}/model.json`, 'utf8')) as { classes: string[] };
const pngs = ferplusPngs(String(args.data), 64);
const traffic: Traffic[] = pngs.flatMap((png, i) => [
  { path: '/v1/predict', body: predictBody(png) },
  {
    path: '/v1/audit',
    body: multipartBody([
      { name: 'image', data: png, filename: 'face.png' },
      { name: 'label', data: classes[i % classes.length] as string },
    ]),
  },
]);

interface Sample {
  t: number;
  rssMiB: number;
  ok: number;
  failed: number;
  load1: number;
}
const samples: Sample[] = [];
const svc = await startService({ ASM_FER_MODEL_DIR: String(args['model-dir']) });
const pid = svc.child.pid as number;
let ok = 0;
let failed = 0;
const started = performance.now();
const timer = setInterval(() => {
  samples.push({ t: (performance.now() - started) / 1000, rssMiB: memoryOf(pid).rss / 2 ** 20, ok, failed, load1: Number(loadNote().split(' ')[1]) });
  ok = 0;
  failed = 0;
}, Number(args.sample) * 1000);
let result;
try {
  result = await loadByStatus(svc.base, traffic, {
    connections: Number(args.connections),
    duration,
    overallRate: Number(args.rate),
    onResponse: (status) => (status === 200 ? ok++ : failed++),
  });
} finally {
  clearInterval(timer);
  await svc.stop();
}

const settled = samples.find((s) => s.t >= warmup) ?? (samples[0] as Sample);
const last = samples.at(-1) as Sample;
const growth = (last.rssMiB - settled.rssMiB) / settled.rssMiB;
const total = [...result.latencies.values()].reduce((n, l) => n + l.length, 0);
const bad = [...result.latencies].filter(([s]) => s !== 200).reduce((n, [, l]) => n + l.length, 0) + result.errors + result.timeouts;

writeFileSync(String(args.csv), ['seconds,rss_mib,ok_in_interval,failed_in_interval,loadavg_1m', ...samples.map((s) => `${s.t.toFixed(1)},${s.rssMiB.toFixed(1)},${s.ok},${s.failed},${s.load1}`)].join('\n') + '\n');
writeFileSync(String(args.svg), svgCurve(samples, settled.rssMiB));
console.log(
  `soak ${duration} s at ${args.rate} req/s offered (${args.connections} connections, predict and audit alternating): ${total} responses, ${bad} not 200; ` +
    `RSS ${settled.rssMiB.toFixed(0)} MiB after ${warmup.toFixed(0)} s warm-up -> ${last.rssMiB.toFixed(0)} MiB at the end (${(100 * growth).toFixed(1)}%, limit ${100 * GROWTH_LIMIT}%), ` +
    `max ${Math.max(...samples.map((s) => s.rssMiB)).toFixed(0)} MiB; ${loadNote()}`,
);
console.log(`curve: ${args.csv}, ${args.svg}`);
console.log(growth < GROWTH_LIMIT && bad === 0 ? 'PASS' : 'FAIL');
process.exitCode = growth < GROWTH_LIMIT && bad === 0 ? 0 : 1;

/** RSS over time as a small standalone SVG line chart, with the warm-up baseline and the +10% limit. */
function svgCurve(points: Sample[], baseline: number): string {
  const W = 640;
  const H = 240;
  const pad = 40;
  const tMax = Math.max(...points.map((p) => p.t), 1);
  const yMax = Math.max(baseline * (1 + GROWTH_LIMIT), ...points.map((p) => p.rssMiB)) * 1.05;
  const x = (t: number) => pad + ((W - 2 * pad) * t) / tMax;
  const y = (v: number) => H - pad - ((H - 2 * pad) * v) / yMax;
  const line = points.map((p) => `${x(p.t).toFixed(1)},${y(p.rssMiB).toFixed(1)}`).join(' ');
  const hline = (v: number, colour: string, label: string) =>
    `<line x1="${pad}" x2="${W - pad}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="${colour}" stroke-dasharray="4 3"/>` +
    `<text x="${W - pad}" y="${(y(v) - 4).toFixed(1)}" text-anchor="end" font-size="11" fill="${colour}">${label}</text>`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${pad}" y="20" font-size="13">asm-fer soak: service RSS (MiB) over ${tMax.toFixed(0)} s of mixed predict/audit load</text>`,
    `<line x1="${pad}" x2="${pad}" y1="${pad}" y2="${H - pad}" stroke="black"/>`,
    `<line x1="${pad}" x2="${W - pad}" y1="${H - pad}" y2="${H - pad}" stroke="black"/>`,
    `<text x="${pad - 4}" y="${y(0)}" text-anchor="end" font-size="11">0</text>`,
    `<text x="${pad - 4}" y="${y(yMax / 1.05).toFixed(1)}" text-anchor="end" font-size="11">${(yMax / 1.05).toFixed(0)}</text>`,
    `<text x="${W - pad}" y="${H - pad + 16}" text-anchor="end" font-size="11">${tMax.toFixed(0)} s</text>`,
    hline(baseline, '#888', `after warm-up ${baseline.toFixed(0)} MiB`),
    hline(baseline * (1 + GROWTH_LIMIT), '#c33', '+10% limit'),
    `<polyline points="${line}" fill="none" stroke="#2a6" stroke-width="2"/>`,
    '</svg>',
    '',
  ].join('\n');
}
