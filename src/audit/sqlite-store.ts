// The embedded audit trail: one SQLite database (WAL, synchronous=FULL) under ASM_FER_DATA_DIR, used by one process.
// better-sqlite3 is synchronous, so each call finishes before the promise it returns settles: no statement of one
// request interleaves with another's.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { insertSql, migrate, supersedeSql, WITHDRAW_SQL, type MigrationTarget } from './record.js';
import { codeOf, type Backend, type StorageFailure } from './store.js';

export const DB_FILE = 'audits.db';

/**
 * SQLite result codes that mean the storage, not the query, is at fault (full, read-only, I/O, locked, unopenable,
 * corrupt): the store reports itself unavailable instead of a 500.
 */
const STORAGE_FAILURE = /^SQLITE_(FULL|READONLY|IOERR|CANTOPEN|BUSY|LOCKED|CORRUPT|NOTADB|PERM|NOMEM)/;

/**
 * Opens (creating when missing) a SQLite file with the durability both of the service's files need: WAL, and
 * synchronous=FULL so a commit is on disk (WAL fsynced) before the answer that acknowledges it, even across a power
 * cut. The audit trail and the Label Studio queue share this one setting.
 */
export function openDurable(file: string): Database.Database {
  const db = new Database(file);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('busy_timeout = 2000');
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}

export interface SqliteOptions {
  dir: string;
  /** Cap on the database size (SQLite max_page_count); reaching it is reported like a full disk. */
  maxBytes?: number | undefined;
}

export class SqliteBackend implements Backend {
  readonly dialect = 'sqlite';
  readonly shared = false;
  private db: Database.Database | undefined;

  constructor(private readonly opts: SqliteOptions) {}

  get location(): string {
    return path.join(path.resolve(this.opts.dir), DB_FILE);
  }

  async open(): Promise<void> {
    let db: Database.Database | undefined;
    try {
      mkdirSync(this.opts.dir, { recursive: true });
      db = openDurable(this.location);
      if (this.opts.maxBytes !== undefined) {
        const pageSize = db.pragma('page_size', { simple: true }) as number;
        db.pragma(`max_page_count = ${Math.max(1, Math.floor(this.opts.maxBytes / pageSize))}`);
      }
      await migrateFile(db);
      this.db = db;
    } catch (err) {
      db?.close();
      throw err;
    }
  }

  all(sql: string, params: readonly unknown[] = []): Promise<Record<string, unknown>[]> {
    return Promise.resolve(query(this.connection(), sql, params));
  }

  insert(rows: unknown[][], supersessions: unknown[][]): Promise<void> {
    const db = this.connection();
    const stmt = db.prepare(insertSql(1));
    const supersede = db.prepare(supersedeSql('sqlite'));
    db.transaction(() => {
      for (const row of rows) stmt.run(...row);
      for (const params of supersessions) supersede.run(...params);
    })();
    return Promise.resolve();
  }

  markWithdrawn(id: string, timeMs: number): Promise<boolean> {
    // One statement is its own transaction, committed (synchronous=FULL) before run() returns.
    return Promise.resolve(this.connection().prepare(WITHDRAW_SQL).run(timeMs, id).changes > 0);
  }

  failure(err: unknown): StorageFailure | undefined {
    const code = codeOf(err);
    return STORAGE_FAILURE.test(code) || code === 'not open' ? { code, down: true } : undefined;
  }

  /** Closing the failed connection also checkpoints the WAL into the database, which frees the room the log held. */
  reset(): Promise<void> {
    this.db?.close();
    this.db = undefined;
    return Promise.resolve();
  }

  close(): Promise<void> {
    return this.reset();
  }

  private connection(): Database.Database {
    if (this.db) return this.db;
    throw Object.assign(new Error('the audit database is not open'), { code: 'not open' });
  }
}

function query(db: Database.Database, sql: string, params: readonly unknown[]): Record<string, unknown>[] {
  const stmt = db.prepare(sql);
  if (stmt.reader) return stmt.all(...params) as Record<string, unknown>[];
  stmt.run(...params);
  return [];
}

/**
 * Creates or upgrades the layout in one IMMEDIATE transaction, so a second process opening the same file waits for it
 * rather than migrating too. PRAGMA user_version holds the layout version.
 */
async function migrateFile(db: Database.Database): Promise<void> {
  const target: MigrationTarget = {
    dialect: 'sqlite',
    exec: (sql) => Promise.resolve(void db.exec(sql)),
    all: (sql, params = []) => Promise.resolve(query(db, sql, params)),
  };
  db.exec('BEGIN IMMEDIATE');
  try {
    const version = await migrate(target, db.pragma('user_version', { simple: true }) as number);
    db.pragma(`user_version = ${version}`);
    db.exec('COMMIT');
  } catch (err) {
    if (db.inTransaction) db.exec('ROLLBACK');
    throw err;
  }
}
