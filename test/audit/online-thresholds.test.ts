import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { BundleManifest } from '../../src/bundle/load-bundle.js';
import { adaptiveThresholds } from '../../src/audit/online-thresholds.js';
import { FIXTURE_BUNDLE_DIR } from '../fixtures/paths.js';

const manifest = JSON.parse(readFileSync(`${FIXTURE_BUNDLE_DIR}/model.json`, 'utf8')) as BundleManifest;

describe('adaptiveThresholds', () => {
  it("reproduces the thresholds training exported from the bundle's own class means", () => {
    const { classMeans } = manifest.thresholdLearning;
    const got = adaptiveThresholds(manifest.classes.map((c) => classMeans[c] as number), manifest.thresholdLearning);
    manifest.classes.forEach((c, i) => {
      expect(got[i]?.clean).toBeCloseTo(manifest.thresholds[c]?.clean as number, 6);
      expect(got[i]?.noisy).toBeCloseTo(manifest.thresholds[c]?.noisy as number, 6);
    });
  });

  it('gives the easiest class the base pair and the others proportionally lower thresholds (max normalisation)', () => {
    const t = adaptiveThresholds([0.9, 0.45, 0.3], { mode: 'adaptive', base: { noisy: 0.2, clean: 0.8 }, normalisation: 'max' });
    expect(t[0]).toEqual({ noisy: 0.2, clean: 0.8 });
    expect(t[1]?.clean).toBeCloseTo(0.4, 12);
    expect(t[2]?.noisy).toBeCloseTo(0.2 / 3, 12);
  });

  it('scales by the raw means without normalisation, and keeps the base pair in fixed mode or when every mean is 0', () => {
    expect(adaptiveThresholds([0.5], { mode: 'adaptive', base: { noisy: 0.2, clean: 0.8 }, normalisation: 'none' })[0]).toEqual({ noisy: 0.1, clean: 0.4 });
    expect(adaptiveThresholds([0.5, 0.1], { mode: 'fixed', base: { noisy: 0.2, clean: 0.8 }, normalisation: 'max' })).toEqual([
      { noisy: 0.2, clean: 0.8 },
      { noisy: 0.2, clean: 0.8 },
    ]);
    expect(adaptiveThresholds([0, 0], { mode: 'adaptive', base: { noisy: 0.2, clean: 0.8 }, normalisation: 'max' })[1]).toEqual({ noisy: 0.2, clean: 0.8 });
  });
});
