// The Label Studio event queue in PostgreSQL: the tables ls_events, ls_annotations and ls_projects in the audit
// database (ASM_FER_AUDIT_DB=postgres://...), shared by every replica, so an event any replica received is taken by
// one of them and written back once, and a label map PUT to one replica is read by all.
//
// Claiming: one statement picks the oldest due event with SELECT ... FOR UPDATE SKIP LOCKED (replicas claiming at the
// same moment each lock a different row instead of queueing behind one another) and leases it to the caller:
// claimed_by names the claim, lease_until_ms says until when it holds. The lease, not the row lock, covers the work
// (seconds of Label Studio calls and inference), so no transaction stays open meanwhile; the worker renews it while it
// works. A replica that dies (kill -9, a lost node) stops renewing, and its event is claimed again once the lease has
// run out, counted as an attempt, so the next holder first looks for a prediction the dead one may have written.
// Every outcome (renew, complete, retry, fail) is recorded only under the caller's claim. Lease times are the
// replicas' clocks, as next_attempt_ms already is: keep them in step (NTP) to well within a lease.
//
// Layout: versioned in asm_fer_label_studio_schema (the trail's own version stays in asm_fer_schema), migrated at open
// in one transaction under an advisory lock, so replicas that start together migrate once. A database the queue cannot
// reach at start leaves it unavailable (AuditStoreUnavailable, 503 on the webhook) until a later call opens it, as the
// trail does; a layout newer than this service's stops the start.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import pg from 'pg';
import { inTransaction, postgresFailure, redactedUrl, type PostgresOptions } from '../audit/postgres-store.js';
import { AuditStoreUnavailable } from '../errors.js';
import type { AnnotationEvent, AnnotationState, EventOutcome, EventQueue, ProjectState, QueuedEvent, QueueEventView, QueueStats } from './queue.js';
import { eventKey } from './queue.js';

/** Advisory lock key of the queue's migrations ("asml" in ASCII; the trail's are "asmf" and "asmm"). */
const MIGRATION_LOCK = 0x61736d6c;
/** The channel on which an enqueue tells the other replicas there is work. */
const CHANNEL = 'asm_fer_ls_events';
/** After a failed open, the next call tries again only this much later, so a database that is down is not hammered. */
const REOPEN_AFTER_MS = 1000;
/** A replica records a project's latest webhook at most this often; heardSince allows for it. */
const HEARD_EVERY_MS = 1000;
/** Most connections of the queue's own pool: each statement is one short row operation, so a few serve many events. */
const MAX_POOL = 4;

/** Layout N is MIGRATIONS[N - 1] applied to layout N - 1 (0: an empty database). */
const MIGRATIONS: readonly string[] = [
  // 1: what label-studio.db holds at its layout 2, plus the claim (claimed_by, lease_until_ms), the project of each
  // event as a column (the sweep lists them), and each project's latest webhook (any replica's; see heardSince).
  `CREATE TABLE ls_events (
    seq BIGSERIAL PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    annotation_id BIGINT NOT NULL,
    project_id BIGINT NOT NULL,
    event JSONB NOT NULL,
    received_ms BIGINT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT NOT NULL,
    last_error TEXT,
    done_ms BIGINT,
    outcome JSONB,
    claimed_by TEXT,
    lease_until_ms BIGINT
  );
  CREATE INDEX ls_events_pending ON ls_events (annotation_id, seq) WHERE state = 'pending';
  CREATE INDEX ls_events_due ON ls_events (next_attempt_ms, seq) WHERE state = 'pending';
  CREATE INDEX ls_events_project ON ls_events (project_id);
  CREATE TABLE ls_annotations (
    annotation_id BIGINT PRIMARY KEY,
    task_id BIGINT NOT NULL,
    audit_id TEXT,
    prediction_id BIGINT,
    deleted_ms BIGINT
  );
  CREATE INDEX ls_annotations_prediction ON ls_annotations (prediction_id);
  CREATE INDEX ls_annotations_task ON ls_annotations (task_id);
  CREATE TABLE ls_projects (
    project_id BIGINT PRIMARY KEY,
    label_map TEXT,
    label_map_ms BIGINT,
    connected_ms BIGINT,
    swept_ms BIGINT,
    first_webhook_ms BIGINT,
    last_webhook_ms BIGINT,
    silent_since_ms BIGINT,
    missed INTEGER NOT NULL DEFAULT 0
  )`,
];
export const QUEUE_LAYOUT = MIGRATIONS.length;

/** A database whose queue layout is newer than this service's: a start with it must stop, not write an unknown layout. */
export class QueueLayoutTooNew extends Error {
  override name = 'QueueLayoutTooNew';
}

/** int8 columns come back as strings from the driver; the values here (ids, epoch ms, counts) fit a double. */
const num = (v: unknown): number => Number(v);
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

const projectState = (r: Record<string, unknown>): ProjectState => ({
  projectId: num(r.project_id),
  // TEXT, not JSONB: the map comes back with its keys in the order they were PUT, as from SQLite.
  labelMap: r.label_map === null ? null : (JSON.parse(r.label_map as string) as Record<string, string>),
  labelMapMs: numOrNull(r.label_map_ms),
  connectedMs: numOrNull(r.connected_ms),
  sweptMs: numOrNull(r.swept_ms),
  firstWebhookMs: numOrNull(r.first_webhook_ms),
  silentSinceMs: numOrNull(r.silent_since_ms),
  missed: num(r.missed),
});

/** The first unfinished event of each annotation: only it can be claimed, the ones behind it wait for it. */
const HEAD = `NOT EXISTS (SELECT 1 FROM ls_events p WHERE p.state = 'pending' AND p.annotation_id = e.annotation_id AND p.seq < e.seq)`;
/** What an outcome needs: the event is still pending and still under the caller's claim. */
const HELD = `seq = $1 AND claimed_by = $2 AND lease_until_ms IS NOT NULL AND state = 'pending'`;

export class PostgresEventQueue implements EventQueue {
  readonly shared = true;
  readonly location: string;
  /** This process among the replicas, in every claim it makes: host, pid and a random part (pids repeat across hosts). */
  readonly replica = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  private claims = 0;
  private readonly pool: pg.Pool;
  private ready = false;
  private opening: Promise<void> | undefined;
  private lastAttemptMs = 0;
  private lastFailure: string | undefined;
  private closed = false;
  private readonly listeners: (() => void)[] = [];
  private listener: pg.Client | undefined;
  private relisten: NodeJS.Timeout | undefined;

  private constructor(private readonly opts: PostgresOptions) {
    this.location = redactedUrl(opts.url);
    this.pool = new pg.Pool({
      connectionString: opts.url,
      max: Math.min(MAX_POOL, opts.poolSize),
      connectionTimeoutMillis: opts.acquireTimeoutMs,
      idleTimeoutMillis: 30_000,
      statement_timeout: opts.queryTimeoutMs,
      query_timeout: opts.queryTimeoutMs + 1000,
      application_name: 'asm-fer label-studio queue',
      // Every write is committed and flushed before it resolves (the webhook's 2xx means durable), whatever the
      // server's or role's default; set once per connection, since the queue's writes are single statements.
      options: '-c synchronous_commit=on',
    });
    this.pool.on('error', () => undefined);
  }

  /**
   * The queue on `opts.url`, its layout brought up to date when the database answers; one that does not answer now is
   * opened by a later call. Throws QueueLayoutTooNew.
   */
  static async open(opts: PostgresOptions): Promise<PostgresEventQueue> {
    const q = new PostgresEventQueue(opts);
    const err = await q.tryOpen();
    if (err instanceof QueueLayoutTooNew) {
      await q.close();
      throw err;
    }
    return q;
  }

  /** Whether the layout is in place and the last open worked (false while the database has not answered yet). */
  get available(): boolean {
    return this.ready;
  }

  async enqueue(event: AnnotationEvent, nowMs: number): Promise<{ queued: boolean }> {
    // The notification goes out when the insert commits, in the same statement: never for an event not yet visible.
    const rows = await this.all(
      `WITH added AS (
         INSERT INTO ls_events (key, annotation_id, project_id, event, received_ms, state, next_attempt_ms)
         VALUES ($1, $2, $3, $4, $5, 'pending', $5) ON CONFLICT (key) DO NOTHING RETURNING seq)
       SELECT seq, pg_notify('${CHANNEL}', '') FROM added`,
      [eventKey(event), event.annotationId, event.projectId, JSON.stringify(event), nowMs],
    );
    return { queued: rows.length === 1 };
  }

  async claim(nowMs: number, leaseMs: number): Promise<QueuedEvent | undefined> {
    const claim = `${this.replica}#${++this.claims}`;
    const leaseUntilMs = nowMs + leaseMs;
    // SKIP LOCKED: a row another replica is claiming right now is passed over, not waited for; the lease condition is
    // checked again on the row as it is once locked, so an event claimed a moment ago is never handed out twice.
    const [row] = await this.all(
      `WITH next AS (
         SELECT seq, lease_until_ms IS NOT NULL AS reclaimed FROM ls_events e
         WHERE state = 'pending' AND next_attempt_ms <= $1 AND (lease_until_ms IS NULL OR lease_until_ms <= $1) AND ${HEAD}
         ORDER BY next_attempt_ms, seq LIMIT 1
         FOR UPDATE SKIP LOCKED)
       UPDATE ls_events e SET
         attempts = e.attempts + CASE WHEN next.reclaimed THEN 1 ELSE 0 END,
         last_error = CASE WHEN next.reclaimed THEN 'lease-expired' ELSE e.last_error END,
         claimed_by = $2, lease_until_ms = $3
       FROM next WHERE e.seq = next.seq
       RETURNING e.seq, e.key, e.event, e.received_ms, e.attempts, next.reclaimed`,
      [nowMs, claim, leaseUntilMs],
    );
    if (!row) return undefined;
    return {
      seq: num(row.seq),
      key: row.key as string,
      event: row.event as AnnotationEvent,
      receivedMs: num(row.received_ms),
      attempts: num(row.attempts),
      claim,
      leaseUntilMs,
      reclaimed: row.reclaimed === true,
    };
  }

  async renew(seq: number, claim: string, untilMs: number): Promise<boolean> {
    return (await this.count(`UPDATE ls_events SET lease_until_ms = $3 WHERE ${HELD}`, [seq, claim, untilMs])) === 1;
  }

  async nextDueMs(): Promise<number | undefined> {
    // A leased event falls due when its lease runs out: if its holder died, that is when another replica takes it.
    const [row] = await this.all(`SELECT MIN(GREATEST(next_attempt_ms, COALESCE(lease_until_ms, 0))) AS due FROM ls_events e WHERE state = 'pending' AND ${HEAD}`);
    return row?.due === null || row?.due === undefined ? undefined : num(row.due);
  }

  async complete(seq: number, claim: string, outcome: EventOutcome, nowMs: number): Promise<boolean> {
    const sql = `UPDATE ls_events SET state = 'done', done_ms = $3, outcome = $4, attempts = attempts + 1, last_error = NULL, lease_until_ms = NULL WHERE ${HELD}`;
    return (await this.count(sql, [seq, claim, nowMs, JSON.stringify(outcome)])) === 1;
  }

  async retry(seq: number, claim: string, reason: string, atMs: number): Promise<boolean> {
    const sql = `UPDATE ls_events SET attempts = attempts + 1, last_error = $3, next_attempt_ms = $4, lease_until_ms = NULL WHERE ${HELD}`;
    return (await this.count(sql, [seq, claim, reason, atMs])) === 1;
  }

  async fail(seq: number, claim: string, reason: string, nowMs: number): Promise<boolean> {
    const sql = `UPDATE ls_events SET state = 'failed', attempts = attempts + 1, last_error = $3, done_ms = $4, lease_until_ms = NULL WHERE ${HELD}`;
    return (await this.count(sql, [seq, claim, reason, nowMs])) === 1;
  }

  /**
   * LISTENs on one connection of its own (outside the pool), reconnecting a second after it drops; each (re)connection
   * also calls the listeners once, for whatever was queued while it was not listening.
   */
  onEnqueued(listener: () => void): void {
    this.listeners.push(listener);
    if (this.listeners.length === 1) void this.listen();
  }

  async annotation(annotationId: number): Promise<AnnotationState | undefined> {
    const [r] = await this.all(`SELECT annotation_id, task_id, audit_id, prediction_id, deleted_ms FROM ls_annotations WHERE annotation_id = $1`, [annotationId]);
    return r && { annotationId: num(r.annotation_id), taskId: num(r.task_id), auditId: r.audit_id as string | null, predictionId: numOrNull(r.prediction_id), deletedMs: numOrNull(r.deleted_ms) };
  }

  async saveAnnotation(s: AnnotationState): Promise<void> {
    await this.all(
      `INSERT INTO ls_annotations (annotation_id, task_id, audit_id, prediction_id, deleted_ms) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (annotation_id) DO UPDATE SET task_id = excluded.task_id, audit_id = excluded.audit_id, prediction_id = excluded.prediction_id, deleted_ms = excluded.deleted_ms`,
      [s.annotationId, s.taskId, s.auditId, s.predictionId, s.deletedMs],
    );
  }

  async projects(): Promise<number[]> {
    const rows = await this.all(`SELECT project_id AS p FROM ls_events WHERE project_id > 0 UNION SELECT project_id AS p FROM ls_projects WHERE connected_ms IS NOT NULL ORDER BY p`);
    return rows.map((r) => num(r.p));
  }

  async project(projectId: number): Promise<ProjectState | undefined> {
    const [row] = await this.all(`SELECT * FROM ls_projects WHERE project_id = $1`, [projectId]);
    return row && projectState(row);
  }

  async projectStates(): Promise<ProjectState[]> {
    return (await this.all(`SELECT * FROM ls_projects ORDER BY project_id`)).map(projectState);
  }

  async setLabelMap(projectId: number, labelMap: Readonly<Record<string, string>> | null, nowMs: number): Promise<void> {
    await this.all(
      `INSERT INTO ls_projects (project_id, label_map, label_map_ms) VALUES ($1, $2, $3)
       ON CONFLICT (project_id) DO UPDATE SET label_map = excluded.label_map, label_map_ms = excluded.label_map_ms`,
      [projectId, labelMap === null ? null : JSON.stringify(labelMap), labelMap === null ? null : nowMs],
    );
  }

  async markConnected(projectId: number, nowMs: number): Promise<void> {
    await this.all(`INSERT INTO ls_projects (project_id, connected_ms) VALUES ($1, $2) ON CONFLICT (project_id) DO UPDATE SET connected_ms = excluded.connected_ms`, [projectId, nowMs]);
  }

  async markSwept(projectId: number, nowMs: number): Promise<void> {
    await this.all(`INSERT INTO ls_projects (project_id, swept_ms) VALUES ($1, $2) ON CONFLICT (project_id) DO UPDATE SET swept_ms = excluded.swept_ms`, [projectId, nowMs]);
  }

  async noteWebhook(projectId: number, nowMs: number): Promise<void> {
    // One statement that writes only when something changes: the first webhook, the end of a silence, or a latest
    // webhook more than HEARD_EVERY_MS newer than the one stored (every webhook comes through here, on every replica).
    await this.all(
      `INSERT INTO ls_projects (project_id, first_webhook_ms, last_webhook_ms) VALUES ($1, $2, $2)
       ON CONFLICT (project_id) DO UPDATE SET
         first_webhook_ms = COALESCE(ls_projects.first_webhook_ms, excluded.first_webhook_ms), silent_since_ms = NULL, missed = 0,
         last_webhook_ms = GREATEST(ls_projects.last_webhook_ms, excluded.last_webhook_ms)
       WHERE ls_projects.first_webhook_ms IS NULL OR ls_projects.silent_since_ms IS NOT NULL OR ls_projects.last_webhook_ms IS NULL
         OR ls_projects.last_webhook_ms < excluded.last_webhook_ms - ${HEARD_EVERY_MS}`,
      [projectId, nowMs],
    );
  }

  /** From the latest webhook any replica stored, which may be up to HEARD_EVERY_MS older than the latest one received. */
  async heardSince(projectId: number, sinceMs: number): Promise<boolean> {
    const [row] = await this.all(`SELECT last_webhook_ms FROM ls_projects WHERE project_id = $1`, [projectId]);
    const last = numOrNull(row?.last_webhook_ms);
    return last !== null && last >= sinceMs - HEARD_EVERY_MS;
  }

  async markSilent(projectId: number, missed: number, nowMs: number): Promise<void> {
    await this.all(
      `INSERT INTO ls_projects (project_id, silent_since_ms, missed) VALUES ($1, $2, $3)
       ON CONFLICT (project_id) DO UPDATE SET silent_since_ms = COALESCE(ls_projects.silent_since_ms, excluded.silent_since_ms), missed = ls_projects.missed + excluded.missed`,
      [projectId, nowMs, missed],
    );
  }

  async hasEvent(annotationId: number, updatedAt: string): Promise<boolean> {
    const keys = (['ANNOTATION_CREATED', 'ANNOTATION_UPDATED'] as const).map((action) => eventKey({ annotationId, action, updatedAt }));
    return (await this.all(`SELECT 1 FROM ls_events WHERE key IN ($1, $2)`, keys)).length > 0;
  }

  async liveAnnotationsOfTask(taskId: number): Promise<number[]> {
    const rows = await this.all(`SELECT annotation_id FROM ls_annotations WHERE task_id = $1 AND deleted_ms IS NULL AND audit_id IS NOT NULL ORDER BY annotation_id`, [taskId]);
    return rows.map((r) => num(r.annotation_id));
  }

  async predictionOwner(predictionId: number): Promise<number | undefined> {
    const [row] = await this.all(`SELECT annotation_id FROM ls_annotations WHERE prediction_id = $1`, [predictionId]);
    return row && num(row.annotation_id);
  }

  async events(): Promise<QueueEventView[]> {
    const rows = await this.all(`SELECT key, state, attempts, last_error, outcome, received_ms, done_ms FROM ls_events ORDER BY seq`);
    return rows.map((r) => ({
      key: r.key as string,
      state: r.state as QueueEventView['state'],
      attempts: num(r.attempts),
      lastError: r.last_error as string | null,
      outcome: (r.outcome as EventOutcome | null) ?? null,
      receivedMs: num(r.received_ms),
      doneMs: numOrNull(r.done_ms),
    }));
  }

  async stats(nowMs: number): Promise<QueueStats> {
    const [r] = await this.all(
      `SELECT COUNT(*) FILTER (WHERE state = 'pending') AS depth, MIN(received_ms) FILTER (WHERE state = 'pending') AS oldest, COUNT(*) FILTER (WHERE state = 'failed') AS failed
       FROM ls_events WHERE state IN ('pending', 'failed')`,
    );
    const oldest = numOrNull(r?.oldest);
    return { depth: num(r?.depth ?? 0), oldestMs: oldest === null ? 0 : Math.max(0, nowMs - oldest), failed: num(r?.failed ?? 0) };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.ready = false;
    clearTimeout(this.relisten);
    const listener = this.listener;
    this.listener = undefined;
    await listener?.end().catch(() => undefined);
    if (!this.pool.ended) await this.pool.end();
  }

  // ---- the connection ----------------------------------------------------------------------------------------------

  /** Runs one statement once the layout is in place; a storage failure becomes AuditStoreUnavailable (503, transient). */
  private async all(sql: string, params: readonly unknown[] = []): Promise<Record<string, unknown>[]> {
    return (await this.query(sql, params)).rows as Record<string, unknown>[];
  }

  private async count(sql: string, params: readonly unknown[]): Promise<number> {
    return (await this.query(sql, params)).rowCount ?? 0;
  }

  private async query(sql: string, params: readonly unknown[]): Promise<pg.QueryResult> {
    await this.connection();
    try {
      return await this.pool.query(sql, [...params]);
    } catch (err) {
      const failure = postgresFailure(err, this.pool.totalCount >= Math.min(MAX_POOL, this.opts.poolSize));
      if (failure === undefined) throw err;
      throw unavailable(failure.code);
    }
  }

  private async connection(): Promise<void> {
    if (this.ready) return;
    if (this.closed) throw unavailable('closed');
    if (Date.now() - this.lastAttemptMs >= REOPEN_AFTER_MS) await this.tryOpen();
    if (!this.ready) throw unavailable(this.lastFailure ?? 'not open');
  }

  /** One attempt at a time; resolves with the error it met, if any (the layout stays in place once migrated). */
  private tryOpen(): Promise<unknown> {
    const attempt = (this.opening ??= (async () => {
      this.lastAttemptMs = Date.now();
      try {
        await this.migrate();
        this.ready = true;
        this.lastFailure = undefined;
      } catch (err) {
        this.lastFailure = postgresFailure(err, false)?.code ?? (err instanceof QueueLayoutTooNew ? 'layout-too-new' : 'error');
        throw err;
      } finally {
        this.opening = undefined;
      }
    })());
    return attempt.then(
      () => undefined,
      (err: unknown) => err,
    );
  }

  private migrate(): Promise<void> {
    return inTransaction(
      this.pool,
      async (client) => {
        await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
        await client.query('CREATE TABLE IF NOT EXISTS asm_fer_label_studio_schema (version INTEGER NOT NULL)');
        const { rows } = await client.query<{ version: number }>('SELECT version FROM asm_fer_label_studio_schema');
        const before = rows[0]?.version ?? 0;
        if (before > QUEUE_LAYOUT) throw new QueueLayoutTooNew(`the Label Studio queue's layout ${before} in the audit database is newer than this service's ${QUEUE_LAYOUT}`);
        for (let v = before + 1; v <= QUEUE_LAYOUT; v++) await client.query(MIGRATIONS[v - 1] as string);
        if (rows.length === 0) await client.query('INSERT INTO asm_fer_label_studio_schema (version) VALUES ($1)', [QUEUE_LAYOUT]);
        else if (before !== QUEUE_LAYOUT) await client.query('UPDATE asm_fer_label_studio_schema SET version = $1', [QUEUE_LAYOUT]);
      },
      (err) => postgresFailure(err, false),
    );
  }

  private notify(): void {
    for (const l of this.listeners) l();
  }

  private async listen(): Promise<void> {
    if (this.closed) return;
    const client = new pg.Client({ connectionString: this.opts.url, application_name: 'asm-fer label-studio listener', connectionTimeoutMillis: this.opts.acquireTimeoutMs });
    this.listener = client;
    let dropped = false;
    const again = () => {
      if (dropped) return;
      dropped = true;
      client.end().catch(() => undefined);
      if (this.listener !== client || this.closed) return;
      this.listener = undefined;
      this.relisten = setTimeout(() => void this.listen(), REOPEN_AFTER_MS);
      this.relisten.unref();
    };
    client.on('error', again);
    client.on('end', again);
    client.on('notification', () => this.notify());
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}`);
      this.notify();
    } catch {
      again();
    }
  }
}

function unavailable(code: string): AuditStoreUnavailable {
  return new AuditStoreUnavailable(`the Label Studio queue (in the audit database) cannot be written or read now (${code}); the sweep finds what a refused webhook brought`);
}
