// Drift and online thresholds on a synthetic shift: traffic that matches the bundle's training-time class mean, then
// traffic whose mean has moved; and thresholds re-estimated from live means with the training rule.
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verdict } from '../../src/audit/judge.js';
import { jpeg, png, solidPng } from '../fixtures/make-images.js';
import { FIXTURE_BUNDLE_DIR } from '../fixtures/paths.js';
import { sample } from '../fixtures/prom.js';
import { BACKENDS, freshTrail, type FreshTrail } from '../fixtures/backends.js';
import { startTestApp, type TestApp } from '../fixtures/tiny-model.js';
import { expectContract } from './contract.js';

type Probs = Record<string, number>;

let base: TestApp;
let images: Buffer[];
let probs: Probs[];
beforeAll(async () => {
  base = await startTestApp();
  images = [await png(), await jpeg(80, 80), await solidPng(48, 48), await png(30, 90)];
  probs = [];
  for (const img of images) probs.push((await request(base.app).post('/v1/predict').attach('image', img, 'x')).body.results[0].probabilities as Probs);
});
afterAll(() => base.close());

async function audit(app: TestApp['app'], img: Buffer, label: string, times: number) {
  const out = [];
  for (let i = 0; i < times; i++) {
    const res = await request(app).post('/v1/audit').attach('image', img, 'x').field('label', label);
    expect(res.status).toBe(200);
    out.push(res.body.results[0]);
  }
  return out;
}

// On both trail backends: with PostgreSQL the windows are read from the shared trail (afresh: ASM_FER_STATS_CACHE_MS 0).
describe.each(BACKENDS)('on %s', (kind) => {
  describe('drift', () => {
    let place: FreshTrail;
    let dir: string;
    let u: TestApp;
    let cls: string;
    let a: Buffer;
    let b: Buffer;
    let pA: number;
    let pB: number;
    beforeAll(async () => {
      // The class and image pair whose probabilities differ most: the shift this test plants.
      let best = { d: -1, cls: '', i: 0, j: 0 };
      for (const c of base.bundle.manifest.classes.filter((x) => x !== 'neutral')) {
        for (let i = 0; i < images.length; i++) {
          for (let j = 0; j < images.length; j++) {
            const d = (probs[j]?.[c] as number) - (probs[i]?.[c] as number);
            if (d > best.d) best = { d, cls: c, i, j };
          }
        }
      }
      ({ cls } = best);
      [a, b] = [images[best.i] as Buffer, images[best.j] as Buffer];
      [pA, pB] = [probs[best.i]?.[cls] as number, probs[best.j]?.[cls] as number];
      expect(pB - pA).toBeGreaterThan(0.002);
      // The bundle says training saw exactly image A's probability for this class.
      dir = await mkdtemp(path.join(tmpdir(), 'asm-fer-drift-'));
      await cp(FIXTURE_BUNDLE_DIR, dir, { recursive: true });
      const file = path.join(dir, 'model.json');
      const m = JSON.parse(await readFile(file, 'utf8'));
      m.thresholdLearning.classMeans[cls] = pA;
      await writeFile(file, JSON.stringify(m));
      place = await freshTrail(kind);
      u = await startTestApp({
        ...place.env,
        ASM_FER_MODEL_DIR: dir,
        ASM_FER_STATS_WINDOW: '10',
        ASM_FER_DRIFT_MIN_SAMPLES: '5',
        ASM_FER_DRIFT_THRESHOLD: String((pB - pA) / 2),
      });
    });
    afterAll(async () => {
      await u.close();
      await place.drop();
      await rm(dir, { recursive: true, force: true });
    });

    const driftOf = async (label: string) => {
      const res = await request(u.app).get('/v1/audits/summary');
      expect(res.status).toBe(200);
      expectContract('GET', '/v1/audits/summary', res);
      return { report: res.body.drift, row: res.body.drift.classes.find((c: { label: string }) => c.label === label), live: res.body.live };
    };
    const gauge = async (name: string, label: string) => sample((await request(u.app).get('/metrics')).text, `asm_fer_audit_drift_${name}{class="${label}"}`);

    it('flags nothing while live traffic matches the training mean', async () => {
      await audit(u.app, a, cls, 10);
      const { row, report } = await driftOf(cls);
      expect(row).toMatchObject({ trainingMean: pA, samples: 10, drifted: false });
      expect(row.liveMean).toBeCloseTo(pA, 6);
      expect(Math.abs(row.shift)).toBeLessThan(1e-6);
      expect(report.drifted).toEqual([]);
      expect(await gauge('detected', cls)).toBe(0);
    });

    it('does not flag a partial move that stays within the threshold', async () => {
      await audit(u.app, b, cls, 4);
      const { row } = await driftOf(cls);
      expect(row.liveMean).toBeCloseTo(0.6 * pA + 0.4 * pB, 6);
      expect(row.drifted).toBe(false);
    });

    it('flags the class once the window has moved past the threshold (summary, gauges), while since-start keeps the history', async () => {
      await audit(u.app, b, cls, 6);
      const { row, report, live } = await driftOf(cls);
      expect(row.liveMean).toBeCloseTo(pB, 6);
      expect(row.shift).toBeCloseTo(pB - pA, 6);
      expect(row.drifted).toBe(true);
      expect(report.drifted).toEqual([cls]);
      expect(await gauge('detected', cls)).toBe(1);
      expect(await gauge('shift', cls)).toBeCloseTo(pB - pA, 6);
      const c = live.classes.find((x: { label: string }) => x.label === cls);
      expect(c.sinceStart.count).toBe(20);
      expect(c.sinceStart.meanLabelProbability).toBeCloseTo((10 * pA + 10 * pB) / 20, 6);
      expect(c.window.count).toBe(10);
    });

    it('does not flag a class with fewer items than ASM_FER_DRIFT_MIN_SAMPLES, however far it moved', async () => {
      // the image whose neutral probability lies farthest from the training mean: a move past the threshold
      const mean = base.bundle.manifest.thresholdLearning.classMeans.neutral as number;
      const far = images.reduce((i, _, j) => (Math.abs((probs[j]?.neutral as number) - mean) > Math.abs((probs[i]?.neutral as number) - mean) ? j : i), 0);
      await audit(u.app, images[far] as Buffer, 'neutral', 3);
      const { row } = await driftOf('neutral');
      expect(Math.abs(row.shift)).toBeGreaterThan((pB - pA) / 2);
      expect(row.samples).toBe(3);
      expect(row.drifted).toBe(false);
    });
  });

  describe('online thresholds (ASM_FER_ONLINE_THRESHOLDS)', () => {
    let v: TestApp;
    let place: FreshTrail;
    beforeAll(async () => {
      place = await freshTrail(kind);
      v = await startTestApp({ ...place.env, ASM_FER_ONLINE_THRESHOLDS: 'true', ASM_FER_STATS_WINDOW: '10', ASM_FER_DRIFT_MIN_SAMPLES: '5' });
    });
    afterAll(async () => {
      await v.close();
      await place.drop();
    });

    it("starts from the training means (the bundle's thresholds) and re-estimates a class once it has enough live items", async () => {
      const { manifest } = v.bundle;
      const learning = manifest.thresholdLearning;
      const before = (await request(v.app).get('/v1/audits/summary')).body.thresholds;
      expect(before.source).toBe('online');
      for (const c of manifest.classes) {
        expect(before.byClass[c].clean).toBeCloseTo(manifest.thresholds[c]?.clean as number, 6);
        expect(before.byClass[c].noisy).toBeCloseTo(manifest.thresholds[c]?.noisy as number, 6);
      }

      const img = images[0] as Buffer;
      const first = await audit(v.app, img, 'neutral', 5);
      for (const r of first) {
        expect(r.thresholdSource).toBe('online');
        expect(r.thresholds.clean).toBeCloseTo(manifest.thresholds.neutral?.clean as number, 6);
      }
      // Five live neutral items now replace neutral's training mean: mu_neutral = p, and rho = mu / max mu.
      const p = probs[0]?.neutral as number;
      const means = manifest.classes.map((c) => (c === 'neutral' ? p : (learning.classMeans[c] as number)));
      const top = Math.max(...means);
      const [sixth] = await audit(v.app, img, 'neutral', 1);
      expect(sixth.thresholdSource).toBe('online');
      expect(sixth.thresholds.clean).toBeCloseTo((learning.base.clean * p) / top, 9);
      expect(sixth.thresholds.noisy).toBeCloseTo((learning.base.noisy * p) / top, 9);
      expect(sixth.verdict).toBe(verdict(sixth.labelProbability, sixth.thresholds));
      expect(sixth.verdict).not.toBe(first[0].verdict);
      const stored = (await request(v.app).get(`/v1/audits/${sixth.id}`)).body;
      expect(stored).toMatchObject({ thresholds: sixth.thresholds, thresholdSource: 'online', verdict: sixth.verdict });
    });
  });
});
