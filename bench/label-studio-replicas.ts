// One Label Studio queue across replicas (issue 33 §5): a throwaway PostgreSQL cluster, replicas of src/main.ts on its
// audit database, and the fake Label Studio of the tests (in this process, on loopback). A benchmark, not a test
// (test/label-studio/replicas.test.ts asserts exactly-once); numbers go to docs/results.md:
//   A. drain rate: N annotation webhooks sent at once, round robin, to 1 replica and to 3; events/s from the first
//      webhook to the last event done, with Label Studio answering at once and with --ls-latency ms per call;
//   B. kill -9 to reclaim: with 3 replicas draining, the replica holding an event is killed and the time until
//      another replica has claimed that event is measured, for each --lease (ASM_FER_LABEL_STUDIO_LEASE_MS).
//
// Usage: npx tsx bench/label-studio-replicas.ts [--model-dir models/default] [--data ../shared/data/ferplus/FER2013Valid]
//        [--events 120] [--ls-latency 50] [--rounds 2] [--leases 1500,15000] [--kills 3] [--threads 1] [--pg-port 55421]
import { parseArgs } from 'node:util';
import { annotationPayload, ferplusConfig, LEGACY_TOKEN, startFakeLabelStudio, type FakeLabelStudio } from '../test/label-studio/fake-label-studio.js';
import { adminQuery, freshDatabase, startCluster } from '../test/fixtures/postgres.js';
import { listeningPort, startServer, stopServers, type ServerProcess } from '../test/fixtures/server-process.js';
import { cpuSecondsOf, ferplusPngs, loadNote, quantile } from './e5-load.js';

const { values: args } = parseArgs({
  options: {
    'model-dir': { type: 'string', default: 'models/default' },
    data: { type: 'string', default: '../shared/data/ferplus/FER2013Valid' },
    events: { type: 'string', default: '120' },
    'ls-latency': { type: 'string', default: '50' },
    leases: { type: 'string', default: '1500,15000' },
    kills: { type: 'string', default: '3' },
    threads: { type: 'string', default: '1' },
    'pg-port': { type: 'string', default: '55421' },
    rounds: { type: 'string', default: '2' },
  },
});
const N = Number(args.events);
const SECRET = 'label-studio-replicas-bench-secret';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pidOf = (claim: unknown) => Number(/^[^:]*:(\d+):/.exec(String(claim))?.[1]);

const cluster = startCluster(Number(args['pg-port']));
const ls: FakeLabelStudio = await startFakeLabelStudio();
const images = ferplusPngs(String(args.data), 64);
let nextProject = 1;
let nextTask = 1;

/** A project of `n` tasks (FER+ faces) in the fake; their ids. */
function addProject(n: number): { project: number; tasks: number[] } {
  const project = nextProject++;
  ls.projects.set(project, { label_config: ferplusConfig() });
  const tasks = Array.from({ length: n }, () => nextTask++);
  for (const task of tasks) {
    const file = `/data/upload/${project}/face-${task}.png`;
    ls.tasks.set(task, { id: task, project, data: { image: file } });
    ls.files.set(file, images[task % images.length] as Buffer);
  }
  return { project, tasks };
}

function startReplicas(count: number, dbUrl: string, leaseMs: number): ServerProcess[] {
  return Array.from({ length: count }, () =>
    startServer(
      {
        ASM_FER_MODEL_DIR: String(args['model-dir']),
        ASM_FER_AUDIT_DB: dbUrl,
        LABEL_STUDIO_URL: ls.url,
        LABEL_STUDIO_API_KEY: LEGACY_TOKEN,
        ASM_FER_LABEL_STUDIO_SECRET: SECRET,
        ASM_FER_LABEL_STUDIO_LEASE_MS: String(leaseMs),
        ASM_FER_LABEL_STUDIO_SWEEP_MS: '0',
        ASM_FER_WORKERS: '1',
        ASM_FER_INTRA_OP_THREADS: String(args.threads),
        ASM_FER_LOG_LEVEL: 'info',
      },
      { baseEnv: {} },
    ),
  );
}

/** Sends one webhook per task at once, round robin over `bases`; resolves when every one is acknowledged. */
async function sendAll(bases: string[], project: number, tasks: number[]): Promise<void> {
  await Promise.all(
    tasks.map(async (task, i) => {
      const body = annotationPayload('ANNOTATION_CREATED', { id: 100_000 + task, task, project, choice: 'happiness' });
      ls.annotations.set(100_000 + task, body.annotation);
      const res = await fetch(`${bases[i % bases.length]}/label-studio/webhook`, {
        method: 'POST',
        headers: { authorization: `Bearer ${SECRET}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      if (res.status !== 200) throw new Error(`webhook answered ${res.status}: ${await res.text()}`);
    }),
  );
}

const doneOf = async (url: string, project: number) =>
  Number((await adminQuery(url, `SELECT count(*) AS n FROM ls_events WHERE state = 'done' AND project_id = $1`, [project]))[0]?.n);

try {
  console.log(`model ${args['model-dir']}, ${args.threads} intra-op thread(s) per replica, ${N} events per run; ${loadNote()}`);

  // A. drain rate.
  console.log('\nA. drain rate (first webhook sent to last event done)');
  console.log('| replicas | Label Studio latency per call | events | seconds | events/s | per event, claim to done: median / p90 (ms) | replicas\' CPU (s) | write-backs per task |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const count of [1, 3]) {
    const db = await freshDatabase(cluster.adminUrl);
    const replicas = startReplicas(count, db.url, 15_000);
    const bases = await Promise.all(replicas.map(async (p) => `http://127.0.0.1:${await listeningPort(p)}`));
    const latencies = [0, Number(args['ls-latency'])].flatMap((l) => Array<number>(Number(args.rounds)).fill(l));
    for (const latency of latencies) {
      ls.latencyMs = latency;
      const { project, tasks } = addProject(N);
      const posts = ls.predictionPosts.length;
      const logged = replicas.map((p) => p.out().length);
      const cpu0 = replicas.map((p) => cpuSecondsOf(p.child.pid as number));
      const t0 = performance.now();
      await sendAll(bases, project, tasks);
      while ((await doneOf(db.url, project)) < N) await sleep(20);
      const s = (performance.now() - t0) / 1000;
      const cpu = replicas.reduce((sum, p, i) => sum + cpuSecondsOf(p.child.pid as number) - (cpu0[i] as number), 0);
      // The worker's own log line per event: `ms` from its claim to its outcome recorded.
      const perEvent = replicas.flatMap((p, i) =>
        p
          .out()
          .slice(logged[i])
          .split('\n')
          .filter((l) => l.includes('"label studio event done"'))
          .map((l) => Number(/"ms":(\d+)/.exec(l)?.[1])),
      );
      const written = ls.predictionPosts.slice(posts);
      const once = written.length === N && new Set(written).size === N;
      console.log(
        `| ${count} | ${latency} ms | ${N} | ${s.toFixed(2)} | ${(N / s).toFixed(1)} | ${quantile(perEvent, 0.5).toFixed(0)} / ${quantile(perEvent, 0.9).toFixed(0)} | ${cpu.toFixed(1)} | ${once ? 'exactly 1' : `NOT once: ${written.length} posts for ${new Set(written).size} tasks`} |`,
      );
    }
    stopServers();
    await sleep(500);
    await db.drop();
  }

  // B. kill -9 to reclaim.
  ls.latencyMs = Number(args['ls-latency']);
  console.log(`\nB. kill -9 of the replica holding an event, to another replica's claim of it (Label Studio latency ${ls.latencyMs} ms per call)`);
  console.log('| lease (ms) | kill -9 → reclaimed (ms) |');
  console.log('|---|---|');
  for (const leaseMs of Number(args.kills) > 0 ? String(args.leases).split(',').map(Number) : []) {
    const db = await freshDatabase(cluster.adminUrl);
    const replicas = startReplicas(3, db.url, leaseMs);
    const bases = await Promise.all(replicas.map(async (p) => `http://127.0.0.1:${await listeningPort(p)}`));
    const samples: number[] = [];
    for (let k = 0; k < Number(args.kills); k++) {
      const alive = replicas.filter((p) => p.child.exitCode === null && p.child.signalCode === null);
      const { project, tasks } = addProject(N);
      await sendAll(bases.filter((_, i) => alive.includes(replicas[i] as ServerProcess)), project, tasks);
      // Mid-queue: a third done, then the holder of any event in progress.
      while ((await doneOf(db.url, project)) < N / 3) await sleep(20);
      let victim: { seq: number; pid: number } | undefined;
      while (!victim) {
        const held = await adminQuery(db.url, `SELECT seq, claimed_by FROM ls_events WHERE state = 'pending' AND lease_until_ms IS NOT NULL AND project_id = $1`, [project]);
        const row = held.find((r) => alive.some((p) => p.child.pid === pidOf(r.claimed_by)));
        if (row) victim = { seq: Number(row.seq), pid: pidOf(row.claimed_by) };
        else await sleep(5);
      }
      const target = replicas.find((p) => p.child.pid === victim?.pid) as ServerProcess;
      target.child.kill('SIGKILL');
      const killedAt = performance.now();
      for (;;) {
        const [row] = await adminQuery(db.url, `SELECT claimed_by FROM ls_events WHERE seq = $1`, [victim.seq]);
        if (pidOf(row?.claimed_by) !== victim.pid) break;
        await sleep(10);
      }
      samples.push(performance.now() - killedAt);
      while ((await doneOf(db.url, project)) < N) await sleep(50);
      // Back to three for the next sample.
      const [fresh] = startReplicas(1, db.url, leaseMs);
      replicas[replicas.indexOf(target)] = fresh as ServerProcess;
      bases[replicas.indexOf(fresh as ServerProcess)] = `http://127.0.0.1:${await listeningPort(fresh as ServerProcess)}`;
    }
    console.log(`| ${leaseMs} | ${samples.map((s) => s.toFixed(0)).join(', ')} |`);
    stopServers();
    await sleep(500);
    await db.drop();
  }
  console.log(`\n${loadNote()}`);
} finally {
  stopServers();
  await ls.close();
  cluster.destroy();
}
