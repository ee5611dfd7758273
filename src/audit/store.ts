// The durable audit trail: one SQLite database (WAL, synchronous=FULL) under ASM_FER_DATA_DIR. A write returns only
// once its transaction is committed; a store that cannot be opened or written answers AuditStoreUnavailable and tries
// again later, so predictions never depend on it.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { AuditStoreUnavailable } from '../errors.js';
import type { AuditedOutcome } from './live-stats.js';
import { listAudits, type AuditFilters, type AuditPage, type PageRequest } from './query.js';
import { fromRow, INSERT_SQL, MIGRATIONS, RECORD_COLUMNS, SCHEMA_SQL, SCHEMA_VERSION, toRow, type AuditRecord } from './record.js';
import type { NewAuditRecord } from './judge.js';
import { summarise, type AuditSummary } from './summary.js';

export const DB_FILE = 'audits.db';

/** After a failure the store waits this long before opening the database again, so a full disk is not hammered. */
const REOPEN_AFTER_MS = 1000;

/**
 * SQLite result codes that mean the storage, not the query, is at fault (full, read-only, I/O, locked, unopenable,
 * corrupt): the store reports itself unavailable instead of a 500.
 */
const STORAGE_FAILURE = /^SQLITE_(FULL|READONLY|IOERR|CANTOPEN|BUSY|LOCKED|CORRUPT|NOTADB|PERM|NOMEM)/;

export interface StoreOptions {
  dir: string;
  /** Cap on the database size (SQLite max_page_count); reaching it is reported like a full disk. */
  maxBytes?: number | undefined;
  /** Called with the error at the start of each failure episode, for the log. */
  onFailure?: (err: unknown) => void;
  /** Called when the database opens again after a failure. */
  onRecovery?: () => void;
}

function codeOf(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : 'error';
}

const unavailable = (code: string) => new AuditStoreUnavailable(`the audit trail cannot be written or read now (${code}); predictions still work`);

export class AuditStore {
  private db: Database.Database | undefined;
  private lastAttempt = 0;
  /** The error code of the current failure (never its message, which may name paths); undefined while healthy. */
  private lastFailure: string | undefined;

  private constructor(private readonly opts: StoreOptions) {}

  /** Never throws: a store that cannot open now is unavailable until a later attempt succeeds. */
  static open(opts: StoreOptions): AuditStore {
    const store = new AuditStore(opts);
    store.tryOpen();
    return store;
  }

  get file(): string {
    return path.join(path.resolve(this.opts.dir), DB_FILE);
  }

  /** Whether the database is open right now (false after a storage failure, until it reopens). */
  get available(): boolean {
    return this.db !== undefined;
  }

  /** Commits all records in one transaction (all or none) before returning. */
  insert(records: readonly NewAuditRecord[]): void {
    this.run((db) => {
      const stmt = db.prepare(INSERT_SQL);
      db.transaction(() => {
        for (const r of records) stmt.run(toRow(r));
      })();
    });
  }

  get(id: string): AuditRecord | undefined {
    return this.run((db) => {
      const row = db.prepare(`SELECT ${RECORD_COLUMNS} FROM audits WHERE id = ?`).get(id) as Record<string, unknown> | undefined;
      return row && fromRow(row);
    });
  }

  /** The stored image of record `id`: undefined when there is no such record, null when its image was not kept. */
  image(id: string): Buffer | null | undefined {
    return this.run((db) => {
      const row = db.prepare(`SELECT image FROM audits WHERE id = ?`).get(id) as { image: Buffer | null } | undefined;
      return row === undefined ? undefined : row.image;
    });
  }

  list(filters: AuditFilters, page: PageRequest): AuditPage {
    return this.run((db) => listAudits(db, filters, page));
  }

  /**
   * The last `perLabel` items of each of `labels` that `model` audited, oldest first within each label: what the live
   * windows held. Walks the (label, seq) index backwards, so it reads about `perLabel` rows per label.
   */
  recentOutcomes(model: { name: string; version: string }, labels: readonly string[], perLabel: number): AuditedOutcome[] {
    return this.run((db) => {
      const stmt = db.prepare(
        'SELECT label, label_probability, verdict FROM audits WHERE label = ? AND model_name = ? AND model_version = ? ORDER BY seq DESC LIMIT ?',
      );
      return labels.flatMap((label) =>
        (stmt.all(label, model.name, model.version, perLabel) as { label: string; label_probability: number; verdict: AuditedOutcome['verdict'] }[])
          .reverse()
          .map((r) => ({ label: r.label, labelProbability: r.label_probability, verdict: r.verdict })),
      );
    });
  }

  /** `classOrder`: the served model's classes, which order the summary's labels. */
  summary(filters: AuditFilters, classOrder: readonly string[]): AuditSummary {
    return this.run((db) => summarise(db, filters, classOrder));
  }

  close(): void {
    this.db?.close();
    this.db = undefined;
  }

  private run<T>(fn: (db: Database.Database) => T): T {
    const db = this.connection();
    try {
      return fn(db);
    } catch (err) {
      const code = codeOf(err);
      if (!STORAGE_FAILURE.test(code)) throw err;
      this.fail(err);
      throw unavailable(code);
    }
  }

  /** The open database, opening it when the last failure is old enough; throws AuditStoreUnavailable otherwise. */
  private connection(): Database.Database {
    if (this.db) return this.db;
    if (Date.now() - this.lastAttempt >= REOPEN_AFTER_MS) this.tryOpen();
    if (this.db) return this.db;
    throw unavailable(this.lastFailure ?? 'not open');
  }

  private tryOpen(): void {
    this.lastAttempt = Date.now();
    let db: Database.Database | undefined;
    try {
      mkdirSync(this.opts.dir, { recursive: true });
      db = new Database(this.file);
      db.pragma('journal_mode = WAL');
      // FULL: a commit is on disk (WAL fsynced) before the 200, so even a power cut loses nothing acknowledged.
      db.pragma('synchronous = FULL');
      db.pragma('busy_timeout = 2000');
      if (this.opts.maxBytes !== undefined) {
        const pageSize = db.pragma('page_size', { simple: true }) as number;
        db.pragma(`max_page_count = ${Math.max(1, Math.floor(this.opts.maxBytes / pageSize))}`);
      }
      migrate(db);
      this.db = db;
      if (this.lastFailure !== undefined) this.opts.onRecovery?.();
      this.lastFailure = undefined;
    } catch (err) {
      db?.close();
      this.fail(err);
    }
  }

  /** Closes the connection so the next use reopens it: a remounted or freed disk then works again without a restart. */
  private fail(err: unknown): void {
    this.close();
    if (this.lastFailure === undefined) this.opts.onFailure?.(err);
    this.lastFailure = codeOf(err);
    this.lastAttempt = Date.now();
  }
}

/** Creates the latest layout in a new database, or upgrades an older one step by step, in one transaction. */
function migrate(db: Database.Database): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > SCHEMA_VERSION) throw new Error(`audit database layout ${version} is newer than this service's ${SCHEMA_VERSION}`);
  db.transaction(() => {
    if (version === 0) db.exec(SCHEMA_SQL);
    for (let v = version === 0 ? SCHEMA_VERSION : version; v < SCHEMA_VERSION; v++) {
      const step = MIGRATIONS[v] as (typeof MIGRATIONS)[number];
      if (typeof step === 'string') db.exec(step);
      else step(db);
    }
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  })();
}
