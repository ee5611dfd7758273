// A bundle that is missing or damaged at start: the process refuses with one line naming the problem and exits 1,
// before it listens.
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { FIXTURE_BUNDLE_DIR } from '../fixtures/paths.js';
import { startServer, stopServers } from '../fixtures/server-process.js';

const scratch = mkdtempSync(path.join(tmpdir(), 'asm-fer-faults-'));
afterEach(stopServers);
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** A copy of the fixture bundle, damaged by `damage(dir)`. */
function damagedBundle(name: string, damage: (dir: string) => void): string {
  const dir = path.join(scratch, name);
  cpSync(FIXTURE_BUNDLE_DIR, dir, { recursive: true });
  damage(dir);
  return dir;
}

const manifestOf = (dir: string) => JSON.parse(readFileSync(path.join(dir, 'model.json'), 'utf8')) as { model: { sha256: string } };

async function refuses(dir: string): Promise<string> {
  const p = startServer({ ASM_FER_MODEL_DIR: dir });
  expect(await p.exited).toBe(1);
  const lines = p.err().trim().split('\n');
  expect(lines, p.err()).toHaveLength(1);
  expect(p.out()).not.toContain('"msg":"listening"');
  return lines[0] as string;
}

describe('start-up with a bad bundle', () => {
  it('refuses a folder without model.json', async () => {
    const line = await refuses(damagedBundle('no-manifest', (d) => rmSync(path.join(d, 'model.json'))));
    expect(line).toMatch(/^asm-fer: cannot start: .*model\.json.*ENOENT/);
  });

  it('refuses a bundle whose ONNX file is missing', async () => {
    const line = await refuses(damagedBundle('no-onnx', (d) => rmSync(path.join(d, 'model.onnx'))));
    expect(line).toMatch(/^asm-fer: cannot start: .*model\.onnx/);
  });

  it('refuses a model.json that is not JSON', async () => {
    const line = await refuses(damagedBundle('bad-json', (d) => writeFileSync(path.join(d, 'model.json'), '{"schemaVersion": 1, "name": ')));
    expect(line).toMatch(/^asm-fer: cannot start: .*model\.json/);
  });

  it('refuses a model.json that breaks the bundle schema', async () => {
    const line = await refuses(
      damagedBundle('bad-schema', (d) => {
        const m = JSON.parse(readFileSync(path.join(d, 'model.json'), 'utf8')) as Record<string, unknown>;
        delete m.classes;
        writeFileSync(path.join(d, 'model.json'), JSON.stringify(m));
      }),
    );
    expect(line).toMatch(/^asm-fer: cannot start: .*classes/);
  });

  it('refuses an ONNX file whose bytes changed (sha256 mismatch)', async () => {
    const line = await refuses(
      damagedBundle('flipped-byte', (d) => {
        const onnx = readFileSync(path.join(d, 'model.onnx'));
        onnx[onnx.length >> 1] = (onnx[onnx.length >> 1] ?? 0) ^ 0xff;
        writeFileSync(path.join(d, 'model.onnx'), onnx);
      }),
    );
    expect(line).toMatch(/^asm-fer: cannot start: .*sha256/);
  });

  it('refuses a corrupt ONNX file even when model.json vouches for it', async () => {
    const dir = damagedBundle('corrupt-onnx', (d) => {
      const garbage = Buffer.from('this is not an ONNX protobuf');
      writeFileSync(path.join(d, 'model.onnx'), garbage);
      const m = manifestOf(d);
      m.model.sha256 = createHash('sha256').update(garbage).digest('hex');
      writeFileSync(path.join(d, 'model.json'), JSON.stringify(m));
    });
    expect(await refuses(dir)).toMatch(/^asm-fer: cannot start: .*model\.onnx is not a readable ONNX model/);
  });
});
