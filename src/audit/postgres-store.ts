// The shared audit trail: one PostgreSQL database (ASM_FER_AUDIT_DB=postgres://...) that every replica writes, through
// a bounded pool of connections (the `pg` driver). Each insert commits with synchronous_commit on before it resolves;
// inserts are serialised by a transaction-scoped advisory lock, so `seq` order is commit order and a cursor never
// skips a record that committed after the page it continues; the layout is migrated at open under another advisory
// lock, so replicas that start together migrate once.
import pg from 'pg';
import { insertSql, migrate, supersedeSql, WITHDRAW_SQL, type MigrationTarget } from './record.js';
import { numbered } from './sql.js';
import { codeOf, type Backend, type StorageFailure } from './store.js';

/** Advisory lock keys (any constants of this service; "asmf" and "asmm" in ASCII). */
const INSERT_LOCK = 0x61736d66;
const MIGRATION_LOCK = 0x61736d6d;

export interface PostgresOptions {
  /** postgres:// or postgresql:// URL (libpq's form; sslmode and the rest as the pg driver reads them). */
  url: string;
  /** Most connections this process holds. */
  poolSize: number;
  /** Longest wait for a connection, from a full pool or a slow server, before the request is answered 503. */
  acquireTimeoutMs: number;
  /** Longest a statement may run (server-side statement_timeout and the driver's own read timeout). */
  queryTimeoutMs: number;
}

/**
 * SQLSTATE classes and codes that mean the database, not the query, is at fault: 08 connection, 28 authorisation,
 * 3D no such database, 53 insufficient resources (53100 disk full, 53300 too many connections), 57 operator
 * intervention (shutdown, cancelled by statement_timeout), 58 system/I/O error, 25006 a read-only transaction (a
 * standby or default_transaction_read_only), 40P01 deadlock.
 */
const SQLSTATE_FAILURE = /^(08|28|3D|53|57|58)|^25006$|^40P01$/;
/** Socket errors on the way to the server. */
const NETWORK_FAILURE = /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|ENOENT)$/;
/** The driver's own errors, which carry no code, by message. */
const DRIVER_FAILURES: [RegExp, string][] = [
  [/^timeout exceeded when trying to connect/, 'connect-timeout'],
  [/Connection terminated/, 'connection-lost'],
  [/^Query read timeout/, 'query-timeout'],
  [/Client has encountered a connection error/, 'connection-lost'],
];

/** The URL with its password replaced, for the log. */
export function redactedUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://(unparsable URL)';
  }
}

/**
 * The storage failure `err` is (see SQLSTATE_FAILURE, NETWORK_FAILURE, DRIVER_FAILURES), or undefined when it is not
 * the database's fault. `poolFull`: every connection of the pool is open, so a connect timeout is a busy pool.
 */
export function postgresFailure(err: unknown, poolFull: boolean): StorageFailure | undefined {
  const code = codeOf(err);
  if (NETWORK_FAILURE.test(code)) return { code, down: true };
  if (/^[0-9A-Z]{5}$/.test(code)) return SQLSTATE_FAILURE.test(code) ? { code: `SQLSTATE ${code}`, down: code !== '53300' } : undefined;
  const message = err instanceof Error ? err.message : '';
  const known = DRIVER_FAILURES.find(([re]) => re.test(message));
  if (!known) return undefined;
  // Every connection busy and the wait for one over: the database is fine, this process has too much to write.
  if (known[1] === 'connect-timeout' && poolFull) return { code: 'pool-exhausted', down: false };
  return { code: known[1], down: true };
}

/**
 * `fn` inside BEGIN … COMMIT on a connection of `pool`, rolled back when it throws. `failure` classifies an error (as
 * `postgresFailure` does); a connection whose error says the database is down is destroyed, not reused.
 */
export async function inTransaction(
  pool: pg.Pool,
  fn: (client: pg.PoolClient) => Promise<void>,
  failure: (err: unknown) => StorageFailure | undefined,
): Promise<void> {
  const client = await pool.connect();
  let broken: unknown;
  // A connection that dies while checked out also emits 'error'; the query in flight rejects with it, which is
  // what is handled, so the event itself is dropped rather than left to crash the process.
  const dropped = (err: unknown) => (broken ??= err);
  client.on('error', dropped);
  try {
    await client.query('BEGIN');
    await fn(client);
    await client.query('COMMIT');
  } catch (err) {
    broken = err;
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.removeListener('error', dropped);
    // A connection that failed mid-transaction is not given back to the pool for reuse.
    client.release(broken instanceof Error && failure(broken)?.down === true ? broken : undefined);
  }
}

export class PostgresBackend implements Backend {
  readonly dialect = 'postgres';
  readonly shared = true;
  readonly location: string;
  private readonly pool: pg.Pool;

  constructor(private readonly opts: PostgresOptions) {
    this.location = redactedUrl(opts.url);
    this.pool = new pg.Pool({
      connectionString: opts.url,
      max: opts.poolSize,
      // Also bounds the wait for a free connection when all are busy: pool exhaustion answers 503, never hangs.
      connectionTimeoutMillis: opts.acquireTimeoutMs,
      idleTimeoutMillis: 30_000,
      statement_timeout: opts.queryTimeoutMs,
      query_timeout: opts.queryTimeoutMs + 1000,
      application_name: 'asm-fer',
    });
    // An idle connection that dies (server restarted) is dropped by the pool; the next query reports the failure.
    this.pool.on('error', () => undefined);
  }

  /** Checks that the server answers and brings the layout up to date, once for all replicas starting together. */
  async open(): Promise<void> {
    await this.transaction(async (client) => {
      await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      await client.query('CREATE TABLE IF NOT EXISTS asm_fer_schema (version INTEGER NOT NULL)');
      const { rows } = await client.query<{ version: number }>('SELECT version FROM asm_fer_schema');
      const before = rows[0]?.version ?? 0;
      const target: MigrationTarget = {
        dialect: 'postgres',
        exec: async (sql) => void (await client.query(sql)),
        all: async (sql, params = []) => (await client.query(numbered(sql), [...params])).rows as Record<string, unknown>[],
      };
      const after = await migrate(target, before);
      if (rows.length === 0) await client.query('INSERT INTO asm_fer_schema (version) VALUES ($1)', [after]);
      else if (after !== before) await client.query('UPDATE asm_fer_schema SET version = $1', [after]);
    });
  }

  async all(sql: string, params: readonly unknown[] = []): Promise<Record<string, unknown>[]> {
    return (await this.pool.query(numbered(sql), [...params])).rows as Record<string, unknown>[];
  }

  insert(rows: unknown[][], supersessions: unknown[][]): Promise<void> {
    return this.transaction(async (client) => {
      // SET LOCAL: a 200 means committed and flushed whatever the server's or role's default says.
      await client.query(`SET LOCAL synchronous_commit = on; SELECT pg_advisory_xact_lock(${INSERT_LOCK})`);
      await client.query(numbered(insertSql(rows.length)), rows.flat());
      // Under the same lock, so two replicas auditing the same label mark its records in commit order.
      for (const params of supersessions) await client.query(numbered(supersedeSql('postgres')), params);
    });
  }

  async markWithdrawn(id: string, timeMs: number): Promise<boolean> {
    let matched = false;
    await this.transaction(async (client) => {
      // As insert: committed and flushed before it resolves, whatever the server's default synchronous_commit.
      await client.query('SET LOCAL synchronous_commit = on');
      matched = ((await client.query(numbered(WITHDRAW_SQL), [timeMs, id])).rowCount ?? 0) > 0;
    });
    return matched;
  }

  failure(err: unknown): StorageFailure | undefined {
    return postgresFailure(err, this.pool.totalCount >= this.opts.poolSize);
  }

  /** The pool reconnects by itself: a failed connection has already left it. */
  reset(): Promise<void> {
    return Promise.resolve();
  }

  async close(): Promise<void> {
    if (!this.pool.ended) await this.pool.end();
  }

  private transaction(fn: (client: pg.PoolClient) => Promise<void>): Promise<void> {
    return inTransaction(this.pool, fn, (err) => this.failure(err));
  }
}
