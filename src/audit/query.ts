// Filtered, cursor-paginated reads of the audit trail (newest first), shared by the list route and the summary.
import type Database from 'better-sqlite3';
import { RECORD_COLUMNS, fromRow, type AuditRecord } from './record.js';
import type { Verdict } from './judge.js';

/** Every filter is optional; `from` is inclusive, `to` exclusive. */
export interface AuditFilters {
  verdict?: readonly Verdict[] | undefined;
  label?: string | undefined;
  predicted?: string | undefined;
  annotatorId?: string | undefined;
  datasetId?: string | undefined;
  modelVersion?: string | undefined;
  from?: Date | undefined;
  to?: Date | undefined;
}

export interface PageRequest {
  limit: number;
  /** The sequence number decoded from a previous page's nextCursor: the page continues with older records. */
  before?: number | undefined;
}

export interface AuditPage {
  items: AuditRecord[];
  /** Pass back as `cursor` for the next page; null on the last page. */
  nextCursor: string | null;
}

/** The WHERE clause (possibly empty) and its positional parameters. */
export function whereClause(f: AuditFilters): { sql: string; params: unknown[] } {
  const terms: string[] = [];
  const params: unknown[] = [];
  const eq = (column: string, value: string | undefined) => {
    if (value === undefined) return;
    terms.push(`${column} = ?`);
    params.push(value);
  };
  if (f.verdict && f.verdict.length > 0) {
    terms.push(`verdict IN (${f.verdict.map(() => '?').join(', ')})`);
    params.push(...f.verdict);
  }
  eq('label', f.label);
  eq('predicted', f.predicted);
  eq('annotator_id', f.annotatorId);
  eq('dataset_id', f.datasetId);
  eq('model_version', f.modelVersion);
  if (f.from) {
    terms.push('time_ms >= ?');
    params.push(f.from.getTime());
  }
  if (f.to) {
    terms.push('time_ms < ?');
    params.push(f.to.getTime());
  }
  return { sql: terms.length > 0 ? `WHERE ${terms.join(' AND ')}` : '', params };
}

/** Cursors are opaque to clients: base64url of the last record's sequence number. */
export function encodeCursor(seq: number): string {
  return Buffer.from(`s${seq}`).toString('base64url');
}

/** The sequence number in `cursor`, or undefined when it is not one this service wrote. */
export function decodeCursor(cursor: string): number | undefined {
  const m = /^s(\d{1,15})$/.exec(Buffer.from(cursor, 'base64url').toString('latin1'));
  return m ? Number(m[1]) : undefined;
}

/** One page of records matching `filters`, newest first. */
export function listAudits(db: Database.Database, filters: AuditFilters, page: PageRequest): AuditPage {
  const where = whereClause(filters);
  let sql = where.sql;
  const params = [...where.params];
  if (page.before !== undefined) {
    sql = sql ? `${sql} AND seq < ?` : 'WHERE seq < ?';
    params.push(page.before);
  }
  // One row more than asked tells whether another page exists.
  const rows = db.prepare(`SELECT ${RECORD_COLUMNS} FROM audits ${sql} ORDER BY seq DESC LIMIT ?`).all(...params, page.limit + 1) as Record<string, unknown>[];
  const more = rows.length > page.limit;
  const kept = more ? rows.slice(0, page.limit) : rows;
  const last = kept[kept.length - 1];
  return { items: kept.map(fromRow), nextCursor: more && last ? encodeCursor(Number(last.seq)) : null };
}
