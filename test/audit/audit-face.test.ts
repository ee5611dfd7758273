// The audit use case both POST /v1/audit and the Label Studio worker call (src/audit/audit-face.ts), on a fake model,
// trail and metrics: what each record holds, and the order of its side effects.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { auditFaces, type AuditFaceDeps, type LabelledFace } from '../../src/audit/audit-face.js';
import type { NewAuditRecord } from '../../src/audit/judge.js';
import type { ServedModel } from '../../src/inference/model-host.js';

const CLASSES = ['happy', 'sad'];
const input = { name: 'x', layout: 'NCHW', dtype: 'float32', channels: 1, height: 2, width: 2, color: 'bt601-luma', resize: 'bilinear-fill', scale: 1 / 255, mean: [0], std: [1] };

/** A model that answers each face with `rows` in turn; `events` logs what the use case did, in order. */
function setup(rows: number[][], opts: { storeImages?: boolean; labelQuality?: { score: string } } = {}) {
  const events: string[] = [];
  const recorded: NewAuditRecord[][] = [];
  const served = {
    manifest: { name: 'm', version: '7', classes: CLASSES, input, labelQuality: opts.labelQuality },
    inference: {
      probabilities: async (tensors: readonly Float32Array[]) => {
        events.push(`classify ${tensors.length}`);
        return tensors.map((_, i) => Float32Array.from(rows[i] as number[]));
      },
    },
  } as unknown as Pick<ServedModel, 'manifest' | 'inference'>;
  const deps: AuditFaceDeps = {
    trail: {
      thresholdsFor: async () => {
        events.push('thresholds');
        return { source: 'bundle', byClass: { happy: { clean: 0.7, noisy: 0.3 }, sad: { clean: 0.7, noisy: 0.3 } } };
      },
      record: async (records) => {
        events.push(`record ${records.length}`);
        recorded.push([...records]);
      },
    },
    metrics: {
      recordVerdict: (label, verdict) => void events.push(`verdict ${label} ${verdict}`),
      recordPrediction: (label) => void events.push(`prediction ${label}`),
    },
    storeImages: opts.storeImages ?? false,
  };
  return { events, recorded, served, deps };
}

function face(label: string, image: Buffer, index = 0): LabelledFace {
  const detected = { box: { x: 10, y: 20, width: 30, height: 40 }, score: 0.9, pixels: { data: new Uint8Array(12), width: 2, height: 2, format: 'png' as const } };
  return { label, itemId: `item-${label}`, annotatorId: 'a', datasetId: null, image, found: { width: 100, height: 200, detected: true, faces: [detected] }, pick: { index, face: detected } };
}

describe('auditFaces', () => {
  it('classifies every face in one batch, judges each against its class, commits them all, then counts them', async () => {
    const { events, recorded, served, deps } = setup([
      [0.9, 0.1],
      [0.8, 0.2],
    ]);
    const records = await auditFaces(deps, served, [face('happy', Buffer.from('one')), face('sad', Buffer.from('two'), 2)], { ids: ['id-1', 'id-2'], nowMs: () => 1234 });
    expect(events).toEqual(['classify 2', 'thresholds', 'record 2', 'verdict happy clean', 'prediction happy', 'verdict sad noisy', 'prediction happy']);
    expect(recorded).toEqual([records]);
    expect(records.map((r) => [r.id, r.label, r.verdict, r.predicted, r.timeMs])).toEqual([
      ['id-1', 'happy', 'clean', 'happy', 1234],
      ['id-2', 'sad', 'noisy', 'happy', 1234],
    ]);
    expect(records[1]).toMatchObject({
      itemId: 'item-sad',
      annotatorId: 'a',
      datasetId: null,
      model: { name: 'm', version: '7' },
      imageSha256: createHash('sha256').update('two').digest('hex'),
      image: null,
      face: { index: 2, score: 0.9, box: { x: 10, y: 20, width: 30, height: 40, relative: { x: 0.1, y: 0.1, width: 0.3, height: 0.2 } } },
    });
  });

  it('keeps the image bytes only when asked to', async () => {
    const { served, deps } = setup([[0.5, 0.5]], { storeImages: true });
    const [r] = await auditFaces(deps, served, [face('happy', Buffer.from('kept'))], { ids: ['id'], nowMs: () => 0 });
    expect(r?.image).toEqual(Buffer.from('kept'));
  });

  it("uses the bundle's label-quality score, self-confidence when it names none", async () => {
    const a = setup([[0.6, 0.4]]);
    const b = setup([[0.6, 0.4]], { labelQuality: { score: 'normalized-margin' } });
    const [plain] = await auditFaces(a.deps, a.served, [face('sad', Buffer.from('x'))], { ids: ['id'], nowMs: () => 0 });
    const [margin] = await auditFaces(b.deps, b.served, [face('sad', Buffer.from('x'))], { ids: ['id'], nowMs: () => 0 });
    expect(plain?.quality).toBeCloseTo(0.4);
    expect(margin?.quality).toBeCloseTo((0.4 - 0.6 + 1) / 2);
  });

  it('commits and counts nothing once the signal has aborted', async () => {
    const { events, recorded, served, deps } = setup([[0.9, 0.1]]);
    const controller = new AbortController();
    const probabilities = served.inference.probabilities.bind(served.inference);
    served.inference.probabilities = async (t, s) => {
      const rows = await probabilities(t, s);
      controller.abort(new Error('gone'));
      return rows;
    };
    await expect(auditFaces(deps, served, [face('happy', Buffer.from('x'))], { ids: ['id'], nowMs: () => 0, signal: controller.signal })).rejects.toThrow('gone');
    expect(events).toEqual(['classify 1']);
    expect(recorded).toEqual([]);
  });
});
