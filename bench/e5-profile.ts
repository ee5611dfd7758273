// Where the service's time goes under load: runs it with --cpu-prof while autocannon sends FER+ PNGs (or the larger
// JPEGs), then sums each thread's self time by stage (multipart, validation, sharp, preprocess, batching hop, JSON,
// onnxruntime, GC, idle). A diagnostic for E5, not a test.
//
// Usage: npx tsx bench/e5-profile.ts [--model-dir models/default] [--data <FER2013Valid>] [--duration 10]
//        [--connections 32] [--jpeg-side 0 (PNG) | 480] [--port <free>] [--env KEY=VALUE ...]
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ferplusPngs, largeJpegs, load, loadNote, predictBody, PREDICT_PATH, startService } from './e5-load.js';

const { values: args } = parseArgs({
  options: {
    'model-dir': { type: 'string', default: 'models/default' },
    data: { type: 'string', default: '../shared/data/ferplus/FER2013Valid' },
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '32' },
    'jpeg-side': { type: 'string', default: '0' },
    env: { type: 'string', multiple: true, default: [] },
    top: { type: 'string', default: '0' },
    port: { type: 'string' },
  },
});

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  /** Microseconds of the monotonic clock (CLOCK_MONOTONIC, as process.hrtime in this process). */
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** The stage a frame belongs to, from its script URL (or V8's pseudo-frames). */
function stage(frame: ProfileNode['callFrame']): string {
  const { url, functionName } = frame;
  if (functionName === '(idle)') return 'idle';
  if (functionName === '(garbage collector)') return 'GC';
  if (functionName === '(program)') return 'native/other';
  const rules: [RegExp, string][] = [
    [/onnxruntime-node|src\/onnx\/worker/, 'onnxruntime'],
    [/busboy|multer|streamsearch|dicer/, 'multipart'],
    [/express-openapi-validator|ajv|json-schema|path-to-regexp/, 'validation'],
    [/sharp|decode\.ts/, 'sharp decode'],
    [/preprocess\.ts/, 'preprocess'],
    [/batcher\.ts|infer\.ts|session-pool\.ts/, 'batching + worker hop'],
    [/body-parser|express|router|finalhandler|send|on-finished|raw-body|type-is|content-type/, 'express'],
    [/pino|sonic-boom/, 'logging'],
    [/prom-client/, 'metrics'],
    [/\/src\//, 'service code'],
    [/^node:|^$/, 'node core'],
  ];
  for (const [re, name] of rules) if (re.test(url)) return name;
  return 'other js';
}

/**
 * Self time per stage and per function in ms, and the thread's total, over the samples taken inside `window` (the
 * measured load, in monotonic microseconds): start-up (module loading, schema compilation) and shutdown are left out.
 */
function summarise(p: Profile, window: [number, number]): { total: number; byStage: Map<string, number>; byFunction: Map<string, number> } {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const byStage = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let total = 0;
  let at = p.startTime;
  p.samples.forEach((id, i) => {
    at += p.timeDeltas[i] ?? 0;
    if (at < window[0] || at > window[1]) return;
    const dt = (p.timeDeltas[i] ?? 0) / 1000;
    total += dt;
    const { callFrame } = byId.get(id) as ProfileNode;
    const s = stage(callFrame);
    byStage.set(s, (byStage.get(s) ?? 0) + dt);
    const fn = `${callFrame.functionName || '(anonymous)'} ${callFrame.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/src\//, 'src/')}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + dt);
  });
  return { total, byStage, byFunction };
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'asm-fer-prof-'));
const pngs = ferplusPngs(String(args.data), 64);
const side = Number(args['jpeg-side']);
const images = side > 0 ? await largeJpegs(pngs, side) : pngs;
const env = Object.fromEntries(args.env.map((kv) => kv.split('=') as [string, string]));
const svc = await startService({ ASM_FER_MODEL_DIR: String(args['model-dir']), ...env }, ['--cpu-prof', `--cpu-prof-dir=${dir}`], args.port === undefined ? undefined : Number(args.port));
await load(svc.base, PREDICT_PATH, images.map(predictBody), { connections: 8, duration: 2 });
const micros = () => Number(process.hrtime.bigint() / 1000n);
const window: [number, number] = [micros(), 0];
const r = await load(svc.base, PREDICT_PATH, images.map(predictBody), { connections: Number(args.connections), duration: Number(args.duration) });
window[1] = micros();
await svc.stop();

console.log(`${r.ok} requests (${r.okPerSec.toFixed(0)}/s, p50 ${r.p50} ms, p99 ${r.p99} ms) of ${side > 0 ? `${side}x${side} JPEG` : '48x48 PNG'}; ${loadNote()}`);
for (const f of readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))) {
  const { total, byStage, byFunction } = summarise(JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as Profile, window);
  const busy = total - (byStage.get('idle') ?? 0);
  console.log(`\n${f}: ${total.toFixed(0)} ms sampled, ${busy.toFixed(0)} ms busy (${((busy / Math.max(1, r.ok)) * 1000).toFixed(0)} us busy per request)`);
  console.log('| stage | self ms | us per request | share of busy |');
  console.log('|---|---|---|---|');
  for (const [s, ms] of [...byStage].sort((a, b) => b[1] - a[1])) {
    if (s === 'idle') continue;
    console.log(`| ${s} | ${ms.toFixed(0)} | ${((ms / Math.max(1, r.ok)) * 1000).toFixed(0)} | ${((100 * ms) / busy).toFixed(1)}% |`);
  }
  const top = [...byFunction].filter(([f]) => !f.startsWith('(idle)')).sort((a, b) => b[1] - a[1]).slice(0, Number(args.top));
  for (const [f, ms] of top) console.log(`  ${ms.toFixed(0).padStart(6)} ms  ${f}`);
}
rmSync(dir, { recursive: true, force: true });
