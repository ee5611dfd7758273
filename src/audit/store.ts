// The durable audit trail behind one interface, kept in embedded SQLite (sqlite-store.ts, the default) or a shared
// PostgreSQL (postgres-store.ts, ASM_FER_AUDIT_DB=postgres://...). Both give the same guarantees: a write returns only
// once its transaction is committed; the same queries (query.ts, summary.ts) answer list, cursor and summary; a
// database that cannot be reached, written or read answers AuditStoreUnavailable and is tried again later, so
// predictions never depend on it.
import { AuditStoreUnavailable } from '../errors.js';
import type { NewAuditRecord } from './judge.js';
import type { AuditedOutcome } from './live-stats.js';
import { listAudits, type AuditFilters, type AuditPage, type PageRequest } from './query.js';
import { fromRow, RECORD_COLUMNS, supersedeParams, toRow, type AuditRecord } from './record.js';
import type { Sql } from './sql.js';
import { summarise, type AuditSummary } from './summary.js';

/** After a failure the store waits this long before opening the database again, so a full disk is not hammered. */
const REOPEN_AFTER_MS = 1000;

export interface AuditStore {
  /** Where the trail is kept, for the log: a file, or a database URL without its password. */
  readonly location: string;
  /** Whether other processes write the same trail (PostgreSQL), so live windows are read from it, not kept here. */
  readonly shared: boolean;
  /** Whether the database is usable right now (false after a storage failure, until it opens again). */
  readonly available: boolean;
  /**
   * Commits all records in one transaction (all or none) before resolving; in the same transaction each record with
   * an itemId supersedes the current verdict of its label (record.ts, supersedeSql).
   */
  insert(records: readonly NewAuditRecord[]): Promise<void>;
  get(id: string): Promise<AuditRecord | undefined>;
  /**
   * Marks record `id` withdrawn (its label deleted by its annotator or tool) at `timeMs`, committed before it resolves;
   * idempotent: a record already withdrawn keeps its first time. False when there is no such record. Throws
   * AuditStoreUnavailable, like insert, when the database cannot be written (the caller retries later).
   */
  markWithdrawn(id: string, timeMs: number): Promise<boolean>;
  /** The stored image of record `id`: undefined when there is no such record, null when its image was not kept. */
  image(id: string): Promise<Buffer | null | undefined>;
  list(filters: AuditFilters, page: PageRequest): Promise<AuditPage>;
  /**
   * The last `perLabel` items of each of `labels` that `model` audited, oldest first within each label: what the live
   * windows hold. Walks the (label, seq) index backwards, so it reads about `perLabel` rows per label.
   */
  recentOutcomes(model: { name: string; version: string }, labels: readonly string[], perLabel: number): Promise<AuditedOutcome[]>;
  /** `classOrder`: the served model's classes, which order the summary's labels. */
  summary(filters: AuditFilters, classOrder: readonly string[]): Promise<AuditSummary>;
  close(): Promise<void>;
}

/** A storage failure: `down` when the database itself failed (back off, reopen), not when it is only busy. */
export interface StorageFailure {
  /** A short code for the log and the problem's detail (never the driver's message, which may name paths or hosts). */
  code: string;
  down: boolean;
}

/** What each database gives the store: its connection, its transactions and what its errors mean. */
export interface Backend extends Sql {
  readonly location: string;
  readonly shared: boolean;
  /** Opens the database (or checks it answers) and brings its layout up to date; throws when it cannot. */
  open(): Promise<void>;
  /** Commits `rows` (toRow values), then runs supersedeSql with each of `supersessions` in order, in one transaction, all or none. */
  insert(rows: unknown[][], supersessions: unknown[][]): Promise<void>;
  /** Runs WITHDRAW_SQL for (`timeMs`, `id`) in its own committed transaction; whether a record matched. */
  markWithdrawn(id: string, timeMs: number): Promise<boolean>;
  /** Drops what a failed database left open, so the next open() starts afresh. */
  reset(): Promise<void>;
  /** The storage failure `err` is, or undefined when it is not the storage's fault (a bug: reported as a 500). */
  failure(err: unknown): StorageFailure | undefined;
  close(): Promise<void>;
}

export interface StoreEvents {
  /** Called with the error at the start of each failure episode, for the log. */
  onFailure?: (err: unknown) => void;
  /** Called when the database opens again after a failure. */
  onRecovery?: () => void;
}

const unavailable = (code: string) => new AuditStoreUnavailable(`the audit trail cannot be written or read now (${code}); predictions still work`);

/** The AuditStore over either backend: the failure episodes, the back-off and the queries, written once. */
export class SqlAuditStore implements AuditStore {
  private ready = false;
  private opening: Promise<void> | undefined;
  private lastAttempt = 0;
  /** The code of the current failure; undefined while healthy. */
  private lastFailure: string | undefined;
  private closed = false;

  private constructor(
    private readonly backend: Backend,
    private readonly events: StoreEvents,
  ) {}

  /** Never rejects: a store that cannot open now is unavailable until a later attempt succeeds. */
  static async open(backend: Backend, events: StoreEvents = {}): Promise<SqlAuditStore> {
    const store = new SqlAuditStore(backend, events);
    await store.tryOpen();
    return store;
  }

  get location(): string {
    return this.backend.location;
  }

  get shared(): boolean {
    return this.backend.shared;
  }

  get available(): boolean {
    return this.ready;
  }

  insert(records: readonly NewAuditRecord[]): Promise<void> {
    const supersessions = records.map(supersedeParams).filter((p): p is unknown[] => p !== undefined);
    return this.run(() => this.backend.insert(records.map(toRow), supersessions));
  }

  markWithdrawn(id: string, timeMs: number): Promise<boolean> {
    return this.run(() => this.backend.markWithdrawn(id, timeMs));
  }

  get(id: string): Promise<AuditRecord | undefined> {
    return this.run(async (db) => {
      const [row] = await db.all(`SELECT ${RECORD_COLUMNS} FROM audits WHERE id = ?`, [id]);
      return row && fromRow(row);
    });
  }

  image(id: string): Promise<Buffer | null | undefined> {
    return this.run(async (db) => {
      const [row] = await db.all('SELECT image FROM audits WHERE id = ?', [id]);
      return row === undefined ? undefined : ((row.image as Buffer | null) ?? null);
    });
  }

  list(filters: AuditFilters, page: PageRequest): Promise<AuditPage> {
    return this.run((db) => listAudits(db, filters, page));
  }

  recentOutcomes(model: { name: string; version: string }, labels: readonly string[], perLabel: number): Promise<AuditedOutcome[]> {
    return this.run(async (db) => {
      const sql = 'SELECT label, label_probability, verdict FROM audits WHERE label = ? AND model_name = ? AND model_version = ? ORDER BY seq DESC LIMIT ?';
      const out: AuditedOutcome[] = [];
      for (const label of labels) {
        const rows = await db.all(sql, [label, model.name, model.version, perLabel]);
        for (const r of rows.reverse()) out.push({ label: String(r.label), labelProbability: Number(r.label_probability), verdict: r.verdict as AuditedOutcome['verdict'] });
      }
      return out;
    });
  }

  summary(filters: AuditFilters, classOrder: readonly string[]): Promise<AuditSummary> {
    return this.run((db) => summarise(db, filters, classOrder));
  }

  async close(): Promise<void> {
    this.closed = true;
    this.ready = false;
    await this.backend.close();
  }

  private async run<T>(fn: (db: Sql) => Promise<T>): Promise<T> {
    await this.connection();
    try {
      return await fn(this.backend);
    } catch (err) {
      const failure = this.backend.failure(err);
      if (failure === undefined) throw err;
      if (failure.down) await this.fail(err, failure.code);
      throw unavailable(failure.code);
    }
  }

  /** Resolves once the database is open, opening it when the last failure is old enough; else AuditStoreUnavailable. */
  private async connection(): Promise<void> {
    if (this.ready) return;
    if (this.closed) throw unavailable('closed');
    if (Date.now() - this.lastAttempt >= REOPEN_AFTER_MS) await this.tryOpen();
    if (!this.ready) throw unavailable(this.lastFailure ?? 'not open');
  }

  /** One attempt at a time: requests that arrive while it runs wait for its outcome. */
  private tryOpen(): Promise<void> {
    this.opening ??= (async () => {
      this.lastAttempt = Date.now();
      try {
        await this.backend.open();
        this.ready = true;
        if (this.lastFailure !== undefined) this.events.onRecovery?.();
        this.lastFailure = undefined;
      } catch (err) {
        await this.fail(err, this.backend.failure(err)?.code ?? codeOf(err));
      } finally {
        this.opening = undefined;
      }
    })();
    return this.opening;
  }

  /** Drops the connection so the next use reopens it: a remounted disk or a restarted server then works without a restart. */
  private async fail(err: unknown, code: string): Promise<void> {
    this.ready = false;
    await this.backend.reset().catch(() => undefined);
    if (this.lastFailure === undefined) this.events.onFailure?.(err);
    this.lastFailure = code;
    this.lastAttempt = Date.now();
  }
}

/** The error's `code` when it has one (driver codes such as SQLITE_FULL, ECONNREFUSED or a SQLSTATE), else 'error'. */
export function codeOf(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'error';
}
