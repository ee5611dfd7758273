// An audited item as the audit trail stores and returns it: the `audits` table, and the mapping to and from its rows.
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
  face TEXT
);
CREATE INDEX IF NOT EXISTS audits_time ON audits (time_ms);
CREATE INDEX IF NOT EXISTS audits_verdict ON audits (verdict, seq);
CREATE INDEX IF NOT EXISTS audits_label ON audits (label, seq);
CREATE INDEX IF NOT EXISTS audits_annotator ON audits (annotator_id, seq);
CREATE INDEX IF NOT EXISTS audits_dataset ON audits (dataset_id, seq);
`;

export const SCHEMA_VERSION = 2;

/** MIGRATIONS[v] brings a database of layout v to v + 1; SCHEMA_SQL alone creates the latest layout. */
export const MIGRATIONS: Record<number, string> = {
  // Version 1 (the first audit trail) predates face detection: its records keep face NULL.
  1: 'ALTER TABLE audits ADD COLUMN face TEXT;',
};

export const INSERT_SQL = `
INSERT INTO audits (id, time_ms, model_name, model_version, label, verdict, label_probability, threshold_clean,
  threshold_noisy, threshold_source, predicted, confidence, probabilities, item_id, annotator_id, dataset_id,
  image_sha256, image, face)
VALUES (@id, @time_ms, @model_name, @model_version, @label, @verdict, @label_probability, @threshold_clean,
  @threshold_noisy, @threshold_source, @predicted, @confidence, @probabilities, @item_id, @annotator_id, @dataset_id,
  @image_sha256, @image, @face)`;

/** The columns every query selects (never the image, which only GET /v1/audits/{id}/image reads). */
export const RECORD_COLUMNS = `seq, id, time_ms, model_name, model_version, label, verdict, label_probability, threshold_clean,
  threshold_noisy, threshold_source, predicted, confidence, probabilities, item_id, annotator_id, dataset_id,
  image_sha256, image IS NOT NULL AS image_stored, face`;

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
  };
}
