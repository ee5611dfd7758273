import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { sweep } from '../../src/label-studio/backend.js';
import { LabelStudioError, type LabelStudioClient } from '../../src/label-studio/client.js';
import { SqliteEventQueue } from '../../src/label-studio/queue-sqlite.js';
import type { AnnotationEvent } from '../../src/label-studio/queue.js';
import { backoffMs } from '../../src/label-studio/worker.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const tempDir = () => {
  const d = mkdtempSync(path.join(tmpdir(), 'asm-fer-lsq-'));
  dirs.push(d);
  return d;
};

const event = (annotationId: number, action: AnnotationEvent['action'] = 'ANNOTATION_CREATED', updatedAt = 't1'): AnnotationEvent => ({
  action,
  annotationId,
  taskId: 10 + annotationId,
  projectId: 1,
  completedBy: 3,
  updatedAt,
  result: [],
});

describe('SqliteEventQueue', () => {
  it('queues an event once: a redelivery with the same annotation, action and updated_at is dropped', () => {
    const q = SqliteEventQueue.open(tempDir());
    expect(q.enqueue(event(1), 0)).toEqual({ queued: true });
    expect(q.enqueue(event(1), 5)).toEqual({ queued: false });
    expect(q.enqueue(event(1, 'ANNOTATION_UPDATED', 't2'), 6)).toEqual({ queued: true });
    expect(q.stats(10)).toEqual({ depth: 2, oldestMs: 10, failed: 0 });
    q.close();
  });

  it('claims one annotation’s events in arrival order, even when an earlier one is retrying', () => {
    const q = SqliteEventQueue.open(tempDir());
    q.enqueue(event(1), 0);
    q.enqueue(event(1, 'ANNOTATION_UPDATED', 't2'), 1);
    q.enqueue(event(2), 2);
    const first = q.claim(10);
    expect(first?.event.annotationId).toBe(1);
    q.retry(first?.seq as number, 'ls-unreachable', 1000);
    // Annotation 1's update waits behind its creation; annotation 2 goes ahead.
    const second = q.claim(10);
    expect(second?.event.annotationId).toBe(2);
    q.complete(second?.seq as number, { kind: 'audited' }, 11);
    expect(q.claim(10)).toBeUndefined();
    expect(q.nextDueMs()).toBe(1000);
    const again = q.claim(1000);
    expect(again).toMatchObject({ key: '1:ANNOTATION_CREATED:t1', attempts: 1 });
    q.complete(again?.seq as number, { kind: 'audited' }, 1001);
    expect(q.claim(1001)?.key).toBe('1:ANNOTATION_UPDATED:t2');
    q.close();
  });

  it('keeps pending events, failures and annotation states across a reopen (a restart resumes)', () => {
    const dir = tempDir();
    const q = SqliteEventQueue.open(dir);
    q.enqueue(event(1), 0);
    q.enqueue(event(2), 0);
    q.fail(q.claim(0)?.seq as number, 'image-not-found', 1);
    q.saveAnnotation({ annotationId: 1, taskId: 11, auditId: 'a', predictionId: 5, deletedMs: null });
    q.close();
    const reopened = SqliteEventQueue.open(dir);
    expect(reopened.stats(2)).toMatchObject({ depth: 1, failed: 1 });
    expect(reopened.claim(2)?.event.annotationId).toBe(2);
    expect(reopened.annotation(1)).toEqual({ annotationId: 1, taskId: 11, auditId: 'a', predictionId: 5, deletedMs: null });
    expect(reopened.events().map((e) => [e.key, e.state, e.lastError])).toEqual([
      ['1:ANNOTATION_CREATED:t1', 'failed', 'image-not-found'],
      ['2:ANNOTATION_CREATED:t1', 'pending', null],
    ]);
    reopened.close();
  });
});

describe('what a sweep asks of the queue', () => {
  it('knows the projects seen, which annotation versions were queued, and which audited annotations are live', () => {
    const q = SqliteEventQueue.open(tempDir());
    q.enqueue(event(1), 0);
    q.enqueue({ ...event(2, 'ANNOTATION_UPDATED', 't9'), projectId: 4 }, 0);
    q.enqueue({ ...event(3, 'ANNOTATION_DELETED', ''), projectId: 0 }, 0);
    expect(q.projects()).toEqual([1, 4]);
    expect(q.hasEvent(1, 't1')).toBe(true);
    expect(q.hasEvent(2, 't9')).toBe(true);
    expect(q.hasEvent(1, 't2')).toBe(false);
    q.saveAnnotation({ annotationId: 1, taskId: 11, auditId: 'a', predictionId: 5, deletedMs: null });
    q.saveAnnotation({ annotationId: 5, taskId: 11, auditId: 'b', predictionId: 6, deletedMs: 3 });
    q.saveAnnotation({ annotationId: 6, taskId: 11, auditId: null, predictionId: null, deletedMs: null });
    expect(q.liveAnnotationsOfTask(11)).toEqual([1]);
    expect(q.predictionOwner(5)).toBe(1);
    expect(q.predictionOwner(7)).toBeUndefined();
    q.close();
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

describe('what the queue keeps per project (layout 2)', () => {
  it('migrates a layout-1 file, keeping its events and annotations, and keeps per-project state across a reopen', () => {
    const dir = tempDir();
    const old = new Database(path.join(dir, 'label-studio.db'));
    old.exec(LAYOUT_1);
    old.prepare(`INSERT INTO ls_events (key, annotation_id, event, received_ms, state, next_attempt_ms) VALUES (?, 1, ?, 0, 'pending', 0)`).run('1:ANNOTATION_CREATED:t1', JSON.stringify(event(1)));
    old.prepare(`INSERT INTO ls_annotations (annotation_id, task_id, audit_id) VALUES (5, 15, 'a')`).run();
    old.close();

    const q = SqliteEventQueue.open(dir);
    expect(q.claim(0)?.key).toBe('1:ANNOTATION_CREATED:t1');
    expect(q.annotation(5)).toMatchObject({ taskId: 15, auditId: 'a' });
    expect(q.projects()).toEqual([1]);
    expect(q.projectStates()).toEqual([]);
    q.setLabelMap(2, { Happy: 'happiness' }, 5);
    q.markConnected(3, 6);
    q.close();

    const reopened = SqliteEventQueue.open(dir);
    // Connected projects are swept; a project with only a label map is not (nothing says it is connected).
    expect(reopened.projects()).toEqual([1, 3]);
    expect(reopened.project(2)).toEqual({ projectId: 2, labelMap: { Happy: 'happiness' }, labelMapMs: 5, connectedMs: null, sweptMs: null, firstWebhookMs: null, silentSinceMs: null, missed: 0 });
    expect(reopened.project(3)).toMatchObject({ labelMap: null, connectedMs: 6 });
    reopened.setLabelMap(2, null, 7);
    expect(reopened.project(2)).toMatchObject({ labelMap: null, labelMapMs: null });
    reopened.close();
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

  it('marks a project silent (adding up what the sweeps missed) until a webhook names it', () => {
    const q = SqliteEventQueue.open(tempDir());
    q.markSilent(4, 2, 100);
    q.markSilent(4, 3, 200);
    expect(q.project(4)).toMatchObject({ silentSinceMs: 100, missed: 5, firstWebhookMs: null });
    q.noteWebhook(4, 300);
    expect(q.project(4)).toMatchObject({ silentSinceMs: null, missed: 0, firstWebhookMs: 300 });
    q.noteWebhook(4, 400);
    expect(q.project(4)?.firstWebhookMs).toBe(300);
    q.markSwept(4, 500);
    expect(q.project(4)?.sweptMs).toBe(500);
    q.close();
  });
});

describe('sweep', () => {
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
    const queue = SqliteEventQueue.open(tempDir());
    queue.markConnected(1, 0);
    queue.markConnected(2, 0);
    const r = await sweep({ client: client(new LabelStudioError('task-not-found', false, '404')), queue, heard: new Map() }, 10);
    expect(r).toMatchObject({ queued: 1, failed: [{ projectId: 1, reason: 'task-not-found' }] });
    expect(queue.hasEvent(201, 't1')).toBe(true);
    expect(queue.project(1)?.sweptMs).toBeNull();
    expect(queue.project(2)?.sweptMs).toBe(10);
    queue.close();
  });

  it('throws a transient failure once every project was tried, so the worker sweeps again after a back-off', async () => {
    const queue = SqliteEventQueue.open(tempDir());
    queue.markConnected(1, 0);
    queue.markConnected(2, 0);
    await expect(sweep({ client: client(new LabelStudioError('ls-unreachable', true, 'down')), queue, heard: new Map() }, 10)).rejects.toMatchObject({ reason: 'ls-unreachable' });
    expect(queue.hasEvent(201, 't1')).toBe(true);
    queue.close();
  });
});

describe('backoffMs', () => {
  it('doubles from the base up to the cap, less up to 20 % jitter', () => {
    const opts = { retryBaseMs: 1000, retryMaxMs: 10_000 };
    expect([0, 1, 2, 3, 4, 10].map((a) => backoffMs(a, opts, () => 0))).toEqual([1000, 2000, 4000, 8000, 10_000, 10_000]);
    expect(backoffMs(1, opts, () => 1)).toBe(1600);
  });
});
