import { describe, expect, it } from 'vitest';
import { BoxOutsideImage, PayloadTooLarge, UnreadableImage, UnsupportedMedia } from '../../src/errors.js';
import { decodeImage, sniffFormat } from '../../src/image/decode.js';
import { jpeg, png, solidPng, textFile, truncated } from '../fixtures/make-images.js';

const at48 = { width: 48, height: 48, maxPixels: 1_000_000 };

describe('sniffFormat', () => {
  it('recognises formats by their magic bytes', async () => {
    expect(sniffFormat(await png(4, 4))).toBe('png');
    expect(sniffFormat(await jpeg(4, 4))).toBe('jpeg');
    expect(sniffFormat(Buffer.from('GIF89a....'))).toBe('gif');
    expect(sniffFormat(Buffer.from('RIFF\0\0\0\0WEBPVP8 '))).toBe('webp');
  });

  it('returns undefined for text and empty input', () => {
    expect(sniffFormat(textFile)).toBeUndefined();
    expect(sniffFormat(new Uint8Array())).toBeUndefined();
  });
});

describe('decodeImage', () => {
  it('takes the header its caller already probed instead of reading it again', async () => {
    const img = await jpeg(100, 60);
    const box = { x: 50, y: 0, width: 40, height: 40 };
    await expect(decodeImage(img, { ...at48, box })).resolves.toMatchObject({ width: 48, height: 48 });
    // Told the image is 60x60, the box (x 50..90) no longer fits: the given header was used, not the file's.
    await expect(decodeImage(img, { ...at48, box }, 0, { format: 'jpeg', width: 60, height: 60 })).rejects.toBeInstanceOf(BoxOutsideImage);
  });

  it('returns RGB pixels at the model size, resizing when needed', async () => {
    const img = await decodeImage(await jpeg(100, 60), at48);
    expect(img).toMatchObject({ width: 48, height: 48, format: 'jpeg' });
    expect(img.data).toHaveLength(48 * 48 * 3);
  });

  it('drops alpha without compositing', async () => {
    const img = await decodeImage(await png(48, 48, 4), at48);
    expect(img.data).toHaveLength(48 * 48 * 3);
    // The last pixel of the gradient is (255, 255, 127) at alpha 128; compositing would darken or lighten it.
    expect(Array.from(img.data.slice(-3))).toEqual([255, 255, 127]);
  });

  it('applies EXIF orientation before resizing', async () => {
    // 64x32 stored, orientation 6 (rotate 90° clockwise): upright it is 32 wide, 64 high.
    const rotated = await decodeImage(await jpeg(64, 32, { orientation: 6 }), { width: 32, height: 64, maxPixels: 1e6 });
    const plain = await decodeImage(await jpeg(64, 32), { width: 32, height: 64, maxPixels: 1e6 });
    // Upright top-left comes from the stored bottom-left: green channel high there, low in the unrotated stretch.
    expect(rotated.data[1]).toBeGreaterThan(200);
    expect(plain.data[1]).toBeLessThan(50);
  });

  it('accepts a 1x1 image', async () => {
    const img = await decodeImage(await png(1, 1), at48);
    expect(img.data).toHaveLength(48 * 48 * 3);
  });

  it('rejects bytes that are not an image with UnsupportedMedia (415)', async () => {
    await expect(decodeImage(textFile, at48, 2)).rejects.toMatchObject({ constructor: UnsupportedMedia, status: 415, extras: { index: 2 } });
  });

  it.each([
    ['PNG', () => png(200, 200)],
    ['JPEG', () => jpeg(200, 200)],
  ])('rejects a truncated %s with UnreadableImage (422)', async (_name, make) => {
    const err = await decodeImage(truncated(await make()), at48).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnreadableImage);
    expect((err as UnreadableImage).status).toBe(422);
  });

  it('rejects an image over the pixel cap with PayloadTooLarge (413) before decoding', async () => {
    const err = await decodeImage(await solidPng(1001, 1000), at48).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PayloadTooLarge);
    expect((err as Error).message).toMatch(/1001x1000 = 1001000 pixels, the limit is 1000000/);
  });
});
