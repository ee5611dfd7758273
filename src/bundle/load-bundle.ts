// Loads a model bundle (model.json + ONNX file) and refuses it unless every part agrees with models/bundle.schema.json and the others.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { BundleError } from '../errors.js';
import { readOnnxIo } from './onnx-io.js';

/** src/bundle/ and dist/bundle/ are both two levels below the repository root. */
export const BUNDLE_SCHEMA_PATH = fileURLToPath(new URL('../../models/bundle.schema.json', import.meta.url));

export interface Thresholds {
  clean: number;
  noisy: number;
}

/** The `thresholdLearning` section: how the thresholds were learned, and the class means they came from. */
export interface ThresholdLearning {
  mode: 'adaptive' | 'fixed';
  base: Thresholds;
  statistic: 'given-label' | 'mean-class-prob' | 'predicted-max';
  normalisation: 'max' | 'none';
  source: 'ensemble' | 'per-network';
  momentum?: number;
  /** mu_k per class on the training set; the reference for drift. */
  classMeans: Record<string, number>;
  epoch: number;
  split?: string;
  /** export --noisy-base fitted: how the thresholds were chosen on injected noise over the calibration split. */
  fitted?: FittedThresholds;
}

/**
 * `thresholdLearning.fitted`: the noisy verdict's F1 on `draws` draws of injected `noise`. `chosen`, `folds` and
 * `candidates` (each candidate's out-of-fold F1) are absent in bundles exported before issue 29. Online
 * re-estimation re-derives thresholds from `mode` and `base`, not from a per-class fit.
 */
export interface FittedThresholds {
  noise: string;
  draws: number;
  f1: number;
  runBaseF1: number;
  chosen?: string;
  folds?: number;
  candidates?: Record<string, number>;
}

/** The `input` section: how an image becomes the model's tensor (see the schema's description). */
export interface InputSpec {
  name: string;
  layout: 'NCHW';
  dtype: 'float32';
  channels: 1 | 3;
  height: number;
  width: number;
  color: 'bt601-luma' | 'rgb';
  resize: 'bilinear-fill';
  scale: number;
  mean: number[];
  std: number[];
}

/** The `calibration` section: the held-out split the temperature (already folded into the graph) was fitted on. */
export interface Calibration {
  /** `ids` names training images; it stays on the server (GET /v1/models leaves it out). */
  /** `fold` (I/K): one of K folds was held out; `folds` (K): the out-of-fold images of K cross-fitted runs. */
  split: { from: string; share: number; seed: number; samples: number; ids: string[]; fold?: string; folds?: number };
  temperature: number;
  folded: true;
  ece: { before: number; after: number; bins: number };
  nll: { before: number; after: number };
}

export type QualityScore = 'self-confidence' | 'normalized-margin';

/** The `labelQuality` section: which score ranks submitted labels, chosen by average precision on the split. */
export interface LabelQuality {
  score: QualityScore;
  averagePrecision: Record<string, number>;
  noise: string;
}

/** How a `noisy` verdict on one submitted class fared on the calibration split with injected noise. */
export interface ClassReliability {
  submitted: number;
  mislabelled: number;
  flagged: number;
  precision: number | null;
  recall: number | null;
}

/** The `reliability` section. */
export interface Reliability {
  noise: string;
  seed: number;
  samples: number;
  perClass: Record<string, ClassReliability>;
}

/** model.json as the schema defines it; only the fields the service reads are typed closely. */
export interface BundleManifest {
  schemaVersion: 1;
  name: string;
  version: string;
  model: {
    file: string;
    sha256: string;
    opset: number;
    networks: number;
    architecture?: string;
    parameters?: number;
    /** How the file stores its weights; the graph's inputs, outputs and arithmetic are float32 either way. */
    weightDtype?: 'float32' | 'float16';
    /** flip: the graph averages each network's logits over the image and its mirror image. */
    testTimeAugmentation?: 'none' | 'flip';
  };
  classes: string[];
  input: InputSpec;
  output: { name: string; kind: 'probabilities' };
  thresholds: Record<string, Thresholds>;
  thresholdLearning: ThresholdLearning;
  calibration?: Calibration;
  labelQuality?: LabelQuality;
  reliability?: Reliability;
  provenance: {
    dataset: string;
    trainSplit: string;
    evalSplit: string;
    noise: string;
    method: string;
    seed: number;
    epochs: number;
    metrics: { accuracy: number; perClassRecall: Record<string, number | null>; samples: number };
    createdAt: string;
    codeRevision: string;
    config: Record<string, unknown>;
  };
}

export interface Bundle {
  dir: string;
  manifest: BundleManifest;
  /** Absolute path of the verified ONNX file. */
  modelPath: string;
}

async function schemaValidator() {
  const schema: unknown = JSON.parse(await readFile(BUNDLE_SCHEMA_PATH, 'utf8'));
  const ajv = new Ajv2020({ allErrors: false, strict: true });
  // RFC 3339 date-time; only provenance.createdAt uses a format, so ajv-formats is not worth a dependency.
  ajv.addFormat('date-time', (s: string) => /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i.test(s) && !Number.isNaN(Date.parse(s)));
  return ajv.compile(schema as object);
}

/** The cross-field rules JSON Schema cannot state; returns the first problem found, or undefined. */
export function checkConsistency(m: BundleManifest): string | undefined {
  const { input, classes } = m;
  if (input.color === 'bt601-luma' && input.channels !== 1) return `input.color bt601-luma needs channels 1, got ${input.channels}`;
  if (input.color === 'rgb' && input.channels !== 3) return `input.color rgb needs channels 3, got ${input.channels}`;
  if (input.mean.length !== input.channels) return `input.mean has ${input.mean.length} values for ${input.channels} channel(s)`;
  if (input.std.length !== input.channels) return `input.std has ${input.std.length} values for ${input.channels} channel(s)`;
  const thresholdClasses = Object.keys(m.thresholds);
  const missing = classes.filter((c) => !(c in m.thresholds));
  const extra = thresholdClasses.filter((c) => !classes.includes(c));
  if (missing.length > 0) return `thresholds lack class(es) ${missing.join(', ')}`;
  if (extra.length > 0) return `thresholds name unknown class(es) ${extra.join(', ')}`;
  for (const c of classes) {
    const t = m.thresholds[c];
    if (t && t.noisy > t.clean) return `thresholds.${c}: noisy ${t.noisy} is above clean ${t.clean}`;
  }
  const unknownReliability = Object.keys(m.reliability?.perClass ?? {}).filter((c) => !classes.includes(c));
  if (unknownReliability.length > 0) return `reliability.perClass names unknown class(es) ${unknownReliability.join(', ')}`;
  return undefined;
}

/** Reads and verifies the bundle in `dir`; throws BundleError with a one-line reason when anything disagrees. */
export async function loadBundle(dir: string): Promise<Bundle> {
  const absDir = path.resolve(dir);
  const manifestPath = path.join(absDir, 'model.json');
  let raw: string;
  try {
    raw = await readFile(manifestPath, 'utf8');
  } catch (err) {
    throw new BundleError(`cannot read ${manifestPath}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (err) {
    throw new BundleError(`${manifestPath} is not JSON: ${(err as Error).message}`);
  }
  const validate = await schemaValidator();
  if (!validate(json)) {
    const e = validate.errors?.[0];
    throw new BundleError(`${manifestPath} does not match bundle.schema.json: ${e?.instancePath || '/'} ${e?.message ?? ''}`.trim());
  }
  const manifest = json as BundleManifest;
  const inconsistency = checkConsistency(manifest);
  if (inconsistency) throw new BundleError(`${manifestPath}: ${inconsistency}`);

  const modelPath = path.join(absDir, manifest.model.file);
  let onnx: Buffer;
  try {
    onnx = await readFile(modelPath);
  } catch (err) {
    throw new BundleError(`cannot read ${modelPath}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  const digest = createHash('sha256').update(onnx).digest('hex');
  if (digest !== manifest.model.sha256) {
    throw new BundleError(`sha256 of ${modelPath} is ${digest}, model.json says ${manifest.model.sha256}`);
  }
  let io;
  try {
    io = readOnnxIo(onnx);
  } catch (err) {
    throw new BundleError(`${modelPath} is not a readable ONNX model: ${(err as Error).message}`);
  }
  if (io.inputs.length !== 1 || io.inputs[0] !== manifest.input.name) {
    throw new BundleError(`ONNX inputs are [${io.inputs.join(', ')}], model.json expects exactly [${manifest.input.name}]`);
  }
  if (!io.outputs.includes(manifest.output.name)) {
    throw new BundleError(`ONNX outputs are [${io.outputs.join(', ')}], model.json expects ${manifest.output.name}`);
  }
  return { dir: absDir, manifest, modelPath };
}
