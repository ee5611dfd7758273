// The Label Studio event queue in SQLite: its own file, label-studio.db, beside the audit trail in ASM_FER_DATA_DIR.
// A sibling file rather than tables inside audits.db: audits.db's layout (PRAGMA user_version and its migrations) is
// the audit store's alone, and the store is being put behind an interface for PostgreSQL; a separate file keeps the
// queue independent of whatever backs the trail. Exactly-once across the two does not need one transaction: the
// audit record's id is derived from the event key, so a retry finds the record it already wrote.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type Database from 'better-sqlite3';
import { openDurable } from '../audit/sqlite-store.js';
import type { AnnotationEvent, AnnotationState, EventOutcome, EventQueue, QueuedEvent, QueueStats } from './queue.js';
import { eventKey } from './queue.js';

export const QUEUE_DB_FILE = 'label-studio.db';

const SCHEMA_VERSION = 1;

const SCHEMA_SQL = `
CREATE TABLE IF NOT EXISTS ls_events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  key TEXT NOT NULL UNIQUE,
  annotation_id INTEGER NOT NULL,
  event TEXT NOT NULL,
  received_ms INTEGER NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_ms INTEGER NOT NULL,
  last_error TEXT,
  done_ms INTEGER,
  outcome TEXT
);
CREATE INDEX IF NOT EXISTS ls_events_pending ON ls_events (state, annotation_id, seq);
CREATE TABLE IF NOT EXISTS ls_annotations (
  annotation_id INTEGER PRIMARY KEY,
  task_id INTEGER NOT NULL,
  audit_id TEXT,
  prediction_id INTEGER,
  deleted_ms INTEGER
);
CREATE INDEX IF NOT EXISTS ls_annotations_prediction ON ls_annotations (prediction_id);
CREATE INDEX IF NOT EXISTS ls_annotations_task ON ls_annotations (task_id);
`;

export class SqliteEventQueue implements EventQueue {
  private constructor(private readonly db: Database.Database) {}

  /** Opens (creating when missing) `dir`/label-studio.db; throws when it cannot, so a broken queue stops the start. */
  static open(dir: string): SqliteEventQueue {
    mkdirSync(dir, { recursive: true });
    // durable as the trail: the webhook's 2xx means the event survives a crash or power cut, as the trail's 200 does
    const db = openDurable(path.join(dir, QUEUE_DB_FILE));
    try {
      const version = db.pragma('user_version', { simple: true }) as number;
      if (version > SCHEMA_VERSION) throw new Error(`${QUEUE_DB_FILE} layout ${version} is newer than this service's ${SCHEMA_VERSION}`);
      db.exec(SCHEMA_SQL);
      db.pragma(`user_version = ${SCHEMA_VERSION}`);
    } catch (err) {
      db.close();
      throw err;
    }
    return new SqliteEventQueue(db);
  }

  enqueue(event: AnnotationEvent, nowMs: number): { queued: boolean } {
    const info = this.db
      .prepare(`INSERT INTO ls_events (key, annotation_id, event, received_ms, state, next_attempt_ms) VALUES (?, ?, ?, ?, 'pending', ?) ON CONFLICT (key) DO NOTHING`)
      .run(eventKey(event), event.annotationId, JSON.stringify(event), nowMs, nowMs);
    return { queued: info.changes === 1 };
  }

  claim(nowMs: number): QueuedEvent | undefined {
    const row = this.db
      .prepare(
        `SELECT seq, key, event, received_ms, attempts FROM ls_events e
         WHERE state = 'pending' AND next_attempt_ms <= ?
           AND NOT EXISTS (SELECT 1 FROM ls_events p WHERE p.state = 'pending' AND p.annotation_id = e.annotation_id AND p.seq < e.seq)
         ORDER BY next_attempt_ms, seq LIMIT 1`,
      )
      .get(nowMs) as { seq: number; key: string; event: string; received_ms: number; attempts: number } | undefined;
    return row && { seq: row.seq, key: row.key, event: JSON.parse(row.event) as AnnotationEvent, receivedMs: row.received_ms, attempts: row.attempts };
  }

  nextDueMs(): number | undefined {
    // Only the first unfinished event of each annotation can be claimed; the ones behind it wait for it, not for their own time.
    const row = this.db
      .prepare(
        `SELECT MIN(next_attempt_ms) AS due FROM ls_events e WHERE state = 'pending'
           AND NOT EXISTS (SELECT 1 FROM ls_events p WHERE p.state = 'pending' AND p.annotation_id = e.annotation_id AND p.seq < e.seq)`,
      )
      .get() as { due: number | null };
    return row.due ?? undefined;
  }

  complete(seq: number, outcome: EventOutcome, nowMs: number): void {
    this.db.prepare(`UPDATE ls_events SET state = 'done', done_ms = ?, outcome = ?, attempts = attempts + 1, last_error = NULL WHERE seq = ?`).run(nowMs, JSON.stringify(outcome), seq);
  }

  retry(seq: number, reason: string, atMs: number): void {
    this.db.prepare(`UPDATE ls_events SET attempts = attempts + 1, last_error = ?, next_attempt_ms = ? WHERE seq = ?`).run(reason, atMs, seq);
  }

  fail(seq: number, reason: string, nowMs: number): void {
    this.db.prepare(`UPDATE ls_events SET state = 'failed', attempts = attempts + 1, last_error = ?, done_ms = ? WHERE seq = ?`).run(reason, nowMs, seq);
  }

  annotation(annotationId: number): AnnotationState | undefined {
    const row = this.db.prepare(`SELECT annotation_id, task_id, audit_id, prediction_id, deleted_ms FROM ls_annotations WHERE annotation_id = ?`).get(annotationId) as
      | { annotation_id: number; task_id: number; audit_id: string | null; prediction_id: number | null; deleted_ms: number | null }
      | undefined;
    return row && { annotationId: row.annotation_id, taskId: row.task_id, auditId: row.audit_id, predictionId: row.prediction_id, deletedMs: row.deleted_ms };
  }

  saveAnnotation(s: AnnotationState): void {
    this.db
      .prepare(
        `INSERT INTO ls_annotations (annotation_id, task_id, audit_id, prediction_id, deleted_ms) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (annotation_id) DO UPDATE SET task_id = excluded.task_id, audit_id = excluded.audit_id, prediction_id = excluded.prediction_id, deleted_ms = excluded.deleted_ms`,
      )
      .run(s.annotationId, s.taskId, s.auditId, s.predictionId, s.deletedMs);
  }

  projects(): number[] {
    const rows = this.db.prepare(`SELECT DISTINCT json_extract(event, '$.projectId') AS p FROM ls_events WHERE json_extract(event, '$.projectId') > 0 ORDER BY p`).all() as { p: number }[];
    return rows.map((r) => r.p);
  }

  hasEvent(annotationId: number, updatedAt: string): boolean {
    const keys = (['ANNOTATION_CREATED', 'ANNOTATION_UPDATED'] as const).map((action) => eventKey({ annotationId, action, updatedAt }));
    return this.db.prepare(`SELECT 1 FROM ls_events WHERE key IN (?, ?)`).get(...keys) !== undefined;
  }

  liveAnnotationsOfTask(taskId: number): number[] {
    const rows = this.db.prepare(`SELECT annotation_id FROM ls_annotations WHERE task_id = ? AND deleted_ms IS NULL AND audit_id IS NOT NULL`).all(taskId) as { annotation_id: number }[];
    return rows.map((r) => r.annotation_id);
  }

  predictionOwner(predictionId: number): number | undefined {
    const row = this.db.prepare(`SELECT annotation_id FROM ls_annotations WHERE prediction_id = ?`).get(predictionId) as { annotation_id: number } | undefined;
    return row?.annotation_id;
  }

  events(): ReturnType<EventQueue['events']> {
    const rows = this.db.prepare(`SELECT key, state, attempts, last_error, outcome, received_ms, done_ms FROM ls_events ORDER BY seq`).all() as {
      key: string;
      state: 'pending' | 'done' | 'failed';
      attempts: number;
      last_error: string | null;
      outcome: string | null;
      received_ms: number;
      done_ms: number | null;
    }[];
    return rows.map((r) => ({
      key: r.key,
      state: r.state,
      attempts: r.attempts,
      lastError: r.last_error,
      outcome: r.outcome === null ? null : (JSON.parse(r.outcome) as EventOutcome),
      receivedMs: r.received_ms,
      doneMs: r.done_ms,
    }));
  }

  stats(nowMs: number): QueueStats {
    const pending = this.db.prepare(`SELECT COUNT(*) AS n, MIN(received_ms) AS oldest FROM ls_events WHERE state = 'pending'`).get() as { n: number; oldest: number | null };
    const failed = this.db.prepare(`SELECT COUNT(*) AS n FROM ls_events WHERE state = 'failed'`).get() as { n: number };
    return { depth: pending.n, oldestMs: pending.oldest === null ? 0 : Math.max(0, nowMs - pending.oldest), failed: failed.n };
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
