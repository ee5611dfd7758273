// Turns uploaded bytes into 8-bit RGB pixels at the model's size (or whole and upright, or letterboxed for the face
// detector): sniff the format, cap the area, decode with sharp.
//
// Error rule: bytes whose magic number is not a supported image format are 415 (UnsupportedMedia), whatever the
// declared Content-Type or file name says; bytes that start like a supported format but fail to decode (corrupt,
// truncated) are 422 (UnreadableImage); an image whose width x height exceeds the pixel cap is 413 (PayloadTooLarge),
// checked from the header before any pixel is decoded; a face box that does not lie inside the image is 422
// (BoxOutsideImage).
import sharp, { type Sharp } from 'sharp';
import { BoxOutsideImage, PayloadTooLarge, UnreadableImage, UnsupportedMedia } from '../errors.js';
import { decodePngAtSize, pngSize } from './png-direct.js';

export type ImageFormat = 'jpeg' | 'png' | 'webp' | 'gif' | 'tiff' | 'avif';

/** A face box in pixels of the upright image (after EXIF orientation): left, top, width, height. */
export interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface DecodeOptions {
  width: number;
  height: number;
  maxPixels: number;
  /** Crop to this region before resizing. */
  box?: Box;
}

/** Interleaved 8-bit RGB, row-major: data.length = width * height * 3. */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
  format: ImageFormat;
}

const startsWith = (buf: Uint8Array, bytes: number[], offset = 0) => bytes.every((b, i) => buf[offset + i] === b);
const ascii = (s: string) => [...s].map((c) => c.charCodeAt(0));

/** The image format named by the first bytes, or undefined. Formats are the ones sharp's prebuilt libvips decodes. */
export function sniffFormat(buf: Uint8Array): ImageFormat | undefined {
  if (startsWith(buf, [0xff, 0xd8, 0xff])) return 'jpeg';
  if (startsWith(buf, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return 'png';
  if (startsWith(buf, ascii('RIFF')) && startsWith(buf, ascii('WEBP'), 8)) return 'webp';
  if (startsWith(buf, ascii('GIF87a')) || startsWith(buf, ascii('GIF89a'))) return 'gif';
  if (startsWith(buf, [0x49, 0x49, 0x2a, 0x00]) || startsWith(buf, [0x4d, 0x4d, 0x00, 0x2a])) return 'tiff';
  if (startsWith(buf, ascii('ftyp'), 4) && (startsWith(buf, ascii('avif'), 8) || startsWith(buf, ascii('avis'), 8))) return 'avif';
  return undefined;
}

/**
 * Decodes `buf` and returns RGB pixels at opts.width x opts.height. EXIF orientation is applied; alpha is dropped
 * without compositing (as PIL's convert('RGB') does on the training side); grey images become R = G = B; images not
 * already at the target size are stretched with a bilinear filter (the bundle's `bilinear-fill`).
 * `index` is the image's position in the request, carried into errors; `header` is probeImage's answer when the
 * caller already has it (the header is then not read again).
 */
export async function decodeImage(buf: Uint8Array, opts: DecodeOptions, index?: number, header?: ImageHeader): Promise<RgbImage> {
  if (sniffFormat(buf) === 'png' && !opts.box && opts.width * opts.height <= opts.maxPixels) {
    const direct = decodePngAtSize(buf, opts.width, opts.height);
    if (direct) return { data: direct, width: opts.width, height: opts.height, format: 'png' };
  }
  const { format, width: uprightW, height: uprightH } = header ?? (await probeImage(buf, opts.maxPixels, index));
  const { box } = opts;
  if (box && (box.width < 1 || box.height < 1 || box.x + box.width > uprightW || box.y + box.height > uprightH)) {
    throw new BoxOutsideImage(
      `box x=${box.x},y=${box.y},width=${box.width},height=${box.height} does not lie inside the ${uprightW}x${uprightH} image`,
      index ?? 0,
    );
  }
  try {
    // rotate() before extract(): the box is in upright coordinates, as a viewer shows the image.
    let pipeline = sharp(buf, sharpInput(opts.maxPixels)).rotate();
    if (box) pipeline = pipeline.extract({ left: box.x, top: box.y, width: box.width, height: box.height });
    pipeline = pipeline.removeAlpha().toColourspace('srgb');
    const [w, h] = box ? [box.width, box.height] : [uprightW, uprightH];
    if (w !== opts.width || h !== opts.height) {
      pipeline = pipeline.resize(opts.width, opts.height, { fit: 'fill', kernel: 'linear' });
    }
    return await rgb(pipeline, opts.width, opts.height, format);
  } catch (err) {
    throw new UnreadableImage(`cannot decode the ${format} image: ${conciseSharpMessage(err)}`, index);
  }
}

// failOn 'error' rejects truncated and corrupt pixel data but tolerates harmless libvips warnings.
const sharpInput = (maxPixels: number) => ({ failOn: 'error', limitInputPixels: maxPixels }) as const;

/** What probeImage reads from an image's header: its format and upright size (after EXIF orientation). */
export interface ImageHeader {
  format: ImageFormat;
  width: number;
  height: number;
}

/** The format and upright size from the header, with the sniffing and area rules above. */
export async function probeImage(buf: Uint8Array, maxPixels: number, index?: number): Promise<ImageHeader> {
  const format = sniffFormat(buf);
  if (!format) throw new UnsupportedMedia('the part is not a JPEG, PNG, WebP, GIF, TIFF or AVIF image', index);
  const png = format === 'png' ? pngSize(buf) : undefined;
  if (png) {
    if (png.width * png.height > maxPixels) {
      throw new PayloadTooLarge(`image is ${png.width}x${png.height} = ${png.width * png.height} pixels, the limit is ${maxPixels}`, index);
    }
    return { format, ...png };
  }
  let meta: Awaited<ReturnType<ReturnType<typeof sharp>['metadata']>>;
  try {
    // Header only, so no pixel limit here: the area check below gives a precise 413 instead of a generic error.
    meta = await sharp(buf, { ...sharpInput(maxPixels), limitInputPixels: false }).metadata();
  } catch (err) {
    throw new UnreadableImage(`cannot read the ${format} header: ${conciseSharpMessage(err)}`, index);
  }
  const area = (meta.width ?? 0) * (meta.height ?? 0);
  if (area > maxPixels) {
    throw new PayloadTooLarge(`image is ${meta.width}x${meta.height} = ${area} pixels, the limit is ${maxPixels}`, index);
  }
  return { format, width: (meta.autoOrient?.width ?? meta.width) as number, height: (meta.autoOrient?.height ?? meta.height) as number };
}

/** Decodes the whole upright image at its own size, for face detection and the crops cut from it; `header` as above. */
export async function decodeUpright(buf: Uint8Array, maxPixels: number, index?: number, header?: ImageHeader): Promise<RgbImage> {
  const { format, width, height } = header ?? (await probeImage(buf, maxPixels, index));
  try {
    return await rgb(sharp(buf, sharpInput(maxPixels)).rotate().removeAlpha().toColourspace('srgb'), width, height, format);
  } catch (err) {
    throw new UnreadableImage(`cannot decode the ${format} image: ${conciseSharpMessage(err)}`, index);
  }
}

/** Where a letterboxed image sits in its square: input x = image x * scaleX + padX, likewise for y. */
export interface Letterbox {
  size: number;
  scaleX: number;
  scaleY: number;
  padX: number;
  padY: number;
}

/**
 * img scaled to fit a size x size square (aspect kept, bilinear, on libuv's pool rather than the event loop),
 * centred on black, as MediaPipe prepares detector input.
 */
export async function letterbox(img: RgbImage, size: number): Promise<{ image: RgbImage; box: Letterbox }> {
  const fit = size / Math.max(img.width, img.height);
  const w = Math.max(1, Math.round(img.width * fit));
  const h = Math.max(1, Math.round(img.height * fit));
  const padX = Math.floor((size - w) / 2);
  const padY = Math.floor((size - h) / 2);
  const pipeline = sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
    .resize(w, h, { fit: 'fill', kernel: 'linear' })
    .extend({ left: padX, right: size - w - padX, top: padY, bottom: size - h - padY, background: { r: 0, g: 0, b: 0 } });
  // The drawn size, not the nominal scale, maps coordinates back: rounding w and h shifts them by up to half a pixel.
  return { image: await rgb(pipeline, size, size, img.format), box: { size, scaleX: w / img.width, scaleY: h / img.height, padX, padY } };
}

async function rgb(pipeline: Sharp, width: number, height: number, format: ImageFormat): Promise<RgbImage> {
  const { data, info } = await pipeline.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  if (info.channels !== 3 || info.width !== width || info.height !== height) {
    throw new Error(`decoder produced ${info.width}x${info.height}x${info.channels}`);
  }
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height, format };
}

/** libvips messages can span lines and name temp paths; keep the first line only. */
function conciseSharpMessage(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return (msg.split('\n')[0] ?? '').slice(0, 200);
}
