// An audited item as the audit trail stores and returns it: the `audits` table, and the mapping to and from its rows.
import type Database from 'better-sqlite3';
import { mistakennessOf } from './label-quality.js';
import { suggestedLabel, type AuditedFace, type NewAuditRecord, type ThresholdSource, type Verdict } from './judge.js';

/** A stored record as the list and get routes return it. */
export interface AuditRecord extends Omit<NewAuditRecord, 'timeMs' | 'image' | 'face'> {
  time: string;
  /** Null on records stored before faces were (layout version 1). */
  face: AuditedFace | null;
  suggestedLabel: string | null;
  imageStored: boolean;
}

/**
 * `seq` orders records by commit and never repeats (AUTOINCREMENT), so cursors stay valid while records are added.
 * `face` is the AuditedFace as JSON: it is only ever read back whole. PRAGMA user_version marks the layout; see
 * SCHEMA_VERSION and MIGRATIONS.
 */
export const SCHEMA_SQL = `
CREATE TABLE IF NOT EXISTS audits (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  time_ms INTEGER NOT NULL,
  model_name TEXT NOT NULL,
  model_version TEXT NOT NULL,
  label TEXT NOT NULL,
  verdict TEXT NOT NULL CHECK (verdict IN ('clean', 'ambiguous', 'noisy')),
  label_probability REAL NOT NULL,
  threshold_clean REAL NOT NULL,
  threshold_noisy REAL NOT NULL,
  threshold_source TEXT NOT NULL CHECK (threshold_source IN ('bundle', 'online')),
  predicted TEXT NOT NULL,
  confidence REAL NOT NULL,
  probabilities TEXT NOT NULL,
  item_id TEXT,
  annotator_id TEXT,
  dataset_id TEXT,
  image_sha256 TEXT NOT NULL,
  image BLOB,
  face TEXT,
  quality REAL,
  mistakenness REAL
);
CREATE INDEX IF NOT EXISTS audits_time ON audits (time_ms);
CREATE INDEX IF NOT EXISTS audits_verdict ON audits (verdict, seq);
CREATE INDEX IF NOT EXISTS audits_label ON audits (label, seq);
CREATE INDEX IF NOT EXISTS audits_annotator ON audits (annotator_id, seq);
CREATE INDEX IF NOT EXISTS audits_dataset ON audits (dataset_id, seq);
CREATE INDEX IF NOT EXISTS audits_quality ON audits (quality, seq);
CREATE INDEX IF NOT EXISTS audits_mistakenness ON audits (mistakenness, seq);
`;

export const SCHEMA_VERSION = 3;

/**
 * Version 2 records predate the ranking scores. Every record kept what they need, so both are backfilled and none is
 * left NULL: quality as self-confidence (its label_probability), the only score a bundle of that time could have
 * meant (the service read no labelQuality section); mistakenness from its stored probabilities and whether its stored
 * prediction differs from its label (the same argmax classify() took).
 */
function addRankingScores(db: Database.Database): void {
  db.exec(`ALTER TABLE audits ADD COLUMN quality REAL;
ALTER TABLE audits ADD COLUMN mistakenness REAL;`);
  const update = db.prepare('UPDATE audits SET quality = ?, mistakenness = ? WHERE seq = ?');
  // In chunks: better-sqlite3 cannot write while a read is still iterating, and a whole trail need not fit in memory.
  const chunk = db.prepare('SELECT seq, label, predicted, label_probability, probabilities FROM audits WHERE seq > ? ORDER BY seq LIMIT 10000');
  for (let last = -1; ; ) {
    const rows = chunk.all(last) as { seq: number; label: string; predicted: string; label_probability: number; probabilities: string }[];
    if (rows.length === 0) break;
    for (const row of rows) {
      const probs = Object.values(JSON.parse(row.probabilities) as Record<string, number>);
      update.run(row.label_probability, mistakennessOf(probs, row.predicted !== row.label), row.seq);
    }
    last = (rows[rows.length - 1] as { seq: number }).seq;
  }
  db.exec(`CREATE INDEX audits_quality ON audits (quality, seq);
CREATE INDEX audits_mistakenness ON audits (mistakenness, seq);`);
}

/**
 * MIGRATIONS[v] brings a database of layout v to v + 1 (SQL, or a function for what SQL cannot compute); SCHEMA_SQL
 * alone creates the latest layout.
 */
export const MIGRATIONS: Record<number, string | ((db: Database.Database) => void)> = {
  // Version 1 (the first audit trail) predates face detection: its records keep face NULL.
  1: 'ALTER TABLE audits ADD COLUMN face TEXT;',
  2: addRankingScores,
};

export const INSERT_SQL = `
INSERT INTO audits (id, time_ms, model_name, model_version, label, verdict, label_probability, threshold_clean,
  threshold_noisy, threshold_source, predicted, confidence, probabilities, item_id, annotator_id, dataset_id,
  image_sha256, image, face, quality, mistakenness)
VALUES (@id, @time_ms, @model_name, @model_version, @label, @verdict, @label_probability, @threshold_clean,
  @threshold_noisy, @threshold_source, @predicted, @confidence, @probabilities, @item_id, @annotator_id, @dataset_id,
  @image_sha256, @image, @face, @quality, @mistakenness)`;

/** The columns every query selects (never the image, which only GET /v1/audits/{id}/image reads). */
export const RECORD_COLUMNS = `seq, id, time_ms, model_name, model_version, label, verdict, label_probability, threshold_clean,
  threshold_noisy, threshold_source, predicted, confidence, probabilities, item_id, annotator_id, dataset_id,
  image_sha256, image IS NOT NULL AS image_stored, face, quality, mistakenness`;

export function toRow(r: NewAuditRecord): Record<string, unknown> {
  return {
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
    imageStored: Number(row.image_stored) === 1,
    face: row.face === null || row.face === undefined ? null : (JSON.parse(String(row.face)) as AuditedFace),
    quality: Number(row.quality),
    mistakenness: Number(row.mistakenness),
  };
}
