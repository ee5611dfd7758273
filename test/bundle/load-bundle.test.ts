import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadBundle } from '../../src/bundle/load-bundle.js';
import { readOnnxIo } from '../../src/bundle/onnx-io.js';
import { BundleError } from '../../src/errors.js';
import { FIXTURE_BUNDLE_DIR } from '../fixtures/paths.js';

let dir: string;
const manifestPath = () => path.join(dir, 'model.json');
const edit = (change: (m: Record<string, any>) => void) => {
  const m = JSON.parse(readFileSync(manifestPath(), 'utf8')) as Record<string, any>;
  change(m);
  writeFileSync(manifestPath(), JSON.stringify(m));
};

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'asm-fer-bundle-'));
  cpSync(FIXTURE_BUNDLE_DIR, dir, { recursive: true });
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('readOnnxIo', () => {
  it('reads the fixture graph input and output names from the protobuf', () => {
    expect(readOnnxIo(readFileSync(path.join(FIXTURE_BUNDLE_DIR, 'model.onnx')))).toEqual({ inputs: ['input'], outputs: ['probabilities'] });
  });

  it('throws on bytes that are not an ONNX model', () => {
    expect(() => readOnnxIo(Buffer.from('not onnx at all'))).toThrow();
  });
});

describe('loadBundle', () => {
  it('accepts the fixture bundle', async () => {
    const b = await loadBundle(dir);
    expect(b.manifest.classes).toHaveLength(8);
    expect(b.manifest.input).toMatchObject({ name: 'input', channels: 1, height: 48, width: 48 });
    expect(b.modelPath).toBe(path.join(dir, 'model.onnx'));
  });

  it('types the optional calibration, labelQuality and reliability sections, and loads a bundle without them', async () => {
    const b = await loadBundle(dir);
    expect(b.manifest.calibration).toMatchObject({ folded: true, split: { samples: b.manifest.calibration?.split.ids.length } });
    expect(b.manifest.labelQuality?.score).toMatch(/^(self-confidence|normalized-margin)$/);
    expect(Object.keys(b.manifest.reliability?.perClass ?? {})).toEqual(b.manifest.classes);
    edit((m) => {
      delete m.calibration;
      delete m.labelQuality;
      delete m.reliability;
    });
    const bare = await loadBundle(dir);
    expect([bare.manifest.calibration, bare.manifest.labelQuality, bare.manifest.reliability]).toEqual([undefined, undefined, undefined]);
  });

  it('loads thresholds chosen out of fold (export --noisy-base fitted) with every candidate recorded, and an older fitted record without them', async () => {
    const fitted = {
      noise: 'crowd-1',
      draws: 5,
      f1: 0.88,
      runBaseF1: 0.85,
      chosen: 'per-class-100',
      folds: 2,
      candidates: { run: 0.8, fixed: 0.77, shared: 0.86, 'per-class-400': 0.87, 'per-class-100': 0.88, 'per-class-25': 0.88 },
    };
    edit((m) => (m.thresholdLearning.fitted = fitted));
    expect((await loadBundle(dir)).manifest.thresholdLearning.fitted).toEqual(fitted);
    edit((m) => {
      delete m.thresholdLearning.fitted.chosen;
      delete m.thresholdLearning.fitted.folds;
      delete m.thresholdLearning.fitted.candidates;
    });
    expect((await loadBundle(dir)).manifest.thresholdLearning.fitted?.candidates).toBeUndefined();
  });

  const refusals: [string, () => void, RegExp][] = [
    ['a missing model.json', () => rmSync(manifestPath()), /cannot read .*model\.json: ENOENT/],
    ['model.json that is not JSON', () => writeFileSync(manifestPath(), '{'), /is not JSON/],
    ['a manifest the schema rejects', () => edit((m) => delete m.classes), /does not match bundle\.schema\.json: \/ must have required property 'classes'/],
    ['a weight dtype the schema does not know', () => edit((m) => (m.model.weightDtype = 'int8')), /does not match bundle\.schema\.json: \/model\/weightDtype must be equal to one of the allowed values/],
    ['a thresholds map missing a class', () => edit((m) => delete m.thresholds.contempt), /thresholds lack class\(es\) contempt/],
    ['a thresholds map with an unknown class', () => edit((m) => (m.thresholds.joy = { clean: 0.5, noisy: 0.1 })), /thresholds name unknown class\(es\) joy/],
    ['mean/std of the wrong length', () => edit((m) => (m.input.mean = [0.5, 0.5, 0.5])), /input\.mean has 3 values for 1 channel/],
    ['an ONNX file whose sha256 differs', () => writeFileSync(path.join(dir, 'model.onnx'), Buffer.concat([readFileSync(path.join(dir, 'model.onnx')), Buffer.from([0])])), /sha256 of .* is [0-9a-f]{64}, model\.json says/],
    ['an input name the graph lacks', () => edit((m) => (m.input.name = 'pixels')), /ONNX inputs are \[input\], model\.json expects exactly \[pixels\]/],
    ['an output name the graph lacks', () => edit((m) => (m.output.name = 'logits')), /ONNX outputs are \[probabilities\], model\.json expects logits/],
    ['an unknown label-quality score', () => edit((m) => (m.labelQuality.score = 'margin')), /\/labelQuality\/score must be equal to one of the allowed values/],
    ['a calibration that is not folded', () => edit((m) => (m.calibration.folded = false)), /\/calibration\/folded must be equal to constant/],
    ['a candidate F1 above 1', () => edit((m) => (m.thresholdLearning.fitted = { noise: 'crowd-1', draws: 5, f1: 0.9, runBaseF1: 0.8, candidates: { shared: 1.5 } })), /\/thresholdLearning\/fitted\/candidates\/shared must be <= 1/],
    ['reliability for an unknown class', () => edit((m) => (m.reliability.perClass.joy = { submitted: 0, mislabelled: 0, flagged: 0, precision: null, recall: null })), /reliability\.perClass names unknown class\(es\) joy/],
  ];

  it.each(refusals)('refuses %s with a one-line reason', async (_what, breakIt, reason) => {
    breakIt();
    const err = await loadBundle(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BundleError);
    expect((err as Error).message).toMatch(reason);
    expect((err as Error).message).not.toContain('\n');
  });
});
