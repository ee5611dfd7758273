// Filtered, cursor-paginated reads of the audit trail (newest first, or ranked by label quality or mistakenness),
// shared by the list route and the summary.
import { RECORD_COLUMNS, fromRow, type AuditRecord } from './record.js';
import type { Sql } from './sql.js';
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
  /** Records whose quality is at most this. */
  maxQuality?: number | undefined;
  /** Records whose mistakenness is at least this. */
  minMistakenness?: number | undefined;
  /** true: only withdrawn records; false: only records whose label stands. */
  withdrawn?: boolean | undefined;
  /** true: only current verdicts (neither superseded nor withdrawn); false: only records superseded or withdrawn. */
  current?: boolean | undefined;
}

/** time: newest first; quality: lowest (worst label) first; mistakenness: highest first. Ties: newest first. */
export type AuditSort = 'time' | 'quality' | 'mistakenness';

/** Where the previous page stopped: its last record's sequence number and, for a ranked sort, its score. */
export type Cursor = { sort: 'time'; seq: number } | { sort: 'quality' | 'mistakenness'; seq: number; value: number };

export interface PageRequest {
  limit: number;
  /** time when absent. */
  sort?: AuditSort | undefined;
  /** The decoded nextCursor of a previous page with the same sort: the page continues after it. */
  after?: Cursor | undefined;
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
  if (f.maxQuality !== undefined) {
    terms.push('quality <= ?');
    params.push(f.maxQuality);
  }
  if (f.minMistakenness !== undefined) {
    terms.push('mistakenness >= ?');
    params.push(f.minMistakenness);
  }
  if (f.withdrawn !== undefined) terms.push(f.withdrawn ? 'withdrawn_ms IS NOT NULL' : 'withdrawn_ms IS NULL');
  if (f.current !== undefined) terms.push(f.current ? '(superseded_ms IS NULL AND withdrawn_ms IS NULL)' : '(superseded_ms IS NOT NULL OR withdrawn_ms IS NOT NULL)');
  return { sql: terms.length > 0 ? `WHERE ${terms.join(' AND ')}` : '', params };
}

const SORT_TAG = { time: 's', quality: 'q', mistakenness: 'm' } as const;

/**
 * Cursors are opaque to clients: base64url of a sort tag, the last record's sequence number and, for a ranked sort,
 * its score as JavaScript prints it (which reads back to the same double). A time cursor is `s<seq>`, as before
 * ranked sorts existed, so cursors handed out earlier stay valid.
 */
export function encodeCursor(c: Cursor): string {
  const text = c.sort === 'time' ? `s${c.seq}` : `${SORT_TAG[c.sort]}${c.seq}:${c.value}`;
  return Buffer.from(text).toString('base64url');
}

/** The cursor in `text`, or undefined when it is not one this service wrote. */
export function decodeCursor(text: string): Cursor | undefined {
  const m = /^([sqm])(\d{1,15})(?::([-+0-9.e]{1,32}))?$/i.exec(Buffer.from(text, 'base64url').toString('latin1'));
  if (!m) return undefined;
  const seq = Number(m[2]);
  if (m[1] === 's') return m[3] === undefined ? { sort: 'time', seq } : undefined;
  const value = Number(m[3]);
  if (m[3] === undefined || !Number.isFinite(value)) return undefined;
  return { sort: m[1] === 'q' ? 'quality' : 'mistakenness', seq, value };
}

/**
 * ORDER BY and the keyset condition after `after` for each sort. Ranked sorts order by (score, seq) through the
 * (score, seq) indexes; NULL scores (none after the layout-3 backfill) would sort first and are never paged past.
 */
const ORDER = {
  time: { by: 'seq DESC', after: 'seq < ?', params: (c: Cursor) => [c.seq] },
  quality: { by: 'quality ASC, seq DESC', after: '(quality > ? OR (quality = ? AND seq < ?))', params: (c: Cursor & { value: number }) => [c.value, c.value, c.seq] },
  mistakenness: {
    by: 'mistakenness DESC, seq DESC',
    after: '(mistakenness < ? OR (mistakenness = ? AND seq < ?))',
    params: (c: Cursor & { value: number }) => [c.value, c.value, c.seq],
  },
} as const;

/** One page of records matching `filters` in `page.sort` order. `page.after` must have the same sort. */
export async function listAudits(db: Sql, filters: AuditFilters, page: PageRequest): Promise<AuditPage> {
  const where = whereClause(filters);
  const sort = page.sort ?? 'time';
  const order = ORDER[sort];
  let sql = where.sql;
  const params = [...where.params];
  const after = page.after;
  if (after !== undefined) {
    if (after.sort !== sort) throw new Error(`a ${after.sort} cursor cannot continue a ${sort} page`);
    sql = sql ? `${sql} AND ${order.after}` : `WHERE ${order.after}`;
    params.push(...order.params(after as Cursor & { value: number }));
  }
  // One row more than asked tells whether another page exists.
  const rows = await db.all(`SELECT ${RECORD_COLUMNS} FROM audits ${sql} ORDER BY ${order.by} LIMIT ?`, [...params, page.limit + 1]);
  const more = rows.length > page.limit;
  const kept = more ? rows.slice(0, page.limit) : rows;
  const last = kept[kept.length - 1];
  let nextCursor: string | null = null;
  if (more && last) {
    const seq = Number(last.seq);
    nextCursor = encodeCursor(sort === 'time' ? { sort: 'time', seq } : { sort, seq, value: Number(last[sort]) });
  }
  return { items: kept.map(fromRow), nextCursor };
}
