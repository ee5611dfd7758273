// The little the audit trail's queries need from a database, so one set of queries (query.ts, summary.ts, record.ts)
// serves both SQLite and PostgreSQL: statements written with `?` parameters, rows as plain objects.
import type { Dialect } from './record.js';

export interface Sql {
  readonly dialect: Dialect;
  /** Runs one statement with `?` parameters; the rows it returns (none for a statement that returns no data). */
  all(sql: string, params?: readonly unknown[]): Promise<Record<string, unknown>[]>;
}

/** `?` parameters as PostgreSQL's `$1, $2, ...`; the trail's SQL holds no `?` in literals, so each one is a parameter. */
export function numbered(sql: string): string {
  let i = 0;
  return sql.replace(/\?/g, () => `$${++i}`);
}
