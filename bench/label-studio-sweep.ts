// The cost of a Label Studio sweep (issue 33 §2, ASM_FER_LABEL_STUDIO_SWEEP_MS): src/main.ts as a child process (its
// default SQLite queue in a fresh data folder) and the fake Label Studio of the tests (in this process, on loopback)
// holding one project of N tasks with one annotation each. A benchmark, not a test; numbers go to docs/results.md.
// Per sweep: wall time (from the fake receiving the sweep's first task-list call to the service's "sweep done" log line),
// the service process's CPU time (/proc/<pid>/stat, user + system, sampled when that first call arrives and when the
// line is seen; 10 ms ticks), and the calls the service made to Label Studio during the sweep. The fake answers from
// in-memory maps it scans whole per call (quadratic in N), on the same machine: its CPU is reported beside the wall time.
//   first: the first sweep after /setup connects the project; all N annotations are new and queued;
//   steady: a later sweep that finds nothing new (every annotation's current version already queued), what a periodic
//           sweep of an idle project costs.
// The annotations carry a choice outside the project's labeling config, so each queued event fails for good after two
// calls (task, config) and no inference: the drain between the first sweep and the steady ones stays short. The
// service drains only after a sweep ends (a SQLite queue has no enqueue hook), so the first sweep's numbers are the
// sweep's own.
//
// Usage: npx tsx bench/label-studio-sweep.ts [--model-dir models/default] [--annotations 1000,5000] [--steady 3]
//        [--sweep-ms 1000] [--ls-latency 0]
import { parseArgs } from 'node:util';
import { annotationPayload, ferplusConfig, LEGACY_TOKEN, startFakeLabelStudio, type FakeLabelStudio } from '../test/label-studio/fake-label-studio.js';
import { listeningPort, startServer, stopServers, type ServerProcess } from '../test/fixtures/server-process.js';
import { cpuSecondsOf, loadNote } from './e5-load.js';

const { values: args } = parseArgs({
  options: {
    'model-dir': { type: 'string', default: 'models/default' },
    annotations: { type: 'string', default: '1000,5000' },
    steady: { type: 'string', default: '3' },
    'sweep-ms': { type: 'string', default: '1000' },
    'ls-latency': { type: 'string', default: '0' },
  },
});
const SECRET = 'label-studio-sweep-bench-secret';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const ls: FakeLabelStudio = await startFakeLabelStudio();
ls.latencyMs = Number(args['ls-latency']);
let nextProject = 1;
let nextTask = 1;

/** A project of `n` tasks with one annotation each, in the fake; its id. */
function addProject(n: number): number {
  const project = nextProject++;
  ls.projects.set(project, { label_config: ferplusConfig() });
  for (let i = 0; i < n; i++) {
    const task = nextTask++;
    ls.tasks.set(task, { id: task, project, data: { image: `/data/upload/${project}/face-${task}.png` } });
    // A choice the config does not have: the event fails for good at once (see above).
    const { annotation } = annotationPayload('ANNOTATION_CREATED', { id: 1_000_000 + task, task, project, choice: 'not-a-choice' });
    ls.annotations.set(annotation.id, annotation);
  }
  return project;
}

interface Done {
  time: number;
  annotations: number;
  queued: number;
}
/** The service's "label studio sweep done" lines so far. */
const doneLines = (p: ServerProcess): Done[] =>
  p
    .out()
    .split('\n')
    .filter((l) => l.includes('"label studio sweep done'))
    .map((l) => JSON.parse(l) as Done);

const isSweepCall = (path: string, project: number) =>
  path.startsWith(`/api/tasks/?project=${project}&`) || /^\/api\/tasks\/\d+\/annotations\/?$/.test(path.split('?')[0] as string);

interface Sweep {
  kind: 'first' | 'steady';
  n: number;
  annotations: number;
  queued: number;
  ms: number;
  cpuMs: number;
  /** This process's CPU meanwhile: the fake Label Studio answering (and this loop polling). */
  fakeCpuMs: number;
  calls: number;
  otherCalls: number;
}

/** Waits for the next sweep of `project` to start and end; measures it. */
async function measureSweep(p: ServerProcess, project: number, kind: Sweep['kind'], n: number): Promise<Sweep> {
  const pid = p.child.pid as number;
  const first = `/api/tasks/?project=${project}&page=1`;
  const from = ls.requests.length;
  let at = -1;
  while (at < 0) {
    at = ls.requests.findIndex((r, i) => i >= from && r.path.startsWith(first));
    if (at < 0) await sleep(2);
  }
  const cpu0 = cpuSecondsOf(pid);
  const own0 = process.cpuUsage();
  const startMs = (ls.requests[at] as { ms: number }).ms;
  const lines = doneLines(p).length;
  while (doneLines(p).length === lines) await sleep(2);
  const cpu1 = cpuSecondsOf(pid);
  const own = process.cpuUsage(own0);
  const done = doneLines(p)[lines] as Done;
  const during = ls.requests.slice(at).filter((r) => r.ms <= done.time);
  const calls = during.filter((r) => isSweepCall(r.path, project)).length;
  return { kind, n, annotations: done.annotations, queued: done.queued, ms: done.time - startMs, cpuMs: (cpu1 - cpu0) * 1000, fakeCpuMs: (own.user + own.system) / 1000, calls, otherCalls: during.length - calls };
}

try {
  console.log(`model ${args['model-dir']}, sweep every ${args['sweep-ms']} ms, Label Studio latency ${ls.latencyMs} ms per call; ${loadNote()}`);
  const rows: Sweep[] = [];
  for (const n of String(args.annotations).split(',').map(Number)) {
    const p = startServer(
      {
        ASM_FER_MODEL_DIR: String(args['model-dir']),
        LABEL_STUDIO_URL: ls.url,
        LABEL_STUDIO_API_KEY: LEGACY_TOKEN,
        ASM_FER_LABEL_STUDIO_SECRET: SECRET,
        ASM_FER_LABEL_STUDIO_SWEEP_MS: String(args['sweep-ms']),
        ASM_FER_WORKERS: '1',
        ASM_FER_INTRA_OP_THREADS: '1',
        // The periodic sweep that finds nothing logs at debug.
        ASM_FER_LOG_LEVEL: 'debug',
      },
      { baseEnv: {} },
    );
    const base = `http://127.0.0.1:${await listeningPort(p)}`;
    const project = addProject(n);
    const res = await fetch(`${base}/label-studio/setup`, {
      method: 'POST',
      headers: { authorization: `Bearer ${SECRET}`, 'content-type': 'application/json' },
      body: JSON.stringify({ project: `${project}.1700000000`, schema: ferplusConfig() }),
    });
    if (res.status !== 200) throw new Error(`setup answered ${res.status}: ${await res.text()}`);
    const first = await measureSweep(p, project, 'first', n);
    rows.push(first);
    // The drain: every queued event failed for good (one log line each).
    while ((p.out().match(/"label studio event failed for good"/g) ?? []).length < first.queued) await sleep(50);
    // The sweep that may overlap the drain's end is skipped.
    await measureSweep(p, project, 'steady', n);
    for (let k = 0; k < Number(args.steady); k++) rows.push(await measureSweep(p, project, 'steady', n));
    stopServers();
    await sleep(300);
  }
  console.log('\n| sweep | annotations | queued | wall (ms) | service CPU (ms) | fake Label Studio CPU (ms) | calls to Label Studio | other calls meanwhile | wall ms / 1,000 annotations | CPU ms / 1,000 annotations |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    const per = (x: number) => ((x * 1000) / r.annotations).toFixed(0);
    console.log(`| ${r.kind} | ${r.annotations} | ${r.queued} | ${r.ms} | ${r.cpuMs.toFixed(0)} | ${r.fakeCpuMs.toFixed(0)} | ${r.calls} | ${r.otherCalls} | ${per(r.ms)} | ${per(r.cpuMs)} |`);
  }
  console.log(`\n${loadNote()}`);
} finally {
  stopServers();
  await ls.close();
}
