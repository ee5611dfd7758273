// Decodes the common upload — a plain 8-bit PNG already at the model's input size, as FER+ ships — with zlib alone,
// skipping sharp/libvips, whose per-image set-up costs more CPU than the model's own share of a batch (E5 in
// docs/results.md). Anything else returns undefined and goes through sharp. Pixels are identical to sharp's:
// test/image/png-direct.test.ts.
import { crc32, inflateSync } from 'node:zlib';

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Channels per PNG colour type handled here: grey, RGB, grey + alpha, RGBA (palette images go to sharp). */
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 4: 2, 6: 4 };

/**
 * Chunks that change no pixel sharp would produce. Any other ancillary chunk (iCCP, gAMA, sRGB, cHRM, eXIf, tRNS,
 * sBIT, ...) might, so such files go to sharp.
 */
const HARMLESS = new Set(['IHDR', 'IDAT', 'IEND', 'tEXt', 'zTXt', 'iTXt', 'tIME', 'pHYs', 'bKGD']);

/**
 * Width and height from the IHDR of a PNG without an eXIf chunk (so no EXIF orientation can turn it: its upright size
 * is its stored size) whose chunks are well formed up to IEND (CRCs are left to the decoder); undefined for anything
 * else, which sharp then reads. Spares the common upload a trip through sharp's metadata call (a libvips set-up and
 * a hop to libuv's pool) before it is decoded.
 */
export function pngSize(buf: Uint8Array): { width: number; height: number } | undefined {
  if (buf.length < 8 + 25 || !SIGNATURE.every((b, i) => buf[i] === b)) return undefined;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (view.getUint32(8) !== 13 || view.getUint32(12) !== 0x49484452 /* IHDR */) return undefined;
  const width = view.getUint32(16);
  const height = view.getUint32(20);
  // PNG limits each side to 2^31 - 1; zero is invalid.
  if (width < 1 || height < 1 || width > 0x7fffffff || height > 0x7fffffff) return undefined;
  for (let at = 8; at + 12 <= buf.length; ) {
    const length = view.getUint32(at);
    const type = String.fromCharCode(buf[at + 4] ?? 0, buf[at + 5] ?? 0, buf[at + 6] ?? 0, buf[at + 7] ?? 0);
    if (type === 'eXIf') return undefined;
    at += 12 + length;
    if (at > buf.length) return undefined;
    if (type === 'IEND') return { width, height };
  }
  return undefined;
}

/**
 * Interleaved 8-bit RGB pixels of `buf` when it is a valid, non-interlaced, 8-bit grey/RGB/grey-alpha/RGBA PNG of
 * exactly width x height holding only harmless chunks; undefined otherwise (including any corruption, which sharp
 * then reports in its own words). Alpha is dropped, grey is copied to R, G and B, as decode.ts does with sharp.
 */
export function decodePngAtSize(buf: Uint8Array, width: number, height: number): Uint8Array | undefined {
  if (buf.length < 8 + 25 || !SIGNATURE.every((b, i) => buf[i] === b)) return undefined;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const idat: Uint8Array[] = [];
  let channels = 0;
  let sawEnd = false;
  for (let at = 8; at + 12 <= buf.length && !sawEnd; ) {
    const length = view.getUint32(at);
    const type = String.fromCharCode(buf[at + 4] ?? 0, buf[at + 5] ?? 0, buf[at + 6] ?? 0, buf[at + 7] ?? 0);
    const end = at + 12 + length;
    if (end > buf.length || !HARMLESS.has(type)) return undefined;
    const data = buf.subarray(at + 8, at + 8 + length);
    if (crc32(buf.subarray(at + 4, at + 8 + length)) !== view.getUint32(at + 8 + length)) return undefined;
    if (at === 8) {
      // IHDR must come first: width, height, bit depth, colour type, compression, filter, interlace.
      if (type !== 'IHDR' || length !== 13) return undefined;
      const ihdr = new DataView(data.buffer, data.byteOffset, 13);
      channels = CHANNELS[data[9] ?? -1] ?? 0;
      if (ihdr.getUint32(0) !== width || ihdr.getUint32(4) !== height || data[8] !== 8 || !channels) return undefined;
      if (data[10] !== 0 || data[11] !== 0 || data[12] !== 0) return undefined;
    } else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') sawEnd = true;
    at = end;
  }
  if (!sawEnd || idat.length === 0) return undefined;
  const stride = width * channels;
  const expected = height * (1 + stride);
  let raw: Buffer;
  try {
    raw = inflateSync(Buffer.concat(idat), { maxOutputLength: expected + 1 });
  } catch {
    return undefined;
  }
  if (raw.length !== expected) return undefined;
  const px = unfilter(raw, height, stride, channels);
  if (!px) return undefined;
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0, n = width * height; i < n; i++) {
    const s = i * channels;
    if (channels <= 2) {
      const g = px[s] as number;
      rgb[3 * i] = g;
      rgb[3 * i + 1] = g;
      rgb[3 * i + 2] = g;
    } else {
      rgb[3 * i] = px[s] as number;
      rgb[3 * i + 1] = px[s + 1] as number;
      rgb[3 * i + 2] = px[s + 2] as number;
    }
  }
  return rgb;
}

/** Reverses PNG's per-row filters (None, Sub, Up, Average, Paeth); undefined on an unknown filter byte. */
function unfilter(raw: Uint8Array, height: number, stride: number, bpp: number): Uint8Array | undefined {
  const out = new Uint8Array(height * stride);
  // A zero row stands in for the row above the first, as the PNG spec says.
  const zeros = new Uint8Array(stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const cur = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const row = out.subarray(y * stride, (y + 1) * stride);
    const up = y > 0 ? out.subarray((y - 1) * stride, y * stride) : zeros;
    // One loop per filter keeps the per-byte work branch-free.
    switch (filter) {
      case 0:
        row.set(cur);
        break;
      case 1:
        for (let x = 0; x < stride; x++) row[x] = ((cur[x] as number) + (x >= bpp ? (row[x - bpp] as number) : 0)) & 0xff;
        break;
      case 2:
        for (let x = 0; x < stride; x++) row[x] = ((cur[x] as number) + (up[x] as number)) & 0xff;
        break;
      case 3:
        for (let x = 0; x < stride; x++) row[x] = ((cur[x] as number) + (((x >= bpp ? (row[x - bpp] as number) : 0) + (up[x] as number)) >> 1)) & 0xff;
        break;
      case 4:
        for (let x = 0; x < stride; x++) {
          const a = x >= bpp ? (row[x - bpp] as number) : 0;
          const b = up[x] as number;
          const c = x >= bpp ? (up[x - bpp] as number) : 0;
          const pa = Math.abs(b - c);
          const pb = Math.abs(a - c);
          const pc = Math.abs(a + b - 2 * c);
          row[x] = ((cur[x] as number) + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c)) & 0xff;
        }
        break;
      default:
        return undefined;
    }
  }
  return out;
}
