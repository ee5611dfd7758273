import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
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

describe('backoffMs', () => {
  it('doubles from the base up to the cap, less up to 20 % jitter', () => {
    const opts = { retryBaseMs: 1000, retryMaxMs: 10_000 };
    expect([0, 1, 2, 3, 4, 10].map((a) => backoffMs(a, opts, () => 0))).toEqual([1000, 2000, 4000, 8000, 10_000, 10_000]);
    expect(backoffMs(1, opts, () => 1)).toBe(1600);
  });
});
