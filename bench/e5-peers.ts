// E5 against peers (issue 22): the service, a FastAPI + onnxruntime server written the way a Python user would
// (bench/peers/fastapi_peer.py, same bundle and preprocessing, intra-op spinning off) and the raw in-process
// onnxruntime-node session, measured side by side in one run. Both servers are started once and driven in interleaved
// rounds (the order alternates each round; the raw session is measured in every round too), so a shared machine's
// changing load hits each alike; every row prints the machine's load, and the targets are read from ratios within a
// round. A benchmark, not a test.
//
// By default it runs the service as `make serve` does (issue 32): `npm run build`, then `node dist/main.js` with every
// default (info logging to a pipe included; only PORT, a temporary ASM_FER_DATA_DIR and --env are set), and drives
// each server from autocannon in a process of its own (bench/load-process.ts), as an outside harness does. The
// earlier way (src/main.ts under tsx, ASM_FER_LOG_LEVEL=warn, autocannon inside this process) is --serve tsx
// --drive in-process.
//
// Usage: npx tsx bench/e5-peers.ts [--model-dir models/default] [--data <FER2013Valid>] [--rounds 3] [--duration 8]
//        [--connections 32] [--port 18220] [--warmup 10] [--env KEY=VALUE ...] [--serve dist|tsx]
//        [--drive process|in-process] [--path '/v1/predict?detect=never'] [--peer-threads 0] [--peer-spinning both|off|on]
// The peer runs with onnxruntime's default thread count (--peer-threads 0, one per physical core), as issue 32's
// outside harness did, both with spinning off (as the service's sessions) and with onnxruntime's default spinning on;
// --peer-threads N gives it N threads (the old default was the service's per-session threads).
// The peer's virtualenv (bench/peers/.venv, from bench/peers/requirements.txt) is created on first use.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { loadBundle } from '../src/bundle/load-bundle.js';
import { loadConfig } from '../src/config.js';
import { decodeImage } from '../src/image/decode.js';
import { preprocess } from '../src/inference/preprocess.js';
import { sessionOptions } from '../src/onnx/providers.js';
import { cpuSecondsOf, ferplusPngs, load, mainThreadCpuSecondsOf, predictBody, PREDICT_PATH, startService, type LoadResult } from './e5-load.js';

const { values: args } = parseArgs({
  options: {
    'model-dir': { type: 'string', default: 'models/default' },
    data: { type: 'string', default: '../shared/data/ferplus/FER2013Valid' },
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '8' },
    connections: { type: 'string', default: '32' },
    images: { type: 'string', default: '64' },
    port: { type: 'string', default: '18220' },
    warmup: { type: 'string', default: '10' },
    env: { type: 'string', multiple: true, default: [] },
    serve: { type: 'string', default: 'dist' },
    drive: { type: 'string', default: 'process' },
    path: { type: 'string', default: PREDICT_PATH },
    'peer-threads': { type: 'string', default: '0' },
    'peer-spinning': { type: 'string', default: 'both' },
  },
});
if (!['dist', 'tsx'].includes(String(args.serve))) throw new Error(`--serve is dist or tsx, not ${args.serve}`);
if (!['process', 'in-process'].includes(String(args.drive))) throw new Error(`--drive is process or in-process, not ${args.drive}`);
if (!['both', 'off', 'on'].includes(String(args['peer-spinning']))) throw new Error(`--peer-spinning is both, off or on, not ${args['peer-spinning']}`);
const predictPath = String(args.path);
const peerThreads = Number(args['peer-threads']);
const duration = Number(args.duration);
const high = Number(args.connections);
const port = Number(args.port);
const modelDir = String(args['model-dir']);
const PEER_DIR = 'bench/peers';
const PEER_PYTHON = `${PEER_DIR}/.venv/bin/python`;

const loadAvg = () => os.loadavg().map((l) => l.toFixed(1)).join(' ');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

/** The peer's virtualenv, created from its pinned requirements when missing. */
function ensurePeerVenv(): void {
  if (existsSync(PEER_PYTHON)) return;
  console.error(`creating ${PEER_DIR}/.venv from ${PEER_DIR}/requirements.txt`);
  execFileSync('python3', ['-m', 'venv', `${PEER_DIR}/.venv`], { stdio: 'inherit' });
  execFileSync(PEER_PYTHON, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '-r', `${PEER_DIR}/requirements.txt`], { stdio: 'inherit' });
}

interface Server {
  name: string;
  base: string;
  pid: number;
  /** Whether its main thread's CPU is worth a column: the service's event loop, not uvicorn's. */
  mainThread: boolean;
  stop(): Promise<void>;
}

async function startPeer(threads: number, spinning: boolean, peerPort: number): Promise<Server> {
  const flags = ['--model-dir', modelDir, '--port', String(peerPort), '--threads', String(threads), ...(spinning ? ['--spinning'] : [])];
  const child: ChildProcess = spawn(PEER_PYTHON, [`${PEER_DIR}/fastapi_peer.py`, ...flags], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const base = `http://127.0.0.1:${peerPort}`;
  const deadline = Date.now() + 60_000;
  while (!(await fetch(`${base}/health`).then((r) => r.ok, () => false))) {
    if (child.exitCode !== null) throw new Error(`FastAPI peer exited with code ${child.exitCode}`);
    if (Date.now() > deadline) throw new Error('FastAPI peer not ready after 60 s');
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    name: `FastAPI + onnxruntime peer, ${threads === 0 ? 'default' : threads} thread(s), spinning ${spinning ? 'on' : 'off'}`,
    base,
    pid: child.pid as number,
    mainThread: false,
    stop: async () => {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
    },
  };
}

/**
 * `make serve`: the built service (`npm start`, i.e. node dist/main.js) with every default, its info log read from a
 * pipe as a terminal or a supervisor would; only the port, a temporary audit folder and --env are set.
 */
async function startBuiltService(env: Record<string, string>, servicePort: number): Promise<Server> {
  execFileSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' });
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'asm-fer-bench-'));
  const child = spawn(process.execPath, ['dist/main.js'], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', PORT: String(servicePort), ASM_FER_DATA_DIR: dataDir, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  child.stdout?.resume();
  const base = `http://127.0.0.1:${servicePort}`;
  const deadline = Date.now() + 60_000;
  while (!(await fetch(`${base}/v2/health/ready`).then((r) => r.ok, () => false))) {
    if (child.exitCode !== null) throw new Error(`service exited with code ${child.exitCode}`);
    if (Date.now() > deadline) throw new Error('service not ready after 60 s');
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    name: 'asm-fer service',
    base,
    pid: child.pid as number,
    mainThread: true,
    stop: async () => {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** One autocannon run against base + --path: in a process of its own (--drive process), or in this one. */
async function drive(base: string, connections: number, seconds: number, bodies: Buffer[]): Promise<LoadResult> {
  if (args.drive === 'in-process') return load(base, predictPath, bodies, { connections, duration: seconds });
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/load-process.ts', base, predictPath, String(connections), String(seconds), String(args.data), String(args.images)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((r) => child.once('exit', r));
  if (code !== 0) throw new Error(`bench/load-process.ts exited with code ${code}`);
  return JSON.parse(out) as LoadResult;
}

interface Row {
  round: number;
  who: string;
  connections: number;
  imagesPerSec: number;
  p50?: number;
  p99?: number;
  cpuMsPerImage: number;
  mainCpuMsPerImage?: number;
  load: string;
}

/** One load run against `s`, with its process's CPU (all threads, and the main thread) per answered image. */
async function measure(s: Server, round: number, connections: number, bodies: Buffer[]): Promise<Row> {
  const cpu0 = cpuSecondsOf(s.pid);
  const main0 = s.mainThread ? mainThreadCpuSecondsOf(s.pid) : 0;
  const r: LoadResult = await drive(s.base, connections, duration, bodies);
  const images = Math.max(1, r.ok);
  const failed = r.non2xx + r.errors + r.timeouts;
  if (failed > 0) console.error(`${s.name}, ${connections} connections: ${failed} failed requests (${JSON.stringify(r.statuses)})`);
  return {
    round,
    who: s.name,
    connections,
    imagesPerSec: r.okPerSec,
    p50: r.p50,
    p99: r.p99,
    cpuMsPerImage: ((cpuSecondsOf(s.pid) - cpu0) * 1000) / images,
    ...(s.mainThread ? { mainCpuMsPerImage: ((mainThreadCpuSecondsOf(s.pid) - main0) * 1000) / images } : {}),
    load: loadAvg(),
  };
}

/**
 * The raw limit: the model in this process on preprocessed FER+ tensors, spinning off. Batch 1 on one session with
 * the service's per-session threads (what concurrency 1 costs at best); then the best of batch 4, 16 and 64 on one
 * session with as many intra-op threads as the service's sessions have together (what the machine can reach with
 * nothing else to do). CPU is this process's, which runs nothing else meanwhile.
 */
async function rawLimit(
  single: ort.InferenceSession,
  all: ort.InferenceSession,
  inputName: string,
  tensors: Float32Array[],
  shape: [number, number, number],
  round: number,
): Promise<Row[]> {
  const per = shape[0] * shape[1] * shape[2];
  const slice = Math.max(500, (duration * 1000) / 6);
  const rows: Row[] = [];
  let best: Row | undefined;
  for (const b of [1, 4, 16, 64]) {
    const data = new Float32Array(b * per);
    for (let i = 0; i < b; i++) data.set(tensors[i % tensors.length] as Float32Array, i * per);
    const feeds = { [inputName]: new ort.Tensor('float32', data, [b, ...shape]) };
    const session = b === 1 ? single : all;
    const row = await timeRuns(session, feeds, b, `raw onnxruntime-node, batch ${b}, ${b === 1 ? threads : sessionThreads} thread(s)`, slice, round);
    if (b === 1) rows.push(row);
    else if (!best || row.imagesPerSec > best.imagesPerSec) best = row;
    // What a lone request's batch runs on (PoolOptions.loneThreads): the floor of concurrency 1.
    if (b === 1 && lone) rows.push(await timeRuns(lone, feeds, 1, `raw onnxruntime-node, batch 1, ${config.ASM_FER_LONE_RUN_THREADS} threads (lone-run session)`, slice, round));
  }
  if (best) rows.push(best);
  return rows;
}

/** `session` run back to back on `feeds` for `ms`: images/s and this process's CPU per image. */
async function timeRuns(session: ort.InferenceSession, feeds: Record<string, ort.Tensor>, batch: number, who: string, ms: number, round: number): Promise<Row> {
  for (let i = 0; i < 3; i++) await session.run(feeds);
  let runs = 0;
  const cpu = process.cpuUsage();
  const started = performance.now();
  while (performance.now() - started < ms) {
    await session.run(feeds);
    runs++;
  }
  const used = process.cpuUsage(cpu);
  return {
    round,
    who,
    connections: 0,
    imagesPerSec: (batch * runs) / ((performance.now() - started) / 1000),
    cpuMsPerImage: (used.user + used.system) / 1000 / (batch * runs),
    load: loadAvg(),
  };
}

ensurePeerVenv();
const extraEnv = Object.fromEntries(args.env.map((kv) => kv.split('=') as [string, string]));
const config = loadConfig({ ...process.env, ...extraEnv });
const threads = config.ASM_FER_INTRA_OP_THREADS;
const bundle = await loadBundle(modelDir);
const { input } = bundle.manifest;
const pngs = ferplusPngs(String(args.data), Number(args.images));
const bodies = pngs.map(predictBody);
const tensors = await Promise.all(pngs.map(async (png) => preprocess(await decodeImage(png, { width: input.width, height: input.height, maxPixels: 40_000_000 }), input)));
const sessionThreads = config.ASM_FER_WORKERS * threads;
const single = await ort.InferenceSession.create(bundle.modelPath, { ...sessionOptions(threads), executionProviders: ['cpu'] });
const all = await ort.InferenceSession.create(bundle.modelPath, { ...sessionOptions(sessionThreads), executionProviders: ['cpu'] });
const lone =
  config.ASM_FER_LONE_RUN_THREADS > threads
    ? await ort.InferenceSession.create(bundle.modelPath, { ...sessionOptions(config.ASM_FER_LONE_RUN_THREADS), executionProviders: ['cpu'] })
    : undefined;

let service: Server;
if (args.serve === 'dist') service = await startBuiltService({ ASM_FER_MODEL_DIR: modelDir, ...extraEnv }, port);
else {
  const svc = await startService({ ASM_FER_MODEL_DIR: modelDir, ...extraEnv }, [], port);
  service = { name: 'asm-fer service', base: svc.base, pid: svc.child.pid as number, mainThread: true, stop: () => svc.stop() };
}
const peers: Server[] = [];
const rows: Row[] = [];
try {
  const spinnings = { both: [false, true], off: [false], on: [true] }[String(args['peer-spinning'])] as boolean[];
  for (const [i, spinning] of spinnings.entries()) peers.push(await startPeer(peerThreads, spinning, port + 1 + i));
  // Warm-up, not counted: arenas grow to the batch sizes under load, and V8 finishes compiling the hot paths (its
  // background compiler threads still cost 0.1 ms per request at concurrency 1 after 6 s of traffic, 0.03 ms after
  // 18 s; the main thread's own cost falls from 1.3 to 0.8 ms). CPython has no JIT to wait for.
  for (const s of [service, ...peers]) await drive(s.base, high, Number(args.warmup), bodies);
  for (let round = 1; round <= Number(args.rounds); round++) {
    rows.push(...(await rawLimit(single, all, input.name, tensors, [input.channels, input.height, input.width], round)));
    const order = round % 2 === 1 ? [service, ...peers] : [...peers, service];
    for (const connections of [1, high]) for (const s of order) rows.push(await measure(s, round, connections, bodies));
  }
} finally {
  await Promise.all([service.stop(), ...peers.map((p) => p.stop())]);
  await Promise.all([single.release(), all.release(), lone?.release()]);
}

const fmt = (v: number | undefined, digits = 0) => (v === undefined ? '' : v.toFixed(digits));
const env = Object.entries(extraEnv).map(([k, v]) => `${k}=${v}`).join(' ');
console.log(
  `E5 vs peers on ${os.cpus()[0]?.model ?? 'unknown CPU'} (${os.availableParallelism()} cores), model ${bundle.manifest.name}@${bundle.manifest.version}, ` +
    `${args.rounds} interleaved rounds of ${duration} s per row, FER+ 48x48 PNG, one image per request, POST ${predictPath}; ` +
    `service started as ${args.serve === 'dist' ? '`make serve` (node dist/main.js, defaults)' : 'src/main.ts under tsx, log level warn'}, driven ${args.drive === 'process' ? 'from a separate autocannon process' : 'by autocannon in this process'}; ` +
    `service: ${config.ASM_FER_WORKERS} worker(s) x ${threads} intra-op thread(s), lone-run session ${lone ? `${config.ASM_FER_LONE_RUN_THREADS} threads` : 'none'}, spinning off${env ? `, ${env}` : ''}; ` +
    `peers: ${peers.map((p) => p.name.replace('FastAPI + onnxruntime peer, ', '')).join(' and ')} (FastAPI's thread pool runs requests side by side)`,
);
console.log('| round | server | connections | images/s | p50 ms | p99 ms | CPU ms/image | main thread CPU ms/image | load (1/5/15 min) |');
console.log('|---|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(`| ${r.round} | ${r.who} | ${r.connections || ''} | ${fmt(r.imagesPerSec)} | ${fmt(r.p50)} | ${fmt(r.p99)} | ${fmt(r.cpuMsPerImage, 2)} | ${fmt(r.mainCpuMsPerImage, 2)} | ${r.load} |`);
}

/** Per round: service / peer images/s at c=1 and c=high, service c=high / best raw, service c=1 CPU / raw batch-1 CPU. */
const pick = (round: number, who: string, c: number) => rows.find((r) => r.round === round && r.who === who && r.connections === c);
const rounds = [...new Set(rows.map((r) => r.round))];
const ratios = rounds.map((round) => {
  const raw = rows.filter((r) => r.round === round && r.connections === 0);
  // What a lone request's batch runs on: the lone-run session where the service has one.
  const raw1 = (raw.find((r) => r.who.includes('lone-run')) ?? raw.find((r) => r.who.includes('batch 1,'))) as Row;
  const rawBest = raw.reduce((a, b) => (b.imagesPerSec > a.imagesPerSec ? b : a));
  const s1 = pick(round, service.name, 1) as Row;
  const sN = pick(round, service.name, high) as Row;
  const vs = peers.map((p) => ({
    c1: s1.imagesPerSec / (pick(round, p.name, 1) as Row).imagesPerSec,
    cN: sN.imagesPerSec / (pick(round, p.name, high) as Row).imagesPerSec,
  }));
  return { vs, limit: sN.imagesPerSec / rawBest.imagesPerSec, cpu: s1.cpuMsPerImage / raw1.cpuMsPerImage, p99: s1.p99 ?? NaN };
});
const line = (label: string, xs: number[], target: string, ok: (m: number) => boolean) =>
  console.log(`| ${label} | ${xs.map((x) => x.toFixed(2)).join(' / ')} | ${median(xs).toFixed(2)} | ${target} | ${ok(median(xs)) ? 'met' : 'missed'} |`);
console.log('\n| target (ratio within a round) | per round | median | target | |');
console.log('|---|---|---|---|---|');
// Issue 32's targets (make serve defaults, driven from outside).
const short = (p: Server) => p.name.replace('FastAPI + onnxruntime peer, ', 'peer ');
for (const [i, p] of peers.entries()) line(`service / ${short(p)}, images/s, c = 1`, ratios.map((r) => (r.vs[i] as { c1: number }).c1), '>= 1.1', (m) => m >= 1.1);
line('service c = 1 p99 ms', ratios.map((r) => r.p99), '< 12', (m) => m < 12);
for (const [i, p] of peers.entries()) line(`service / ${short(p)}, images/s, c = ${high}`, ratios.map((r) => (r.vs[i] as { cN: number }).cN), '>= 1.5', (m) => m >= 1.5);
line(`service c = ${high} / raw best batch images/s`, ratios.map((r) => r.limit), '>= 0.8', (m) => m >= 0.8);
line(`service c = 1 CPU ms/image / raw batch 1${lone ? ' on the lone-run session' : ''}`, ratios.map((r) => r.cpu), '<= 1.5', (m) => m <= 1.5);
