// Three replicas (real server processes, src/main.ts) on one PostgreSQL audit database and one fake Label Studio: the
// webhooks of N annotations are spread across them as a load balancer would, the replicas drain one shared queue, and
// one of them is killed with SIGKILL right after it wrote a prediction back and before it recorded that (the fake
// stores each prediction at once and answers every fourth one late). Every event must end done, every annotation audited once, and
// every task written back to exactly once: the killed replica's event is taken over when its lease runs out, and the
// replica that takes it finds the prediction already there instead of writing a second.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshTrail, type FreshTrail } from '../fixtures/backends.js';
import { png } from '../fixtures/make-images.js';
import { FIXTURE_BUNDLE_DIR } from '../fixtures/paths.js';
import { adminQuery } from '../fixtures/postgres.js';
import { listeningPort, startServer, stopServers, until, type ServerProcess } from '../fixtures/server-process.js';
import { LEGACY_TOKEN, annotationPayload, ferplusConfig, startFakeLabelStudio, type FakeLabelStudio } from './fake-label-studio.js';

const SECRET = 'label-studio-secret-for-replica-tests';
const N = 48;
/** Short, so the test waits little, yet twice the longest stall seen on the loaded test machine. */
const LEASE_MS = 3000;
/** How late the fake answers a prediction it stored, for every fourth task: the window in which a replica is killed. */
const ANSWER_DELAY_MS = 1000;
/**
 * The tasks answered late. The others are answered at once, so replicas come back for work often and their claims
 * meet: what SKIP LOCKED is for.
 */
const SLOW = new Set(Array.from({ length: N / 4 }, (_, i) => 4 * (i + 1)));
const PROJECT = 7;

let ls: FakeLabelStudio;
let trail: FreshTrail;

beforeAll(async () => {
  ls = await startFakeLabelStudio();
  trail = await freshTrail('postgres');
});
afterAll(async () => {
  stopServers();
  await ls?.close();
  await trail?.drop();
});

/** The pid in a claim (`host:pid:random#n`, PostgresEventQueue.replica). */
const pidOf = (claim: unknown) => Number(/^[^:]*:(\d+):/.exec(String(claim))?.[1]);

describe('three replicas on one PostgreSQL queue', () => {
  it('write each of N events back exactly once, one replica killed (kill -9) mid-queue, none lost', async () => {
    const image = await png(48, 48);
    ls.projects.set(PROJECT, { label_config: ferplusConfig() });
    for (let task = 1; task <= N; task++) {
      ls.tasks.set(task, { id: task, project: PROJECT, data: { image: `/data/upload/${PROJECT}/face-${task}.png` } });
      ls.files.set(`/data/upload/${PROJECT}/face-${task}.png`, image);
    }
    ls.delays.push({ method: 'POST', path: /^\/api\/predictions\/$/, ms: ANSWER_DELAY_MS, tasks: SLOW });

    const env = {
      ASM_FER_MODEL_DIR: FIXTURE_BUNDLE_DIR,
      ASM_FER_LOG_LEVEL: 'info',
      LABEL_STUDIO_URL: ls.url,
      LABEL_STUDIO_API_KEY: LEGACY_TOKEN,
      ASM_FER_LABEL_STUDIO_SECRET: SECRET,
      ASM_FER_LABEL_STUDIO_TIMEOUT_MS: '5000',
      ASM_FER_LABEL_STUDIO_RETRY_MAX_MS: '1000',
      ASM_FER_LABEL_STUDIO_LEASE_MS: String(LEASE_MS),
      // Sweeps at start only. A replica whose start-up sweep runs late (its first try refused by a busy database, say)
      // may queue an annotation before its webhook arrives; the webhook then queues nothing (same key).
      ASM_FER_LABEL_STUDIO_SWEEP_MS: '0',
      ...trail.env,
    };
    const replicas: ServerProcess[] = [startServer(env), startServer(env), startServer(env)];
    const bases = await Promise.all(replicas.map(async (p) => `http://127.0.0.1:${await listeningPort(p)}`));

    // Round robin, as a load balancer spreads Label Studio's webhooks, all at once: every enqueue wakes every idle
    // replica, so they claim at the same moments. Each answer means the event is committed (by this webhook, or by a
    // sweep just before it).
    const answers = await Promise.all(
      Array.from({ length: N }, async (_, i) => {
        const task = i + 1;
        const body = annotationPayload('ANNOTATION_CREATED', { id: 100 + task, task, project: PROJECT, choice: 'happiness' });
        ls.annotations.set(100 + task, body.annotation);
        const res = await fetch(`${bases[task % 3]}/label-studio/webhook`, {
          method: 'POST',
          headers: { authorization: `Bearer ${SECRET}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        return [res.status, await res.json()];
      }),
    );
    expect(answers.filter(([status, body]) => status !== 200 || !/^\{"events":1,"queued":[01]\}$/.test(JSON.stringify(body)))).toEqual([]);

    // Mid-queue: once a few events are done, kill the replica whose prediction the fake has stored but not answered
    // yet (its event still pending under its claim): the hardest moment, written back and not yet recorded. Only a
    // slow task's prediction posted less than half the answer's delay ago counts, so the kill lands before the answer.
    const events = (sql: string) => adminQuery(trail.where, sql);
    let victim: { pid: number; task: number; seq: number } | undefined;
    let killed: ServerProcess | undefined;
    let killedAt = 0;
    await until(async () => {
      const done = await events(`SELECT count(*)::int AS n FROM ls_events WHERE state = 'done'`);
      if ((done[0]?.n as number) < 4) return false;
      const held = await events(`SELECT seq, (event->>'taskId')::int AS task, claimed_by FROM ls_events WHERE state = 'pending' AND lease_until_ms IS NOT NULL`);
      const hit = held.find((r) => SLOW.has(r.task as number) && Date.now() - (ls.predictionPostedMs.get(r.task as number) ?? -Infinity) < ANSWER_DELAY_MS / 2);
      if (!hit) return false;
      victim = { pid: pidOf(hit.claimed_by), task: hit.task as number, seq: Number(hit.seq) };
      killed = replicas.find((p) => p.child.pid === victim?.pid);
      killed?.child.kill('SIGKILL');
      killedAt = Date.now();
      return true;
    }, 60_000);
    expect(killed, `the claim's pid ${victim?.pid} is one of the replicas`).toBeDefined();
    expect(await killed?.exited).toBeNull();
    const pendingAtKill = (await events(`SELECT count(*)::int AS n FROM ls_events WHERE state = 'pending'`))[0]?.n as number;
    // Killed before it could record the outcome: the event is still pending under its claim.
    expect(await events(`SELECT state, claimed_by FROM ls_events WHERE seq = ${victim?.seq}`)).toMatchObject([{ state: 'pending' }]);
    // Another replica takes the event over once the lease has run out.
    let reclaimMs = 0;
    await until(async () => {
      const [row] = await events(`SELECT claimed_by FROM ls_events WHERE seq = ${victim?.seq}`);
      reclaimMs = Date.now() - killedAt;
      return pidOf(row?.claimed_by) !== victim?.pid;
    }, 30_000);

    await until(async () => (await events(`SELECT count(*)::int AS n FROM ls_events WHERE state = 'done'`))[0]?.n === N, 60_000);
    const rows = await events(`SELECT key, state, attempts, claimed_by, (event->>'taskId')::int AS task FROM ls_events ORDER BY seq`);
    const bySweep = answers.filter(([, body]) => (body as { queued: number }).queued === 0).length;
    console.log(`replicas: ${bySweep} of ${N} events queued by a start-up sweep before their webhook; ${pendingAtKill} of ${N} events pending at the kill; event of task ${victim?.task} taken over ${reclaimMs} ms after it (lease ${LEASE_MS} ms)`);

    // Exactly one write-back per task, and one prediction on each.
    const posts = new Map<number, number>();
    for (const t of ls.predictionPosts) posts.set(t, (posts.get(t) ?? 0) + 1);
    expect([...posts].filter(([, n]) => n !== 1)).toEqual([]);
    expect(posts.size).toBe(N);
    for (let task = 1; task <= N; task++) expect([...ls.predictions.values()].filter((p) => p.task === task), `task ${task}`).toHaveLength(1);
    // None lost, none failed.
    expect(rows).toHaveLength(N);
    expect(rows.every((r) => r.state === 'done')).toBe(true);
    // Every attempt accounted for by the replicas' logs: one, plus one per retry logged (a transient failure, e.g. a
    // slow Label Studio on a loaded machine), plus one per take-over. An event claimed twice at once (no SKIP LOCKED)
    // has an attempt no log explains, or a claim lost.
    const logs = replicas.flatMap((p) => p.out().split('\n'));
    const logged = (msg: string, key: unknown) => logs.filter((l) => l.includes(`"msg":"${msg}`) && l.includes(`"event":${JSON.stringify(key)}`)).length;
    const unexplained = rows
      .map((r) => ({ task: r.task, attempts: r.attempts, logged: 1 + logged('label studio event failed; will retry', r.key) + logged('label studio event reclaimed', r.key) }))
      .filter((r) => r.attempts !== r.logged);
    expect(unexplained).toEqual([]);
    // The killed replica's event was taken over once, by another replica; no other claim ran out or was lost.
    expect(rows.filter((r) => logged('label studio event reclaimed', r.key) > 0).map((r) => r.task)).toEqual([victim?.task]);
    expect(killed?.out().includes('label studio event reclaimed')).toBe(false);
    expect(logs.filter((l) => l.includes('left to another replica'))).toEqual([]);
    // Spread across all three: the two left did the rest, the killed one held the event taken over (and any it
    // finished before the kill).
    expect(new Set([...rows.map((r) => pidOf(r.claimed_by)), victim?.pid]).size).toBe(3);
    // One audit record per annotation in the shared trail.
    const audits = await adminQuery(trail.where, `SELECT item_id, count(*)::int AS n FROM audits GROUP BY item_id`);
    expect(audits).toHaveLength(N);
    expect(audits.every((a) => a.n === 1)).toBe(true);
    expect(reclaimMs).toBeLessThan(LEASE_MS + 3000);
  }, 180_000);
});
