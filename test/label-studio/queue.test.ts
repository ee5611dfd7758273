// The Label Studio event queue's contract, run against both stores (label-studio.db in SQLite; the audit database in
// PostgreSQL): redeliveries dropped, one annotation's events in arrival order, what survives a reopen, what a sweep
// asks, per-project state, and the lease on a claim (held, renewed, run out and taken over, an outcome under a lost
// claim refused). Then what each store has of its own: SQLite's layout migration; PostgreSQL's replicas claiming from
// one queue at the same moment (SKIP LOCKED), its notifications, its layout and an unreachable database.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { sweep } from '../../src/label-studio/backend.js';
import { LabelStudioError, type LabelStudioClient } from '../../src/label-studio/client.js';
import { PostgresEventQueue, QueueLayoutTooNew } from '../../src/label-studio/queue-postgres.js';
import { SqliteEventQueue } from '../../src/label-studio/queue-sqlite.js';
import type { AnnotationEvent, EventQueue, QueuedEvent } from '../../src/label-studio/queue.js';
import { backoffMs } from '../../src/label-studio/worker.js';
import { AuditStoreUnavailable } from '../../src/errors.js';
import { BACKENDS, freshTrail, type BackendKind } from '../fixtures/backends.js';
import { adminQuery } from '../fixtures/postgres.js';

const cleanups: (() => Promise<void> | void)[] = [];
const queues: EventQueue[] = [];
afterEach(async () => {
  for (const q of queues.splice(0)) await q.close();
  for (const c of cleanups.splice(0).reverse()) await c();
});
const tempDir = () => {
  const d = mkdtempSync(path.join(tmpdir(), 'asm-fer-lsq-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
};

/** A fresh, empty place for a queue on `kind`: a folder, or a new database's URL (removed after the test). */
async function freshPlace(kind: BackendKind): Promise<string> {
  const place = await freshTrail(kind);
  cleanups.push(place.drop);
  return place.where;
}

const pgOptions = (url: string) => ({ url, poolSize: 4, acquireTimeoutMs: 2000, queryTimeoutMs: 10_000 });

/** The queue at `where` on `kind` (a second open of the same place is a restart, or on PostgreSQL another replica). */
async function open(kind: BackendKind, where: string): Promise<EventQueue> {
  const q = kind === 'sqlite' ? SqliteEventQueue.open(where) : await PostgresEventQueue.open(pgOptions(where));
  queues.push(q);
  return q;
}
const openFresh = async (kind: BackendKind) => open(kind, await freshPlace(kind));
async function close(q: EventQueue): Promise<void> {
  queues.splice(queues.indexOf(q), 1);
  await q.close();
}

const event = (annotationId: number, action: AnnotationEvent['action'] = 'ANNOTATION_CREATED', updatedAt = 't1'): AnnotationEvent => ({
  action,
  annotationId,
  taskId: 10 + annotationId,
  projectId: 1,
  completedBy: 3,
  updatedAt,
  result: [],
});

/** Long enough that no lease runs out in a test that does not mean it to. */
const LEASE = 60_000;
const claimed = (job: QueuedEvent | undefined): QueuedEvent => {
  expect(job).toBeDefined();
  return job as QueuedEvent;
};

describe.each(BACKENDS)('the event queue on %s', (kind) => {
  it('queues an event once: a redelivery with the same annotation, action and updated_at is dropped', async () => {
    const q = await openFresh(kind);
    expect(q.shared).toBe(kind === 'postgres');
    expect(await q.enqueue(event(1), 0)).toEqual({ queued: true });
    expect(await q.enqueue(event(1), 5)).toEqual({ queued: false });
    expect(await q.enqueue(event(1, 'ANNOTATION_UPDATED', 't2'), 6)).toEqual({ queued: true });
    expect(await q.stats(10)).toEqual({ depth: 2, oldestMs: 10, failed: 0 });
  });

  it('claims one annotation’s events in arrival order, even when an earlier one is retrying', async () => {
    const q = await openFresh(kind);
    await q.enqueue(event(1), 0);
    await q.enqueue(event(1, 'ANNOTATION_UPDATED', 't2'), 1);
    await q.enqueue(event(2), 2);
    const first = claimed(await q.claim(10, LEASE));
    expect(first).toMatchObject({ key: '1:ANNOTATION_CREATED:t1', event: event(1), receivedMs: 0, attempts: 0, leaseUntilMs: 10 + LEASE, reclaimed: false });
    expect(await q.retry(first.seq, first.claim, 'ls-unreachable', 1000)).toBe(true);
    // Annotation 1's update waits behind its creation; annotation 2 goes ahead.
    const second = claimed(await q.claim(10, LEASE));
    expect(second.event.annotationId).toBe(2);
    expect(await q.complete(second.seq, second.claim, { kind: 'audited' }, 11)).toBe(true);
    expect(await q.claim(10, LEASE)).toBeUndefined();
    expect(await q.nextDueMs()).toBe(1000);
    const again = claimed(await q.claim(1000, LEASE));
    expect(again).toMatchObject({ key: '1:ANNOTATION_CREATED:t1', attempts: 1, reclaimed: false });
    expect(await q.complete(again.seq, again.claim, { kind: 'audited' }, 1001)).toBe(true);
    expect((await q.claim(1001, LEASE))?.key).toBe('1:ANNOTATION_UPDATED:t2');
  });

  it('keeps pending events, failures and annotation states across a reopen (a restart resumes)', async () => {
    const where = await freshPlace(kind);
    const q = await open(kind, where);
    await q.enqueue(event(1), 0);
    await q.enqueue(event(2), 0);
    const job = claimed(await q.claim(0, LEASE));
    await q.fail(job.seq, job.claim, 'image-not-found', 1);
    await q.saveAnnotation({ annotationId: 1, taskId: 11, auditId: 'a', predictionId: 5, deletedMs: null });
    await close(q);
    const reopened = await open(kind, where);
    expect(await reopened.stats(2)).toMatchObject({ depth: 1, failed: 1 });
    expect((await reopened.claim(2, LEASE))?.event.annotationId).toBe(2);
    expect(await reopened.annotation(1)).toEqual({ annotationId: 1, taskId: 11, auditId: 'a', predictionId: 5, deletedMs: null });
    expect(await reopened.annotation(9)).toBeUndefined();
    expect((await reopened.events()).map((e) => [e.key, e.state, e.attempts, e.lastError, e.doneMs])).toEqual([
      ['1:ANNOTATION_CREATED:t1', 'failed', 1, 'image-not-found', 1],
      ['2:ANNOTATION_CREATED:t1', 'pending', 0, null, null],
    ]);
  });

  it('knows what a sweep asks: the projects seen, which annotation versions were queued, which audited annotations are live', async () => {
    const q = await openFresh(kind);
    await q.enqueue(event(1), 0);
    await q.enqueue({ ...event(2, 'ANNOTATION_UPDATED', 't9'), projectId: 4 }, 0);
    await q.enqueue({ ...event(3, 'ANNOTATION_DELETED', ''), projectId: 0 }, 0);
    expect(await q.projects()).toEqual([1, 4]);
    expect(await q.hasEvent(1, 't1')).toBe(true);
    expect(await q.hasEvent(2, 't9')).toBe(true);
    expect(await q.hasEvent(1, 't2')).toBe(false);
    await q.saveAnnotation({ annotationId: 1, taskId: 11, auditId: 'a', predictionId: 5, deletedMs: null });
    await q.saveAnnotation({ annotationId: 5, taskId: 11, auditId: 'b', predictionId: 6, deletedMs: 3 });
    await q.saveAnnotation({ annotationId: 6, taskId: 11, auditId: null, predictionId: null, deletedMs: null });
    expect(await q.liveAnnotationsOfTask(11)).toEqual([1]);
    expect(await q.predictionOwner(5)).toBe(1);
    expect(await q.predictionOwner(7)).toBeUndefined();
  });

  it('keeps each project’s label map (in the order it was set) and connection across a reopen', async () => {
    const where = await freshPlace(kind);
    const q = await open(kind, where);
    await q.enqueue(event(1), 0);
    expect(await q.projectStates()).toEqual([]);
    await q.setLabelMap(2, { Zebra: 'happiness', Apple: 'sadness' }, 5);
    await q.markConnected(3, 6);
    await close(q);
    const reopened = await open(kind, where);
    // Connected projects are swept; a project with only a label map is not (nothing says it is connected).
    expect(await reopened.projects()).toEqual([1, 3]);
    const two = await reopened.project(2);
    expect(two).toEqual({ projectId: 2, labelMap: { Zebra: 'happiness', Apple: 'sadness' }, labelMapMs: 5, connectedMs: null, sweptMs: null, firstWebhookMs: null, silentSinceMs: null, missed: 0 });
    expect(Object.keys(two?.labelMap ?? {})).toEqual(['Zebra', 'Apple']);
    expect(await reopened.project(3)).toMatchObject({ labelMap: null, connectedMs: 6 });
    expect(await reopened.project(9)).toBeUndefined();
    await reopened.setLabelMap(2, null, 7);
    expect(await reopened.project(2)).toMatchObject({ labelMap: null, labelMapMs: null });
    expect((await reopened.projectStates()).map((p) => p.projectId)).toEqual([2, 3]);
  });

  it('marks a project silent (adding up what the sweeps missed) until a webhook names it, and says whether one came since', async () => {
    const q = await openFresh(kind);
    await q.markSilent(4, 2, 100);
    await q.markSilent(4, 3, 200);
    expect(await q.project(4)).toMatchObject({ silentSinceMs: 100, missed: 5, firstWebhookMs: null });
    expect(await q.heardSince(4, 0)).toBe(false);
    await q.noteWebhook(4, 5300);
    expect(await q.project(4)).toMatchObject({ silentSinceMs: null, missed: 0, firstWebhookMs: 5300 });
    await q.noteWebhook(4, 9400);
    expect((await q.project(4))?.firstWebhookMs).toBe(5300);
    expect(await q.heardSince(4, 9000)).toBe(true);
    expect(await q.heardSince(4, 20_000)).toBe(false);
    expect(await q.heardSince(5, 0)).toBe(false);
    await q.markSwept(4, 500);
    expect((await q.project(4))?.sweptMs).toBe(500);
  });

  it('leases a claim: not handed out again while it holds, renewed, and an event behind it waits', async () => {
    const q = await openFresh(kind);
    await q.enqueue(event(1), 0);
    await q.enqueue(event(1, 'ANNOTATION_UPDATED', 't2'), 0);
    await q.enqueue(event(2), 0);
    const a = claimed(await q.claim(100, 1000));
    const b = claimed(await q.claim(100, 1000));
    expect([a.key, b.key]).toEqual(['1:ANNOTATION_CREATED:t1', '2:ANNOTATION_CREATED:t1']);
    expect(a.claim).not.toBe(b.claim);
    // Both held, and annotation 1's update waits for its creation.
    expect(await q.claim(500, 1000)).toBeUndefined();
    expect(await q.nextDueMs()).toBe(1100);
    expect(await q.renew(a.seq, a.claim, 3000)).toBe(true);
    expect(await q.claim(2000, 1000)).toMatchObject({ key: '2:ANNOTATION_CREATED:t1', reclaimed: true });
    expect(await q.claim(2000, 1000)).toBeUndefined();
    expect(await q.complete(a.seq, a.claim, { kind: 'audited' }, 2500)).toBe(true);
    expect((await q.claim(2500, 1000))?.key).toBe('1:ANNOTATION_UPDATED:t2');
  });

  it('hands an event whose lease ran out to the next claimer, as an attempt, and refuses the old claim’s outcome', async () => {
    const q = await openFresh(kind);
    await q.enqueue(event(1), 0);
    const dead = claimed(await q.claim(100, 1000));
    // Not yet run out.
    expect(await q.claim(1099, 1000)).toBeUndefined();
    const taker = claimed(await q.claim(1100, 1000));
    expect(taker).toMatchObject({ seq: dead.seq, key: dead.key, attempts: 1, reclaimed: true, leaseUntilMs: 2100 });
    expect((await q.events())[0]).toMatchObject({ state: 'pending', attempts: 1, lastError: 'lease-expired' });
    // The first holder, back from a stall, can neither renew nor record an outcome.
    expect(await q.renew(dead.seq, dead.claim, 5000)).toBe(false);
    expect(await q.complete(dead.seq, dead.claim, { kind: 'audited' }, 1200)).toBe(false);
    expect(await q.retry(dead.seq, dead.claim, 'ls-unreachable', 1300)).toBe(false);
    expect(await q.fail(dead.seq, dead.claim, 'no-face', 1300)).toBe(false);
    expect((await q.events())[0]).toMatchObject({ state: 'pending', attempts: 1 });
    expect(await q.complete(taker.seq, taker.claim, { kind: 'audited', predictionId: 7 }, 1400)).toBe(true);
    expect((await q.events())[0]).toMatchObject({ state: 'done', attempts: 2, lastError: null, outcome: { kind: 'audited', predictionId: 7 }, doneMs: 1400 });
    // Settled: the claim is spent.
    expect(await q.renew(taker.seq, taker.claim, 9000)).toBe(false);
    expect(await q.complete(taker.seq, taker.claim, { kind: 'audited' }, 1500)).toBe(false);
    expect(await q.claim(10_000, 1000)).toBeUndefined();
  });

  it('records an outcome under a claim that ran out when no one took the event meanwhile', async () => {
    const q = await openFresh(kind);
    await q.enqueue(event(1), 0);
    const slow = claimed(await q.claim(0, 100));
    expect(await q.renew(slow.seq, slow.claim, 5000)).toBe(true);
    expect(await q.retry(slow.seq, slow.claim, 'ls-unreachable', 6000)).toBe(true);
    expect(await q.nextDueMs()).toBe(6000);
    expect(await q.claim(6000, 100)).toMatchObject({ attempts: 1, reclaimed: false });
  });
});

describe.each(BACKENDS)('sweep on %s', (kind) => {
  /** A client whose project 1 fails as `failure` and whose project 2 has one annotation no webhook brought. */
  const client = (failure: LabelStudioError) =>
    ({
      listTasks: async (projectId: number) => {
        if (projectId === 1) throw failure;
        return { tasks: [{ id: 21, total_annotations: 1 }], total: 1 };
      },
      listAnnotations: async () => [{ id: 201, task: 21, updated_at: 't1', result: [] }],
    }) as unknown as LabelStudioClient;

  it('goes on past a project it cannot sweep for good (e.g. deleted), reporting it', async () => {
    const queue = await openFresh(kind);
    await queue.markConnected(1, 0);
    await queue.markConnected(2, 0);
    const r = await sweep({ client: client(new LabelStudioError('task-not-found', false, '404')), queue }, 10);
    expect(r).toMatchObject({ queued: 1, failed: [{ projectId: 1, reason: 'task-not-found' }] });
    expect(await queue.hasEvent(201, 't1')).toBe(true);
    expect((await queue.project(1))?.sweptMs).toBeNull();
    expect((await queue.project(2))?.sweptMs).toBe(10);
  });

  it('throws a transient failure once every project was tried, so the worker sweeps again after a back-off', async () => {
    const queue = await openFresh(kind);
    await queue.markConnected(1, 0);
    await queue.markConnected(2, 0);
    await expect(sweep({ client: client(new LabelStudioError('ls-unreachable', true, 'down')), queue }, 10)).rejects.toMatchObject({ reason: 'ls-unreachable' });
    expect(await queue.hasEvent(201, 't1')).toBe(true);
  });
});

/** label-studio.db as layout 1 wrote it (before issue 33), to migrate from. */
const LAYOUT_1 = `
CREATE TABLE ls_events (seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, annotation_id INTEGER NOT NULL, event TEXT NOT NULL,
  received_ms INTEGER NOT NULL, state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed')), attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_ms INTEGER NOT NULL, last_error TEXT, done_ms INTEGER, outcome TEXT);
CREATE INDEX ls_events_pending ON ls_events (state, annotation_id, seq);
CREATE TABLE ls_annotations (annotation_id INTEGER PRIMARY KEY, task_id INTEGER NOT NULL, audit_id TEXT, prediction_id INTEGER, deleted_ms INTEGER);
CREATE INDEX ls_annotations_prediction ON ls_annotations (prediction_id);
CREATE INDEX ls_annotations_task ON ls_annotations (task_id);
PRAGMA user_version = 1;
`;

describe('the queue on sqlite: label-studio.db layout 2', () => {
  it('migrates a layout-1 file, keeping its events and annotations', async () => {
    const dir = tempDir();
    const old = new Database(path.join(dir, 'label-studio.db'));
    old.exec(LAYOUT_1);
    old.prepare(`INSERT INTO ls_events (key, annotation_id, event, received_ms, state, next_attempt_ms) VALUES (?, 1, ?, 0, 'pending', 0)`).run('1:ANNOTATION_CREATED:t1', JSON.stringify(event(1)));
    old.prepare(`INSERT INTO ls_annotations (annotation_id, task_id, audit_id) VALUES (5, 15, 'a')`).run();
    old.close();

    const q = await open('sqlite', dir);
    expect((await q.claim(0, LEASE))?.key).toBe('1:ANNOTATION_CREATED:t1');
    expect(await q.annotation(5)).toMatchObject({ taskId: 15, auditId: 'a' });
    expect(await q.projects()).toEqual([1]);
    expect(await q.projectStates()).toEqual([]);
    await q.setLabelMap(2, { Happy: 'happiness' }, 5);
    await close(q);
    const check = new Database(path.join(dir, 'label-studio.db'), { readonly: true });
    expect(check.pragma('user_version', { simple: true })).toBe(2);
    check.close();
  });

  it('refuses a file of a layout newer than its own', () => {
    const dir = tempDir();
    const db = new Database(path.join(dir, 'label-studio.db'));
    db.pragma('user_version = 3');
    db.close();
    expect(() => SqliteEventQueue.open(dir)).toThrow(/layout 3 is newer than this service's 2/);
  });

  it('forgets its leases on a restart: the process that held them is gone', async () => {
    const dir = tempDir();
    const q = await open('sqlite', dir);
    await q.enqueue(event(1), 0);
    claimed(await q.claim(0, LEASE));
    await close(q);
    expect(await (await open('sqlite', dir)).claim(1, LEASE)).toMatchObject({ key: '1:ANNOTATION_CREATED:t1', attempts: 0, reclaimed: false });
  });
});

describe('the queue on postgres: replicas', () => {
  it('hands each event to exactly one of several replicas claiming at the same moment', async () => {
    const url = await freshPlace('postgres');
    const replicas = await Promise.all(Array.from({ length: 4 }, () => open('postgres', url)));
    const N = 120;
    // Several annotations with a few events each, so the per-annotation order is exercised under contention too.
    for (let i = 0; i < N; i++) await (replicas[0] as EventQueue).enqueue(event(1 + (i % 40), i < 40 ? 'ANNOTATION_CREATED' : 'ANNOTATION_UPDATED', `t${i}`), i);
    const held = new Map<number, string>();
    const taken: { seq: number; key: string; by: number }[] = [];
    const overlaps: string[] = [];
    await Promise.all(
      replicas.map(async (q, by) => {
        // Many claimers per replica, as a burst of notifications wakes every worker at once.
        await Promise.all(
          Array.from({ length: 3 }, async () => {
            for (;;) {
              const job = await q.claim(1_000_000, LEASE);
              if (!job) {
                if (taken.length >= N) return;
                await new Promise((r) => setTimeout(r, 5));
                continue;
              }
              if (held.has(job.seq)) overlaps.push(`${job.key} held by ${held.get(job.seq)} and ${by}`);
              const annotation = String(job.event.annotationId);
              if ([...held.values()].some((v) => v.startsWith(`${annotation}/`))) overlaps.push(`annotation ${annotation} twice at once`);
              held.set(job.seq, `${annotation}/${by}`);
              taken.push({ seq: job.seq, key: job.key, by });
              await new Promise((r) => setTimeout(r, Math.random() * 3));
              held.delete(job.seq);
              // false: another claimer was handed the same event and overwrote this claim.
              if (!(await q.complete(job.seq, job.claim, { kind: 'audited' }, 1_000_001))) overlaps.push(`${job.key}: claim of ${by} lost`);
            }
          }),
        );
      }),
    );
    expect(overlaps).toEqual([]);
    expect(taken).toHaveLength(N);
    expect(new Set(taken.map((t) => t.seq)).size).toBe(N);
    expect(new Set(taken.map((t) => t.by)).size).toBeGreaterThan(1);
    expect((await (replicas[1] as EventQueue).events()).every((e) => e.state === 'done' && e.attempts === 1)).toBe(true);
  });

  it('shares what it keeps of each project: a label map set through one replica is read by another', async () => {
    const url = await freshPlace('postgres');
    const [a, b] = [await open('postgres', url), await open('postgres', url)] as [EventQueue, EventQueue];
    await a.setLabelMap(3, { Smile: 'happiness' }, 1);
    expect((await b.project(3))?.labelMap).toEqual({ Smile: 'happiness' });
    await a.noteWebhook(3, 5000);
    expect(await b.heardSince(3, 4000)).toBe(true);
  });

  it('tells the other replicas when it queues an event', async () => {
    const url = await freshPlace('postgres');
    const [a, b] = [await open('postgres', url), await open('postgres', url)] as [EventQueue, EventQueue];
    let told = 0;
    b.onEnqueued(() => told++);
    // Listening: the first call comes once the listener is connected (a catch-up).
    await expect.poll(() => told, { timeout: 5000 }).toBe(1);
    await a.enqueue(event(1), 0);
    await expect.poll(() => told, { timeout: 5000 }).toBe(2);
    // A redelivery queues nothing, and tells no one.
    await a.enqueue(event(1), 1);
    await new Promise((r) => setTimeout(r, 200));
    expect(told).toBe(2);
  });

  it('migrates an empty database once when replicas open it together, and refuses a layout newer than its own', async () => {
    const url = await freshPlace('postgres');
    const opened = await Promise.all(Array.from({ length: 4 }, () => open('postgres', url)));
    expect(opened.every((q) => (q as PostgresEventQueue).available)).toBe(true);
    expect(await adminQuery(url, 'SELECT version FROM asm_fer_label_studio_schema')).toEqual([{ version: 1 }]);
    expect((await adminQuery(url, `SELECT tablename FROM pg_tables WHERE tablename LIKE 'ls_%' ORDER BY 1`)).map((r) => r.tablename)).toEqual(['ls_annotations', 'ls_events', 'ls_projects']);
    await adminQuery(url, 'UPDATE asm_fer_label_studio_schema SET version = 2');
    await expect(PostgresEventQueue.open(pgOptions(url))).rejects.toBeInstanceOf(QueueLayoutTooNew);
  });

  it('answers unavailable while the database cannot be reached, without failing the start', async () => {
    const q = await PostgresEventQueue.open({ ...pgOptions('postgres://postgres@127.0.0.1:1/none'), acquireTimeoutMs: 500 });
    queues.push(q);
    expect(q.available).toBe(false);
    const refused = await q.enqueue(event(1), 0).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(AuditStoreUnavailable);
    expect((refused as Error).message).toMatch(/Label Studio queue/);
    expect(q.location).toBe('postgres://postgres@127.0.0.1:1/none');
  });
});

describe('backoffMs', () => {
  it('doubles from the base up to the cap, less up to 20 % jitter', () => {
    const opts = { retryBaseMs: 1000, retryMaxMs: 10_000 };
    expect([0, 1, 2, 3, 4, 10].map((a) => backoffMs(a, opts, () => 0))).toEqual([1000, 2000, 4000, 8000, 10_000, 10_000]);
    expect(backoffMs(1, opts, () => 1)).toBe(1600);
  });
});
