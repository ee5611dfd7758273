// An audited item as the audit trail stores and returns it: the `audits` table, and the mapping to and from its rows.
import { mistakennessOf } from './label-quality.js';
import { suggestedLabel, type AuditedFace, type NewAuditRecord, type ThresholdSource, type Verdict } from './judge.js';

/** A stored record as the list and get routes return it. */
export interface AuditRecord extends Omit<NewAuditRecord, 'timeMs' | 'image' | 'face'> {
  time: string;
  /** Null on records stored before faces were (layout version 1). */
  face: AuditedFace | null;
  suggestedLabel: string | null;
  imageStored: boolean;
  /**
   * When the label's annotator or tool withdrew it (a Label Studio annotation deleted): the record is kept, and still
   * counted as audited traffic, but marked. Null while the label stands, and on records stored before layout 4.
   */
  withdrawnAt: string | null;
  /**
   * When a newer audit of the same label (sameLabel: same itemId, annotatorId and datasetId, whichever model) was
   * stored, and its id: this record is then no longer the label's current verdict. Null on the current verdict.
   */
  supersededAt: string | null;
  supersededBy: string | null;
}

/** The two SQL dialects the trail is kept in: embedded SQLite (the default) and a shared PostgreSQL. */
export type Dialect = 'sqlite' | 'postgres';

/**
 * Column types per dialect. PostgreSQL's REAL is single precision, so probabilities are DOUBLE PRECISION there (what
 * SQLite's REAL is); JSON stays TEXT in both, since JSONB would reorder the class keys of `probabilities`.
 */
const TYPES = {
  sqlite: { seq: 'INTEGER PRIMARY KEY AUTOINCREMENT', int: 'INTEGER', real: 'REAL', blob: 'BLOB' },
  postgres: { seq: 'BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY', int: 'BIGINT', real: 'DOUBLE PRECISION', blob: 'BYTEA' },
} as const;

/**
 * The latest layout. `seq` orders records by commit and never repeats (AUTOINCREMENT; on PostgreSQL an identity whose
 * inserts are serialised, see postgres-store.ts), so cursors stay valid while records are added. `face` is the
 * AuditedFace as JSON: it is only ever read back whole. The layout version is kept beside it (SQLite: PRAGMA
 * user_version; PostgreSQL: asm_fer_schema); see SCHEMA_VERSION and MIGRATIONS.
 */
export function schemaSql(dialect: Dialect): string {
  const t = TYPES[dialect];
  return `
CREATE TABLE IF NOT EXISTS audits (
  seq ${t.seq},
  id TEXT NOT NULL UNIQUE,
  time_ms ${t.int} NOT NULL,
  model_name TEXT NOT NULL,
  model_version TEXT NOT NULL,
  label TEXT NOT NULL,
  verdict TEXT NOT NULL CHECK (verdict IN ('clean', 'ambiguous', 'noisy')),
  label_probability ${t.real} NOT NULL,
  threshold_clean ${t.real} NOT NULL,
  threshold_noisy ${t.real} NOT NULL,
  threshold_source TEXT NOT NULL CHECK (threshold_source IN ('bundle', 'online')),
  predicted TEXT NOT NULL,
  confidence ${t.real} NOT NULL,
  probabilities TEXT NOT NULL,
  item_id TEXT,
  annotator_id TEXT,
  dataset_id TEXT,
  image_sha256 TEXT NOT NULL,
  image ${t.blob},
  face TEXT,
  quality ${t.real},
  mistakenness ${t.real},
  withdrawn_ms ${t.int},
  superseded_ms ${t.int},
  superseded_by TEXT
);
CREATE INDEX IF NOT EXISTS audits_time ON audits (time_ms);
CREATE INDEX IF NOT EXISTS audits_verdict ON audits (verdict, seq);
CREATE INDEX IF NOT EXISTS audits_label ON audits (label, seq);
CREATE INDEX IF NOT EXISTS audits_annotator ON audits (annotator_id, seq);
CREATE INDEX IF NOT EXISTS audits_dataset ON audits (dataset_id, seq);
CREATE INDEX IF NOT EXISTS audits_quality ON audits (quality, seq);
CREATE INDEX IF NOT EXISTS audits_mistakenness ON audits (mistakenness, seq);
CREATE INDEX IF NOT EXISTS audits_item ON audits (item_id, annotator_id, dataset_id, seq);
`;
}

export const SCHEMA_VERSION = 5;

/** What a migration step may do to the database it upgrades: statements with `?` parameters, in its transaction. */
export interface MigrationTarget {
  readonly dialect: Dialect;
  exec(sql: string): Promise<void>;
  all(sql: string, params?: readonly unknown[]): Promise<Record<string, unknown>[]>;
}

/**
 * Version 2 records predate the ranking scores. Every record kept what they need, so both are backfilled and none is
 * left NULL: quality as self-confidence (its label_probability), the only score a bundle of that time could have
 * meant (the service read no labelQuality section); mistakenness from its stored probabilities and whether its stored
 * prediction differs from its label (the same argmax classify() took).
 */
async function addRankingScores(db: MigrationTarget): Promise<void> {
  const real = TYPES[db.dialect].real;
  await db.exec(`ALTER TABLE audits ADD COLUMN quality ${real};
ALTER TABLE audits ADD COLUMN mistakenness ${real};`);
  // In chunks: better-sqlite3 cannot write while a read is still iterating, and a whole trail need not fit in memory.
  for (let last = -1; ; ) {
    const rows = await db.all('SELECT seq, label, predicted, label_probability, probabilities FROM audits WHERE seq > ? ORDER BY seq LIMIT 10000', [last]);
    if (rows.length === 0) break;
    for (const row of rows) {
      const probs = Object.values(JSON.parse(String(row.probabilities)) as Record<string, number>);
      await db.all('UPDATE audits SET quality = ?, mistakenness = ? WHERE seq = ?', [Number(row.label_probability), mistakennessOf(probs, row.predicted !== row.label), row.seq]);
    }
    last = Number((rows[rows.length - 1] as { seq: unknown }).seq);
  }
  await db.exec(`CREATE INDEX audits_quality ON audits (quality, seq);
CREATE INDEX audits_mistakenness ON audits (mistakenness, seq);`);
}

/**
 * Null-safe equality per dialect: a record without an annotator (or a dataset) is the same label as another without
 * one. PostgreSQL's form cannot use an index, but the item_id prefix of audits_item narrows the search first.
 */
const SAME = { sqlite: 'IS', postgres: 'IS NOT DISTINCT FROM' } as const;

/**
 * The identity of a label, whose latest audit is its current verdict: item, annotator and dataset, all three (a Label
 * Studio record: "task T annotation A", the annotation's user, "label-studio project P"). The model is no part of it:
 * a label audited again by another model has a newer verdict, not a second one. A record without an itemId names no
 * label and is never superseded.
 */
function sameLabel(dialect: Dialect, older: string, newer: string): string {
  return `${older}.item_id = ${newer}.item_id AND ${older}.annotator_id ${SAME[dialect]} ${newer}.annotator_id AND ${older}.dataset_id ${SAME[dialect]} ${newer}.dataset_id`;
}

/**
 * Version 4 predates supersession. Its records are marked as the store would have marked them: each is superseded by
 * the next record (in seq order) of the same label, at that record's time; the last of each label stays current.
 */
async function addSupersession(db: MigrationTarget): Promise<void> {
  await db.exec(`ALTER TABLE audits ADD COLUMN superseded_ms ${TYPES[db.dialect].int};
ALTER TABLE audits ADD COLUMN superseded_by TEXT;
CREATE INDEX audits_item ON audits (item_id, annotator_id, dataset_id, seq);`);
  await db.exec(`UPDATE audits SET superseded_by = (SELECT n.id FROM audits n WHERE ${sameLabel(db.dialect, 'n', 'audits')} AND n.seq > audits.seq
  ORDER BY n.seq LIMIT 1) WHERE item_id IS NOT NULL;
UPDATE audits SET superseded_ms = (SELECT n.time_ms FROM audits n WHERE n.id = audits.superseded_by) WHERE superseded_by IS NOT NULL;`);
}

/**
 * MIGRATIONS[v] brings a database of layout v to v + 1, in either dialect; schemaSql alone creates the latest layout.
 */
export const MIGRATIONS: Record<number, (db: MigrationTarget) => Promise<void>> = {
  // Version 1 (the first audit trail) predates face detection: its records keep face NULL.
  1: (db) => db.exec('ALTER TABLE audits ADD COLUMN face TEXT;'),
  2: addRankingScores,
  // Version 3 predates withdrawal: no label had been withdrawn, so every record keeps withdrawn_ms NULL.
  3: (db) => db.exec(`ALTER TABLE audits ADD COLUMN withdrawn_ms ${TYPES[db.dialect].int};`),
  4: addSupersession,
};

/**
 * Creates the latest layout in a database without one (`version` 0), or upgrades an older one step by step; the
 * caller holds the transaction (and, on a shared database, the lock) and stores the version this returns.
 */
export async function migrate(db: MigrationTarget, version: number): Promise<number> {
  if (version > SCHEMA_VERSION) throw new Error(`audit database layout ${version} is newer than this service's ${SCHEMA_VERSION}`);
  if (version === 0) await db.exec(schemaSql(db.dialect));
  for (let v = version === 0 ? SCHEMA_VERSION : version; v < SCHEMA_VERSION; v++) await (MIGRATIONS[v] as (typeof MIGRATIONS)[number])(db);
  return SCHEMA_VERSION;
}

/** The stored columns in INSERT order; toRow gives their values in the same order. */
const INSERT_COLUMNS = [
  'id', 'time_ms', 'model_name', 'model_version', 'label', 'verdict', 'label_probability', 'threshold_clean', 'threshold_noisy',
  'threshold_source', 'predicted', 'confidence', 'probabilities', 'item_id', 'annotator_id', 'dataset_id', 'image_sha256',
  'image', 'face', 'quality', 'mistakenness',
] as const;

/**
 * Marks record `id` withdrawn at `timeMs` (`?` parameters: time, id). The first withdrawal's time is kept, so a repeat
 * (a retried or duplicated deletion) changes nothing; the statement still matches the row, so its row count says
 * whether the record exists.
 */
export const WITHDRAW_SQL = 'UPDATE audits SET withdrawn_ms = COALESCE(withdrawn_ms, ?) WHERE id = ?';

/**
 * Marks the current verdict of a just-inserted record's label superseded by it, in the insert's transaction (`?`
 * parameters: supersedeParams). Only records older than the new one (lower seq) are marked, and only while they are
 * current, so each record names the next audit of its label; a batch holding the same label twice is applied in order.
 */
export function supersedeSql(dialect: Dialect): string {
  return `UPDATE audits SET superseded_ms = ?, superseded_by = ? WHERE superseded_by IS NULL AND item_id = ? AND annotator_id ${SAME[dialect]} ?
  AND dataset_id ${SAME[dialect]} ? AND seq < (SELECT n.seq FROM audits n WHERE n.id = ?)`;
}

/** supersedeSql's parameters for record `r`, or undefined when it names no label (no itemId). */
export function supersedeParams(r: NewAuditRecord): unknown[] | undefined {
  return r.itemId === null ? undefined : [r.timeMs, r.id, r.itemId, r.annotatorId, r.datasetId, r.id];
}

/** INSERT of `count` records, each row's values in toRow order, with `?` parameters. */
export function insertSql(count: number): string {
  const row = `(${INSERT_COLUMNS.map(() => '?').join(', ')})`;
  return `INSERT INTO audits (${INSERT_COLUMNS.join(', ')}) VALUES ${Array.from({ length: count }, () => row).join(', ')}`;
}

/** The columns every query selects (never the image, which only GET /v1/audits/{id}/image reads). */
export const RECORD_COLUMNS = `seq, id, time_ms, model_name, model_version, label, verdict, label_probability, threshold_clean,
  threshold_noisy, threshold_source, predicted, confidence, probabilities, item_id, annotator_id, dataset_id,
  image_sha256, image IS NOT NULL AS image_stored, face, quality, mistakenness, withdrawn_ms, superseded_ms, superseded_by`;

/** The values of `r` in INSERT_COLUMNS order. */
export function toRow(r: NewAuditRecord): unknown[] {
  const row: Record<(typeof INSERT_COLUMNS)[number], unknown> = {
    id: r.id,
    time_ms: r.timeMs,
    model_name: r.model.name,
    model_version: r.model.version,
    label: r.label,
    verdict: r.verdict,
    label_probability: r.labelProbability,
    threshold_clean: r.thresholds.clean,
    threshold_noisy: r.thresholds.noisy,
    threshold_source: r.thresholdSource,
    predicted: r.predicted,
    confidence: r.confidence,
    probabilities: JSON.stringify(r.probabilities),
    item_id: r.itemId,
    annotator_id: r.annotatorId,
    dataset_id: r.datasetId,
    image_sha256: r.imageSha256,
    image: r.image,
    face: JSON.stringify(r.face),
    quality: r.quality,
    mistakenness: r.mistakenness,
  };
  return INSERT_COLUMNS.map((c) => row[c]);
}

/** A row selected with RECORD_COLUMNS. */
export function fromRow(row: Record<string, unknown>): AuditRecord {
  const verdict = row.verdict as Verdict;
  const predicted = String(row.predicted);
  return {
    id: String(row.id),
    time: new Date(Number(row.time_ms)).toISOString(),
    model: { name: String(row.model_name), version: String(row.model_version) },
    label: String(row.label),
    verdict,
    labelProbability: Number(row.label_probability),
    thresholds: { clean: Number(row.threshold_clean), noisy: Number(row.threshold_noisy) },
    thresholdSource: row.threshold_source as ThresholdSource,
    predicted,
    confidence: Number(row.confidence),
    suggestedLabel: suggestedLabel({ verdict, predicted }),
    probabilities: JSON.parse(String(row.probabilities)) as Record<string, number>,
    itemId: (row.item_id as string | null) ?? null,
    annotatorId: (row.annotator_id as string | null) ?? null,
    datasetId: (row.dataset_id as string | null) ?? null,
    imageSha256: String(row.image_sha256),
    // SQLite answers 0/1, PostgreSQL a boolean.
    imageStored: Number(row.image_stored) === 1,
    face: row.face === null || row.face === undefined ? null : (JSON.parse(String(row.face)) as AuditedFace),
    quality: Number(row.quality),
    mistakenness: Number(row.mistakenness),
    withdrawnAt: isoOrNull(row.withdrawn_ms),
    supersededAt: isoOrNull(row.superseded_ms),
    supersededBy: (row.superseded_by as string | null | undefined) ?? null,
  };
}

/** A stored epoch-milliseconds column as RFC 3339, or null. */
function isoOrNull(ms: unknown): string | null {
  return ms === null || ms === undefined ? null : new Date(Number(ms)).toISOString();
}
