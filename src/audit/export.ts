// Audit records as CSV and JSON Lines, the review queue's export formats.
import type { AuditRecord } from './record.js';

export const CSV_COLUMNS = [
  'id',
  'time',
  'modelName',
  'modelVersion',
  'label',
  'verdict',
  'labelProbability',
  'thresholdClean',
  'thresholdNoisy',
  'thresholdSource',
  'predicted',
  'confidence',
  'suggestedLabel',
  'itemId',
  'annotatorId',
  'datasetId',
  'imageSha256',
  'imageStored',
  'faceIndex',
  'faceX',
  'faceY',
  'faceWidth',
  'faceHeight',
  'faceScore',
  'quality',
  'mistakenness',
  'withdrawnAt',
  'supersededAt',
  'supersededBy',
  'probabilities',
] as const;

/** Characters that make a spreadsheet read a cell as a formula (CSV injection). */
const FORMULA_TRIGGERS = new Set(['=', '+', '-', '@', '\t', '\r']);
/** Characters a spreadsheet may be told to split cells on. */
const SEPARATORS = new Set([',', ';', '\t', '\r', '\n']);

/**
 * `text` with a ' before every formula trigger that could start a cell: at its start or after a separator (spaces
 * skipped), so `;=cmd|' /C calc'!A0;` becomes `;'=cmd|' /C calc'!A0;` and no split, on whatever separator, is a formula.
 */
function defuseFormulas(text: string): string {
  let out = '';
  let cellStart = true;
  for (const ch of text) {
    if (cellStart && FORMULA_TRIGGERS.has(ch)) out += "'";
    out += ch;
    if (SEPARATORS.has(ch)) cellStart = true;
    else if (ch !== ' ') cellStart = false;
  }
  return out;
}

/** Cells holding any separator, a quote or a line break are quoted (RFC 4180, doubling quotes). */
const NEEDS_QUOTES = /[",;\t\r\n]/;

function cell(value: string | number | boolean | null): string {
  if (value === null) return '';
  if (typeof value !== 'string') return String(value);
  const text = defuseFormulas(value);
  return NEEDS_QUOTES.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function csvRow(r: AuditRecord): string {
  const values: Record<(typeof CSV_COLUMNS)[number], string | number | boolean | null> = {
    id: r.id,
    time: r.time,
    modelName: r.model.name,
    modelVersion: r.model.version,
    label: r.label,
    verdict: r.verdict,
    labelProbability: r.labelProbability,
    thresholdClean: r.thresholds.clean,
    thresholdNoisy: r.thresholds.noisy,
    thresholdSource: r.thresholdSource,
    predicted: r.predicted,
    confidence: r.confidence,
    suggestedLabel: r.suggestedLabel,
    itemId: r.itemId,
    annotatorId: r.annotatorId,
    datasetId: r.datasetId,
    imageSha256: r.imageSha256,
    imageStored: r.imageStored,
    faceIndex: r.face?.index ?? null,
    faceX: r.face?.box.x ?? null,
    faceY: r.face?.box.y ?? null,
    faceWidth: r.face?.box.width ?? null,
    faceHeight: r.face?.box.height ?? null,
    faceScore: r.face?.score ?? null,
    quality: r.quality,
    mistakenness: r.mistakenness,
    withdrawnAt: r.withdrawnAt,
    supersededAt: r.supersededAt,
    supersededBy: r.supersededBy,
    probabilities: JSON.stringify(r.probabilities),
  };
  return CSV_COLUMNS.map((c) => cell(values[c])).join(',');
}

/** A header row, then one row per record; CRLF line ends as RFC 4180 asks. */
export function toCsv(records: readonly AuditRecord[]): string {
  return [CSV_COLUMNS.join(','), ...records.map(csvRow)].map((l) => l + '\r\n').join('');
}

/** One JSON object per line. */
export function toJsonl(records: readonly AuditRecord[]): string {
  return records.map((r) => JSON.stringify(r) + '\n').join('');
}
