// Unusual and broken image files, made at test time: crafted headers, odd colour models, animation, corruption.
import { crc32, deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { jpeg, png, rgbPixels } from '../fixtures/make-images.js';

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

/**
 * A PNG whose IHDR declares width x height (8-bit RGB) followed by a few rows of zeros: the head of a decompression
 * bomb (a whole one would be a few MB of deflated zeros), or, without `rows`, a header with no pixel data at all.
 */
export function pngDeclaring(width: number, height: number, rows = 0): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const idat = rows > 0 ? [chunk('IDAT', deflateSync(Buffer.alloc(rows * (1 + 3 * Math.min(width, 4096)))))] : [];
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), ...idat, chunk('IEND', Buffer.alloc(0))]);
}

/** A valid PNG with one bit of its IHDR CRC flipped. */
export async function pngBadCrc(): Promise<Buffer> {
  const buf = Buffer.from(await png(16, 16));
  // Signature (8) + length (4) + "IHDR" (4) + data (13) = 29: the CRC's first byte.
  buf[29] = (buf[29] ?? 0) ^ 0x01;
  return buf;
}

/** A small real JPEG whose SOF0 frame header claims width x height. */
export async function jpegDeclaring(width: number, height: number): Promise<Buffer> {
  const buf = Buffer.from(await jpeg(16, 16));
  for (let i = 2; i < buf.length - 9; i++) {
    if (buf[i] === 0xff && (buf[i + 1] === 0xc0 || buf[i + 1] === 0xc2)) {
      // FF Cx, length (2), precision (1), height (2), width (2).
      buf.writeUInt16BE(height, i + 5);
      buf.writeUInt16BE(width, i + 7);
      return buf;
    }
  }
  throw new Error('no SOF marker in the generated JPEG');
}

const raw = async (w: number, h: number) => sharp(await rgbPixels(w, h), { raw: { width: w, height: h, channels: 3 } });

export async function animatedGif(frames = 3): Promise<Buffer> {
  const pages = await Promise.all(Array.from({ length: frames }, async (_, i) => (await raw(32 + i, 32)).resize(32, 32).png().toBuffer()));
  return sharp(pages, { join: { animated: true } }).gif({ delay: 100, loop: 0 }).toBuffer();
}

export async function png16(): Promise<Buffer> {
  return (await raw(40, 40)).toColourspace('rgb16').png().toBuffer();
}

export async function cmykJpeg(): Promise<Buffer> {
  return (await raw(64, 64)).toColourspace('cmyk').jpeg().toBuffer();
}

export async function greyAlphaPng(): Promise<Buffer> {
  return (await raw(48, 48)).greyscale().ensureAlpha(0.5).png().toBuffer();
}

export async function palettePng(): Promise<Buffer> {
  return (await raw(48, 48)).png({ palette: true, colours: 16 }).toBuffer();
}

export async function greyPng(): Promise<Buffer> {
  return (await raw(48, 48)).greyscale().png().toBuffer();
}

export async function webp(): Promise<Buffer> {
  return (await raw(64, 64)).webp().toBuffer();
}

export async function tiff(): Promise<Buffer> {
  return (await raw(64, 64)).tiff().toBuffer();
}

export async function avif(): Promise<Buffer> {
  return (await raw(64, 64)).avif({ effort: 0 }).toBuffer();
}

export async function staticGif(): Promise<Buffer> {
  return (await raw(48, 48)).gif().toBuffer();
}

export const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="48" height="48"><rect width="48" height="48" fill="#888"/></svg>');
