// The Label Studio event queue in SQLite: its own file, label-studio.db, beside the audit trail in ASM_FER_DATA_DIR,
// for one process (the trail is SQLite too); replicas on a PostgreSQL trail share queue-postgres.ts instead.
// A sibling file rather than tables inside audits.db: audits.db's layout (PRAGMA user_version and its migrations) is
// the audit store's alone, and the store is being put behind an interface for PostgreSQL; a separate file keeps the
// queue independent of whatever backs the trail. Exactly-once across the two does not need one transaction: the
// audit record's id is derived from the event key, so a retry finds the record it already wrote.
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type Database from 'better-sqlite3';
import { openDurable } from '../audit/sqlite-store.js';
import type { AnnotationEvent, AnnotationState, EventOutcome, EventQueue, ProjectState, QueuedEvent, QueueEventView, QueueStats } from './queue.js';
import { eventKey } from './queue.js';

export const QUEUE_DB_FILE = 'label-studio.db';

const SCHEMA_VERSION = 2;

/** Layout 1: the events and the annotations' states. Kept as it was, so a new file goes through the same migrations as an old one. */
const SCHEMA_V1_SQL = `
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

/**
 * Layout N (index N - 2): what turns layout N - 1 into N. 2: per-project state (issue 33): the label map set through
 * the API, when /setup connected the project, and whether its webhook has been heard (the silent-project signal).
 */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE ls_projects (
    project_id INTEGER PRIMARY KEY,
    label_map TEXT,
    label_map_ms INTEGER,
    connected_ms INTEGER,
    swept_ms INTEGER,
    first_webhook_ms INTEGER,
    silent_since_ms INTEGER,
    missed INTEGER NOT NULL DEFAULT 0
  )`,
];

interface ProjectRow {
  project_id: number;
  label_map: string | null;
  label_map_ms: number | null;
  connected_ms: number | null;
  swept_ms: number | null;
  first_webhook_ms: number | null;
  silent_since_ms: number | null;
  missed: number;
}

const projectState = (r: ProjectRow): ProjectState => ({
  projectId: r.project_id,
  labelMap: r.label_map === null ? null : (JSON.parse(r.label_map) as Record<string, string>),
  labelMapMs: r.label_map_ms,
  connectedMs: r.connected_ms,
  sweptMs: r.swept_ms,
  firstWebhookMs: r.first_webhook_ms,
  silentSinceMs: r.silent_since_ms,
  missed: r.missed,
});

/**
 * Claims are leased as the interface says, but the leases are kept in memory: only this process reads the file, so a
 * lease outlives its holder only while the process runs, and a restart (the holder gone) frees every event at once
 * rather than after its lease. Each method runs synchronously and resolves at once.
 */
export class SqliteEventQueue implements EventQueue {
  readonly shared = false;
  /** Events claimed and not yet settled: seq → the claim's token and until when it holds. */
  private readonly leases = new Map<number, { claim: string; untilMs: number }>();
  /** When a webhook last named each project, in this process (see heardSince). */
  private readonly heard = new Map<number, number>();

  private constructor(
    private readonly db: Database.Database,
    readonly location: string,
  ) {}

  /** Opens (creating when missing) `dir`/label-studio.db; throws when it cannot, so a broken queue stops the start. */
  static open(dir: string): SqliteEventQueue {
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, QUEUE_DB_FILE);
    // durable as the trail: the webhook's 2xx means the event survives a crash or power cut, as the trail's 200 does
    const db = openDurable(file);
    try {
      const version = db.pragma('user_version', { simple: true }) as number;
      if (version > SCHEMA_VERSION) throw new Error(`${QUEUE_DB_FILE} layout ${version} is newer than this service's ${SCHEMA_VERSION}`);
      // One transaction: a start killed half-way leaves the file at its old layout, migrated again next time.
      db.transaction(() => {
        db.exec(SCHEMA_V1_SQL);
        for (let v = Math.max(version, 1) + 1; v <= SCHEMA_VERSION; v++) db.exec(MIGRATIONS[v - 2] as string);
        db.pragma(`user_version = ${SCHEMA_VERSION}`);
      })();
    } catch (err) {
      db.close();
      throw err;
    }
    return new SqliteEventQueue(db, path.resolve(file));
  }

  enqueue(event: AnnotationEvent, nowMs: number): Promise<{ queued: boolean }> {
    const info = this.db
      .prepare(`INSERT INTO ls_events (key, annotation_id, event, received_ms, state, next_attempt_ms) VALUES (?, ?, ?, ?, 'pending', ?) ON CONFLICT (key) DO NOTHING`)
      .run(eventKey(event), event.annotationId, JSON.stringify(event), nowMs, nowMs);
    return Promise.resolve({ queued: info.changes === 1 });
  }

  /** Seqs leased (all of them, or those whose lease still holds at `nowMs`), as an SQL list: never empty, so `NOT IN` stays valid. */
  private leased(nowMs = -Infinity): number[] {
    const seqs = [...this.leases].filter(([, l]) => l.untilMs > nowMs).map(([seq]) => seq);
    return seqs.length > 0 ? seqs : [-1];
  }

  claim(nowMs: number, leaseMs: number): Promise<QueuedEvent | undefined> {
    const held = this.leased(nowMs);
    const row = this.db
      .prepare(
        `SELECT seq, key, event, received_ms, attempts FROM ls_events e
         WHERE state = 'pending' AND next_attempt_ms <= ? AND seq NOT IN (${held.map(() => '?').join(', ')})
           AND NOT EXISTS (SELECT 1 FROM ls_events p WHERE p.state = 'pending' AND p.annotation_id = e.annotation_id AND p.seq < e.seq)
         ORDER BY next_attempt_ms, seq LIMIT 1`,
      )
      .get(nowMs, ...held) as { seq: number; key: string; event: string; received_ms: number; attempts: number } | undefined;
    if (!row) return Promise.resolve(undefined);
    // A lease that ran out without an outcome counts as an attempt, as on the shared store.
    const reclaimed = this.leases.has(row.seq);
    if (reclaimed) this.db.prepare(`UPDATE ls_events SET attempts = attempts + 1, last_error = 'lease-expired' WHERE seq = ?`).run(row.seq);
    const claim = randomUUID();
    const leaseUntilMs = nowMs + leaseMs;
    this.leases.set(row.seq, { claim, untilMs: leaseUntilMs });
    return Promise.resolve({
      seq: row.seq,
      key: row.key,
      event: JSON.parse(row.event) as AnnotationEvent,
      receivedMs: row.received_ms,
      attempts: row.attempts + (reclaimed ? 1 : 0),
      claim,
      leaseUntilMs,
      reclaimed,
    });
  }

  /** Whether `claim` is still the event's claim (it may have run out, as long as no one claimed the event since). */
  private holds(seq: number, claim: string): boolean {
    return this.leases.get(seq)?.claim === claim;
  }

  renew(seq: number, claim: string, untilMs: number): Promise<boolean> {
    if (!this.holds(seq, claim)) return Promise.resolve(false);
    this.leases.set(seq, { claim, untilMs });
    return Promise.resolve(true);
  }

  nextDueMs(): Promise<number | undefined> {
    // Only the first unfinished event of each annotation can be claimed; the ones behind it wait for it, not for their
    // own time. A leased event falls due when its lease runs out (at once, for one that already has).
    const held = this.leased();
    const row = this.db
      .prepare(
        `SELECT MIN(next_attempt_ms) AS due FROM ls_events e WHERE state = 'pending' AND seq NOT IN (${held.map(() => '?').join(', ')})
           AND NOT EXISTS (SELECT 1 FROM ls_events p WHERE p.state = 'pending' AND p.annotation_id = e.annotation_id AND p.seq < e.seq)`,
      )
      .get(...held) as { due: number | null };
    const leases = [...this.leases.values()].map((l) => l.untilMs);
    const due = Math.min(row.due ?? Infinity, ...leases);
    return Promise.resolve(Number.isFinite(due) ? due : undefined);
  }

  /** Runs `update` for the event when `claim` still holds it, then forgets the lease. */
  private settle(seq: number, claim: string, update: () => void): Promise<boolean> {
    if (!this.holds(seq, claim)) return Promise.resolve(false);
    update();
    this.leases.delete(seq);
    return Promise.resolve(true);
  }

  complete(seq: number, claim: string, outcome: EventOutcome, nowMs: number): Promise<boolean> {
    return this.settle(seq, claim, () =>
      this.db.prepare(`UPDATE ls_events SET state = 'done', done_ms = ?, outcome = ?, attempts = attempts + 1, last_error = NULL WHERE seq = ?`).run(nowMs, JSON.stringify(outcome), seq),
    );
  }

  retry(seq: number, claim: string, reason: string, atMs: number): Promise<boolean> {
    return this.settle(seq, claim, () => this.db.prepare(`UPDATE ls_events SET attempts = attempts + 1, last_error = ?, next_attempt_ms = ? WHERE seq = ?`).run(reason, atMs, seq));
  }

  fail(seq: number, claim: string, reason: string, nowMs: number): Promise<boolean> {
    return this.settle(seq, claim, () => this.db.prepare(`UPDATE ls_events SET state = 'failed', attempts = attempts + 1, last_error = ?, done_ms = ? WHERE seq = ?`).run(reason, nowMs, seq));
  }

  /** One process: nothing but this process enqueues, and it wakes its own worker. */
  onEnqueued(): void {}

  annotation(annotationId: number): Promise<AnnotationState | undefined> {
    const row = this.db.prepare(`SELECT annotation_id, task_id, audit_id, prediction_id, deleted_ms FROM ls_annotations WHERE annotation_id = ?`).get(annotationId) as
      | { annotation_id: number; task_id: number; audit_id: string | null; prediction_id: number | null; deleted_ms: number | null }
      | undefined;
    return Promise.resolve(row && { annotationId: row.annotation_id, taskId: row.task_id, auditId: row.audit_id, predictionId: row.prediction_id, deletedMs: row.deleted_ms });
  }

  saveAnnotation(s: AnnotationState): Promise<void> {
    this.db
      .prepare(
        `INSERT INTO ls_annotations (annotation_id, task_id, audit_id, prediction_id, deleted_ms) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (annotation_id) DO UPDATE SET task_id = excluded.task_id, audit_id = excluded.audit_id, prediction_id = excluded.prediction_id, deleted_ms = excluded.deleted_ms`,
      )
      .run(s.annotationId, s.taskId, s.auditId, s.predictionId, s.deletedMs);
    return Promise.resolve();
  }

  projects(): Promise<number[]> {
    const rows = this.db
      .prepare(
        `SELECT json_extract(event, '$.projectId') AS p FROM ls_events WHERE json_extract(event, '$.projectId') > 0
         UNION SELECT project_id AS p FROM ls_projects WHERE connected_ms IS NOT NULL ORDER BY p`,
      )
      .all() as { p: number }[];
    return Promise.resolve(rows.map((r) => r.p));
  }

  project(projectId: number): Promise<ProjectState | undefined> {
    const row = this.db.prepare(`SELECT * FROM ls_projects WHERE project_id = ?`).get(projectId) as ProjectRow | undefined;
    return Promise.resolve(row && projectState(row));
  }

  projectStates(): Promise<ProjectState[]> {
    return Promise.resolve((this.db.prepare(`SELECT * FROM ls_projects ORDER BY project_id`).all() as ProjectRow[]).map(projectState));
  }

  setLabelMap(projectId: number, labelMap: Readonly<Record<string, string>> | null, nowMs: number): Promise<void> {
    this.db
      .prepare(
        `INSERT INTO ls_projects (project_id, label_map, label_map_ms) VALUES (?, ?, ?)
         ON CONFLICT (project_id) DO UPDATE SET label_map = excluded.label_map, label_map_ms = excluded.label_map_ms`,
      )
      .run(projectId, labelMap === null ? null : JSON.stringify(labelMap), labelMap === null ? null : nowMs);
    return Promise.resolve();
  }

  markConnected(projectId: number, nowMs: number): Promise<void> {
    this.db.prepare(`INSERT INTO ls_projects (project_id, connected_ms) VALUES (?, ?) ON CONFLICT (project_id) DO UPDATE SET connected_ms = excluded.connected_ms`).run(projectId, nowMs);
    return Promise.resolve();
  }

  markSwept(projectId: number, nowMs: number): Promise<void> {
    this.db.prepare(`INSERT INTO ls_projects (project_id, swept_ms) VALUES (?, ?) ON CONFLICT (project_id) DO UPDATE SET swept_ms = excluded.swept_ms`).run(projectId, nowMs);
    return Promise.resolve();
  }

  noteWebhook(projectId: number, nowMs: number): Promise<void> {
    this.heard.set(projectId, nowMs);
    // Read first: every webhook comes through here, and a synced write for each would double the webhook's cost.
    const row = this.db.prepare(`SELECT first_webhook_ms, silent_since_ms FROM ls_projects WHERE project_id = ?`).get(projectId) as
      | Pick<ProjectRow, 'first_webhook_ms' | 'silent_since_ms'>
      | undefined;
    if (row && row.first_webhook_ms !== null && row.silent_since_ms === null) return Promise.resolve();
    this.db
      .prepare(
        `INSERT INTO ls_projects (project_id, first_webhook_ms) VALUES (?, ?)
         ON CONFLICT (project_id) DO UPDATE SET first_webhook_ms = COALESCE(first_webhook_ms, excluded.first_webhook_ms), silent_since_ms = NULL, missed = 0`,
      )
      .run(projectId, nowMs);
    return Promise.resolve();
  }

  /** In memory, as it changes on every webhook and only this process receives them; a restart starts with none. */
  heardSince(projectId: number, sinceMs: number): Promise<boolean> {
    return Promise.resolve((this.heard.get(projectId) ?? -Infinity) >= sinceMs);
  }

  markSilent(projectId: number, missed: number, nowMs: number): Promise<void> {
    this.db
      .prepare(
        `INSERT INTO ls_projects (project_id, silent_since_ms, missed) VALUES (?, ?, ?)
         ON CONFLICT (project_id) DO UPDATE SET silent_since_ms = COALESCE(silent_since_ms, excluded.silent_since_ms), missed = missed + excluded.missed`,
      )
      .run(projectId, nowMs, missed);
    return Promise.resolve();
  }

  hasEvent(annotationId: number, updatedAt: string): Promise<boolean> {
    const keys = (['ANNOTATION_CREATED', 'ANNOTATION_UPDATED'] as const).map((action) => eventKey({ annotationId, action, updatedAt }));
    return Promise.resolve(this.db.prepare(`SELECT 1 FROM ls_events WHERE key IN (?, ?)`).get(...keys) !== undefined);
  }

  liveAnnotationsOfTask(taskId: number): Promise<number[]> {
    const rows = this.db.prepare(`SELECT annotation_id FROM ls_annotations WHERE task_id = ? AND deleted_ms IS NULL AND audit_id IS NOT NULL`).all(taskId) as { annotation_id: number }[];
    return Promise.resolve(rows.map((r) => r.annotation_id));
  }

  predictionOwner(predictionId: number): Promise<number | undefined> {
    const row = this.db.prepare(`SELECT annotation_id FROM ls_annotations WHERE prediction_id = ?`).get(predictionId) as { annotation_id: number } | undefined;
    return Promise.resolve(row?.annotation_id);
  }

  events(): Promise<QueueEventView[]> {
    const rows = this.db.prepare(`SELECT key, state, attempts, last_error, outcome, received_ms, done_ms FROM ls_events ORDER BY seq`).all() as {
      key: string;
      state: 'pending' | 'done' | 'failed';
      attempts: number;
      last_error: string | null;
      outcome: string | null;
      received_ms: number;
      done_ms: number | null;
    }[];
    return Promise.resolve(
      rows.map((r) => ({
        key: r.key,
        state: r.state,
        attempts: r.attempts,
        lastError: r.last_error,
        outcome: r.outcome === null ? null : (JSON.parse(r.outcome) as EventOutcome),
        receivedMs: r.received_ms,
        doneMs: r.done_ms,
      })),
    );
  }

  stats(nowMs: number): Promise<QueueStats> {
    const pending = this.db.prepare(`SELECT COUNT(*) AS n, MIN(received_ms) AS oldest FROM ls_events WHERE state = 'pending'`).get() as { n: number; oldest: number | null };
    const failed = this.db.prepare(`SELECT COUNT(*) AS n FROM ls_events WHERE state = 'failed'`).get() as { n: number };
    return Promise.resolve({ depth: pending.n, oldestMs: pending.oldest === null ? 0 : Math.max(0, nowMs - pending.oldest), failed: failed.n });
  }

  close(): Promise<void> {
    if (this.db.open) this.db.close();
    return Promise.resolve();
  }
}
