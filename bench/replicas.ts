// Replicas behind a real load balancer (issue 19): a throwaway PostgreSQL cluster, three replicas of src/main.ts sharing
// its audit trail, and Debian's HAProxy in front, routing on /v2/health/ready. Then, with audits flowing through
// HAProxy the whole time (a benchmark, not a test; numbers go to docs/results.md):
//   A. kill -9 of one replica mid-run and its restart: every acknowledged record is stored exactly once, and the
//      summary (stored figures, shared windows, drift, thresholds) is the same whichever replica answers;
//   B. a rolling restart (SIGTERM one replica at a time, start it again, wait until HAProxy sends to it): no request
//      may fail;
//   C. throughput of 1 replica and of 3 (the others put in maintenance through HAProxy's admin socket), for audits
//      and predictions.
//
// Usage: npx tsx bench/replicas.ts [--model-dir models/default] [--data ../shared/data/ferplus/FER2013Valid]
//        [--duration 30] [--concurrency 8] [--threads 1] [--port 18300] [--pg-port 55420]
// Installs Debian's haproxy when missing. Ports: HAProxy on --port, replicas on the next three.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { freshDatabase, startCluster } from '../test/fixtures/postgres.js';
import { startServer, stopServers } from '../test/fixtures/server-process.js';
import { BOUNDARY, ferplusPngs, loadNote, multipartBody, quantile } from './e5-load.js';

const { values: args } = parseArgs({
  options: {
    'model-dir': { type: 'string', default: 'models/default' },
    data: { type: 'string', default: '../shared/data/ferplus/FER2013Valid' },
    duration: { type: 'string', default: '30' },
    concurrency: { type: 'string', default: '8' },
    threads: { type: 'string', default: '1' },
    port: { type: 'string', default: '18300' },
    'pg-port': { type: 'string', default: '55420' },
  },
});
const DURATION_S = Number(args.duration);
const CONCURRENCY = Number(args.concurrency);
const LB_PORT = Number(args.port);
const REPLICAS = 3;
/** HAProxy's health check: every 500 ms, down after 2 failures, up after 2 successes. */
const CHECK = { interMs: 500, fall: 2, rise: 2 };
/** Longer than HAProxy needs to mark a stopping replica down (inter x fall), so it stops sending before the listener closes. */
const SHUTDOWN_DELAY_MS = CHECK.interMs * CHECK.fall + 500;
/** The windows' reuse interval on each replica (the default); summaries are compared after it has passed. */
const STATS_CACHE_MS = 2000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const lb = `http://127.0.0.1:${LB_PORT}`;
const replicaBase = (i: number) => `http://127.0.0.1:${LB_PORT + 1 + i}`;

function ensureHaproxy(): void {
  try {
    execFileSync('haproxy', ['-v'], { stdio: 'ignore' });
  } catch {
    const sudo = process.getuid?.() === 0 ? [] : ['sudo'];
    const run = (argv: string[]) => execFileSync(sudo[0] ?? (argv[0] as string), sudo.length ? argv : argv.slice(1), { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    run(['apt-get', 'update', '-qq']);
    run(['apt-get', 'install', '-y', '-qq', '--no-install-recommends', 'haproxy']);
  }
}

// --- the pieces: cluster, replicas, HAProxy --------------------------------------------------------------------------

const work = mkdtempSync(path.join(os.tmpdir(), 'asm-fer-replicas-'));
const cluster = startCluster(Number(args['pg-port']));
const db = await freshDatabase(cluster.adminUrl);
const replicas: (ChildProcess | undefined)[] = [];

async function waitReady(base: string, ms = 120_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await fetch(`${base}/v2/health/ready`).then((r) => r.ok, () => false))) {
    if (Date.now() > deadline) throw new Error(`${base} not ready after ${ms / 1000} s`);
    await sleep(100);
  }
}

async function startReplica(i: number): Promise<void> {
  const { child } = startServer(
    {
      PORT: String(LB_PORT + 1 + i),
      ASM_FER_HOST: '127.0.0.1',
      ASM_FER_MODEL_DIR: String(args['model-dir']),
      ASM_FER_AUDIT_DB: db.url,
      ASM_FER_STATS_CACHE_MS: String(STATS_CACHE_MS),
      ASM_FER_SHUTDOWN_DELAY_MS: String(SHUTDOWN_DELAY_MS),
      // One worker each, as measured: the core-count default (issue 22) would give every replica a worker per core.
      ASM_FER_WORKERS: '1',
      ASM_FER_INTRA_OP_THREADS: String(args.threads),
      ASM_FER_LOG_LEVEL: 'warn',
    },
    { baseEnv: {}, output: 'stderr' },
  );
  replicas[i] = child;
  await waitReady(replicaBase(i));
}

const haproxyCfg = path.join(work, 'haproxy.cfg');
const adminSocket = path.join(work, 'admin.sock');
writeFileSync(
  haproxyCfg,
  `global
  maxconn 2000
  stats socket ${adminSocket} mode 600 level admin
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  # A request that never reached a replica (refused connection) goes to another one; nothing already sent is resent.
  retries 3
  option redispatch 1
  retry-on conn-failure
  # One request per server-side connection: no request is written onto a keep-alive connection a stopping replica closes.
  option http-server-close
frontend fe
  bind 127.0.0.1:${LB_PORT}
  default_backend be
backend be
  balance roundrobin
  option httpchk GET /v2/health/ready
  http-check expect status 200
  default-server check inter ${CHECK.interMs}ms fall ${CHECK.fall} rise ${CHECK.rise}
${Array.from({ length: REPLICAS }, (_, i) => `  server r${i} 127.0.0.1:${LB_PORT + 1 + i}`).join('\n')}
`,
);

/** One command on HAProxy's admin socket; its answer. */
async function admin(command: string): Promise<string> {
  const socket = connect(adminSocket);
  await once(socket, 'connect');
  let out = '';
  socket.on('data', (d: Buffer) => (out += d.toString()));
  socket.end(`${command}\n`);
  await once(socket, 'close');
  return out;
}

/** Waits until HAProxy reports replica `i` UP (or, with `up` false, anything else). */
async function untilHaproxySees(i: number, up: boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    // The socket appears a moment after HAProxy starts.
    const stat = await admin('show stat').catch(() => '');
    const line = stat.split('\n').find((l) => l.startsWith(`be,r${i},`));
    const status = line?.split(',')[17] ?? '';
    // "UP 1/2" and "DOWN 1/2" are on their way; only the settled state counts.
    if (up ? status === 'UP' : /^(DOWN|MAINT)$/.test(status)) return;
    if (Date.now() > deadline) throw new Error(`HAProxy still reports r${i} ${status}`);
    await sleep(100);
  }
}

// --- traffic ---------------------------------------------------------------------------------------------------------

const CLASSES = ['neutral', 'happiness', 'surprise', 'sadness', 'anger', 'disgust', 'fear', 'contempt'];
const images = ferplusPngs(String(args.data), 64);
const auditBodies = images.map((img, i) =>
  multipartBody([
    { name: 'image', data: img, filename: 'face.png', contentType: 'image/png' },
    { name: 'label', data: CLASSES[i % CLASSES.length] as string },
    { name: 'annotatorId', data: `ann-${i % 4}` },
    { name: 'datasetId', data: 'replicas-bench' },
  ]),
);
const predictBodies = images.map((img) => multipartBody([{ name: 'image', data: img, filename: 'face.png', contentType: 'image/png' }]));

interface Failure {
  atMs: number;
  what: string;
}

/** `CONCURRENCY` clients sending requests back to back through HAProxy until stop(). */
class Traffic {
  readonly acknowledged: string[] = [];
  readonly failures: Failure[] = [];
  readonly latencies: number[] = [];
  private running = true;
  private readonly lanes: Promise<void>[];
  readonly started = performance.now();
  stoppedAt = 0;

  constructor(readonly kind: 'audit' | 'predict') {
    this.lanes = Array.from({ length: CONCURRENCY }, (_, lane) => this.lane(lane));
  }

  private async lane(lane: number): Promise<void> {
    const bodies = this.kind === 'audit' ? auditBodies : predictBodies;
    for (let n = lane; this.running; n += CONCURRENCY) {
      const t0 = performance.now();
      try {
        const res = await fetch(`${lb}/v1/${this.kind}`, {
          method: 'POST',
          headers: { 'content-type': `multipart/form-data; boundary=${BOUNDARY}` },
          body: new Uint8Array(bodies[n % bodies.length] as Buffer),
        });
        const text = await res.text();
        if (res.status !== 200) {
          this.failures.push({ atMs: t0 - this.started, what: `${res.status} ${/"type":"[^"]*\/([^"]+)"/.exec(text)?.[1] ?? ''}`.trim() });
          continue;
        }
        this.latencies.push(performance.now() - t0);
        if (this.kind === 'audit') this.acknowledged.push(...(JSON.parse(text) as { results: { id: string }[] }).results.map((r) => r.id));
      } catch (err) {
        const cause = (err as { cause?: { code?: string } }).cause;
        this.failures.push({ atMs: t0 - this.started, what: `error ${cause?.code ?? (err as Error).message}` });
      }
    }
  }

  async stop(): Promise<this> {
    this.running = false;
    await Promise.all(this.lanes);
    this.stoppedAt = performance.now();
    return this;
  }

  get seconds(): number {
    return ((this.stoppedAt || performance.now()) - this.started) / 1000;
  }

  summary(): string {
    const byWhat = new Map<string, number>();
    for (const f of this.failures) byWhat.set(f.what, (byWhat.get(f.what) ?? 0) + 1);
    const ok = this.latencies.length;
    return `${ok} ok in ${this.seconds.toFixed(1)} s (${(ok / this.seconds).toFixed(1)}/s, p50 ${quantile(this.latencies, 0.5).toFixed(0)} ms, p99 ${quantile(this.latencies, 0.99).toFixed(0)} ms), ${this.failures.length} failed${byWhat.size ? ` (${[...byWhat].map(([w, n]) => `${n} × ${w}`).join(', ')})` : ''}`;
  }
}

/** Every stored id, paged through HAProxy with cursors. */
async function storedIds(): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | null = null;
  do {
    const res = await fetch(`${lb}/v1/audits?limit=10000${cursor ? `&cursor=${cursor}` : ''}`);
    const page = (await res.json()) as { items: { id: string }[]; nextCursor: string | null };
    ids.push(...page.items.map((r) => r.id));
    cursor = page.nextCursor;
  } while (cursor !== null);
  return ids;
}

/** The summary as replica `i` answers it, without what is per process (since when and since-start counts). */
async function sharedSummary(i: number): Promise<string> {
  const s = (await (await fetch(`${replicaBase(i)}/v1/audits/summary`)).json()) as { live: { since?: string; classes: { sinceStart?: unknown }[] } };
  delete s.live.since;
  for (const c of s.live.classes) delete c.sinceStart;
  return JSON.stringify(s);
}

// --- the run ---------------------------------------------------------------------------------------------------------

const report: string[] = [];
const say = (line: string) => {
  console.log(line);
  report.push(line);
};
let haproxy: ChildProcess | undefined;
try {
  ensureHaproxy();
  const t0 = performance.now();
  await Promise.all(Array.from({ length: REPLICAS }, (_, i) => startReplica(i)));
  say(`3 replicas ready in ${((performance.now() - t0) / 1000).toFixed(1)} s (model ${args['model-dir']}, ${args.threads} intra-op thread(s) each, shutdown delay ${SHUTDOWN_DELAY_MS} ms); ${loadNote()}`);
  haproxy = spawn('haproxy', ['-f', haproxyCfg, '-db'], { stdio: ['ignore', 'ignore', 'inherit'] });
  for (let i = 0; i < REPLICAS; i++) await untilHaproxySees(i, true);
  say(`HAProxy ${execFileSync('haproxy', ['-v'], { encoding: 'utf8' }).split('\n')[0]?.split(' ')[2]} on :${LB_PORT}, checking GET /v2/health/ready every ${CHECK.interMs} ms (fall ${CHECK.fall}, rise ${CHECK.rise})`);

  // A. kill -9 and restart.
  const a = new Traffic('audit');
  await sleep((DURATION_S * 1000) / 4);
  const killedAt = performance.now() - a.started;
  replicas[1]?.kill('SIGKILL');
  await sleep((DURATION_S * 1000) / 4);
  const restartAt = performance.now() - a.started;
  await startReplica(1);
  await untilHaproxySees(1, true);
  const backAt = performance.now() - a.started;
  await sleep(Math.max(0, DURATION_S * 1000 - (performance.now() - a.started)));
  await a.stop();
  const stored = await storedIds();
  const storedSet = new Set(stored);
  const ackSet = new Set(a.acknowledged);
  const missing = a.acknowledged.filter((id) => !storedSet.has(id)).length;
  const orphans = stored.filter((id) => !ackSet.has(id)).length;
  await sleep(STATS_CACHE_MS + 500);
  const summaries = await Promise.all(Array.from({ length: REPLICAS }, (_, i) => sharedSummary(i)));
  const sameSummary = summaries.every((s) => s === summaries[0]);
  say(`A. kill -9: audits ${a.summary()}; replica r1 killed at ${(killedAt / 1000).toFixed(1)} s, restarted at ${(restartAt / 1000).toFixed(1)} s, back in HAProxy at ${(backAt / 1000).toFixed(1)} s`);
  say(`   failures at: ${a.failures.map((f) => (f.atMs / 1000).toFixed(2)).join(', ') || 'none'} s`);
  say(`   acknowledged ${a.acknowledged.length} records (${ackSet.size} distinct); stored ${stored.length} (${storedSet.size} distinct); acknowledged but missing ${missing}; stored twice ${stored.length - storedSet.size}; stored but never acknowledged ${orphans}`);
  say(`   summary (stored figures, shared windows, drift, thresholds) identical from r0, r1, r2: ${sameSummary ? 'yes' : 'NO'}`);

  // B. rolling restart.
  const b = new Traffic('audit');
  await sleep(3000);
  const steps: string[] = [];
  for (let i = 0; i < REPLICAS; i++) {
    const s0 = performance.now();
    const child = replicas[i] as ChildProcess;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    await untilHaproxySees(i, false);
    const [code] = (await exited) as [number | null];
    const down = performance.now();
    await startReplica(i);
    await untilHaproxySees(i, true);
    steps.push(`r${i}: exit ${code} after ${((down - s0) / 1000).toFixed(1)} s, UP again ${((performance.now() - down) / 1000).toFixed(1)} s later`);
    await sleep(1000);
  }
  await sleep(2000);
  await b.stop();
  const bStored = new Set(await storedIds());
  say(`B. rolling restart (SIGTERM, one at a time): audits ${b.summary()}; ${steps.join('; ')}`);
  say(`   acknowledged ${b.acknowledged.length}, of which missing from the trail ${b.acknowledged.filter((id) => !bStored.has(id)).length}`);

  // C. throughput, 1 replica against 3.
  const rows: string[] = [];
  for (const n of [1, 3]) {
    for (let i = 0; i < REPLICAS; i++) await admin(`set server be/r${i} state ${i < n ? 'ready' : 'maint'}`);
    await sleep(1500);
    for (const kind of ['predict', 'audit'] as const) {
      const warm = new Traffic(kind);
      await sleep(2000);
      await warm.stop();
      const t = new Traffic(kind);
      await sleep((DURATION_S * 1000) / 2);
      await t.stop();
      rows.push(`C. ${n} replica(s), ${kind}: ${t.summary()}`);
    }
  }
  for (const r of rows) say(r);
  say(`   ${loadNote()}`);
} finally {
  haproxy?.kill('SIGTERM');
  stopServers();
  await db.drop().catch(() => undefined);
  cluster.destroy();
  rmSync(work, { recursive: true, force: true });
}
