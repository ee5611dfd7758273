// The zlib-only PNG path gives exactly sharp's pixels, and hands every file it does not fully understand to sharp.
import { readdirSync, readFileSync } from 'node:fs';
import sharp, { type PngOptions } from 'sharp';
import { describe, expect, it } from 'vitest';
import { decodeImage, probeImage } from '../../src/image/decode.js';
import { decodePngAtSize, pngSize } from '../../src/image/png-direct.js';
import { png, truncated } from '../fixtures/make-images.js';
import { FIXTURE_ROOT } from '../fixtures/paths.js';

const SIZE = 48;

/** Seeded noise, so every PNG filter type (Paeth included) has real work to do. */
function noise(channels: number, seed: number): Buffer {
  let s = seed;
  return Buffer.from(Array.from({ length: SIZE * SIZE * channels }, () => (s = (s * 1103515245 + 12345) >>> 0) >>> 24));
}

const encode = (channels: 1 | 2 | 3 | 4, opts: PngOptions, seed = 1) =>
  sharp(noise(channels, seed), { raw: { width: SIZE, height: SIZE, channels } }).png(opts).toBuffer();

/** sharp's pixels for the same file: a full-image face box keeps decode.ts on its sharp path. */
async function viaSharp(file: Buffer): Promise<Uint8Array> {
  const img = await decodeImage(file, { width: SIZE, height: SIZE, maxPixels: 1e6, box: { x: 0, y: 0, width: SIZE, height: SIZE } });
  return img.data;
}

describe('decodePngAtSize', () => {
  const ferplusDir = `${FIXTURE_ROOT}/ferplus/FER2013Valid`;
  const ferplus = readdirSync(ferplusDir).filter((f) => f.endsWith('.png')).slice(0, 8);

  it.each(ferplus)('matches sharp on FER+ file %s', async (name) => {
    const file = readFileSync(`${ferplusDir}/${name}`);
    const direct = decodePngAtSize(file, SIZE, SIZE);
    expect(direct).toBeDefined();
    expect(Buffer.from(direct as Uint8Array).equals(Buffer.from(await viaSharp(file)))).toBe(true);
  });

  const variants: [string, 1 | 2 | 3 | 4, PngOptions][] = [
    ['grey, adaptive filters', 1, { adaptiveFiltering: true }],
    ['grey, no filters, level 0', 1, { adaptiveFiltering: false, compressionLevel: 0 }],
    ['grey + alpha', 2, { adaptiveFiltering: true }],
    ['RGB, adaptive filters', 3, { adaptiveFiltering: true, compressionLevel: 9 }],
    ['RGB, no filters', 3, { adaptiveFiltering: false }],
    ['RGBA', 4, { adaptiveFiltering: true }],
  ];
  it.each(variants)('matches sharp on %s', async (_name, channels, opts) => {
    for (const seed of [1, 2, 3]) {
      const file = await encode(channels, opts, seed);
      const direct = decodePngAtSize(file, SIZE, SIZE);
      expect(direct).toBeDefined();
      expect(Buffer.from(direct as Uint8Array).equals(Buffer.from(await viaSharp(file)))).toBe(true);
    }
  });

  it('leaves to sharp what it does not handle', async () => {
    const valid = await png(SIZE, SIZE);
    const badCrc = Buffer.from(valid);
    badCrc[29] = (badCrc[29] ?? 0) ^ 1;
    const withIcc = await sharp(noise(3, 4), { raw: { width: SIZE, height: SIZE, channels: 3 } }).withIccProfile('p3').png().toBuffer();
    const refused = [
      ['another size', await png(SIZE + 1, SIZE)],
      ['interlaced', await encode(3, { progressive: true })],
      ['16-bit', await sharp(noise(3, 5), { raw: { width: SIZE, height: SIZE, channels: 3 } }).toColourspace('rgb16').png().toBuffer()],
      ['palette', await encode(3, { palette: true })],
      ['ICC profile', withIcc],
      ['truncated', truncated(valid, 0.7)],
      ['bad CRC', badCrc],
      ['JPEG', await sharp(noise(3, 6), { raw: { width: SIZE, height: SIZE, channels: 3 } }).jpeg().toBuffer()],
    ] as const;
    for (const [name, file] of refused) expect(decodePngAtSize(file, SIZE, SIZE), name).toBeUndefined();
  });
});

describe('pngSize', () => {
  it("reads the size sharp reads from a plain PNG's IHDR, of any size and colour type", async () => {
    const files = [await png(300, 200), await encode(1, {}), await encode(4, {}), await encode(3, { palette: true }), await encode(3, { progressive: true })];
    for (const file of files) {
      const meta = await sharp(file).metadata();
      expect(pngSize(file)).toEqual({ width: meta.width, height: meta.height });
    }
  });

  it('leaves to sharp a PNG with EXIF (which may turn it) or whose chunks do not reach IEND', async () => {
    const valid = await png(SIZE, SIZE);
    const withExif = await sharp(noise(3, 7), { raw: { width: SIZE, height: SIZE, channels: 3 } }).withMetadata({ orientation: 6 }).png().toBuffer();
    for (const [name, file] of [
      ['EXIF orientation', withExif],
      ['truncated', truncated(valid, 0.7)],
      ['JPEG', await sharp(noise(3, 6), { raw: { width: SIZE, height: SIZE, channels: 3 } }).jpeg().toBuffer()],
    ] as const) {
      expect(pngSize(file), name).toBeUndefined();
    }
  });

  it('gives probeImage the upright size sharp gives, EXIF orientation included', async () => {
    const withExif = await sharp(noise(3, 7), { raw: { width: SIZE, height: SIZE, channels: 3 } }).resize(SIZE, SIZE / 2).withMetadata({ orientation: 6 }).png().toBuffer();
    expect(await probeImage(withExif, 1e6)).toMatchObject({ format: 'png', width: SIZE / 2, height: SIZE });
    expect(await probeImage(await png(60, 40), 1e6)).toEqual({ format: 'png', width: 60, height: 40 });
  });
});
