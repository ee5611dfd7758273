// Multipart intake: express-openapi-validator runs multer (memory storage, limits from config) and checks the parts
// against openapi.yaml; the helpers here hand the handlers the image buffers and labels in request order.
import type { Request, RequestHandler } from 'express';
import * as OpenApiValidator from 'express-openapi-validator';
import multer from 'multer';
import type { Config } from '../config.js';
import { BadRequest } from '../errors.js';
import type { Box } from '../image/decode.js';

/** Longest accepted text part (a label); class names are at most 32 characters by the bundle schema. */
const MAX_FIELD_BYTES = 1024;

/** Request validation against the contract, with multer limits → 413 (too large / too many) or 400. */
export function contractValidator(config: Config, apiSpecPath: string): RequestHandler[] {
  return OpenApiValidator.middleware({
    apiSpec: apiSpecPath,
    validateRequests: true,
    validateResponses: false,
    // Full RFC 3339 checks: the default "fast" mode takes 2026-02-30 as a date-time, which then silently rolls over.
    ajvFormats: { mode: 'full' },
    // The admin bearer token is checked by src/http/models.ts, so an unconfigured token can answer 403, not 401.
    validateSecurity: false,
    fileUploader: {
      storage: multer.memoryStorage(),
      limits: {
        fileSize: config.ASM_FER_MAX_FILE_BYTES,
        files: config.ASM_FER_MAX_FILES,
        // Per image at most: label, box, face, itemId, annotatorId, datasetId.
        fields: 6 * config.ASM_FER_MAX_FILES,
        fieldSize: MAX_FIELD_BYTES,
      },
    },
  }) as unknown as RequestHandler[];
}

/** The `image` file parts in order; any other file part, or none at all, is a 400. */
export function imageParts(req: Request): Buffer[] {
  const files = (Array.isArray(req.files) ? req.files : []) as Express.Multer.File[];
  const stray = files.find((f) => f.fieldname !== 'image');
  if (stray) throw new BadRequest(`unexpected file part ${JSON.stringify(stray.fieldname)}; images go in "image" parts`);
  if (files.length === 0) throw new BadRequest('no "image" file part; send each image as a file in a part named "image"');
  return files.map((f) => f.buffer);
}

/** The text parts called `name`, in order (multer gives a string for one part, an array for several). */
export function textParts(req: Request, name: string): string[] {
  const raw: unknown = (req.body as Record<string, unknown> | undefined)?.[name];
  if (raw === undefined) return [];
  return (Array.isArray(raw) ? raw : [raw]).map(String);
}

/** The `label` text parts in order. */
export function labelParts(req: Request): string[] {
  return textParts(req, 'label');
}

/**
 * An optional client id part (itemId, annotatorId, datasetId) per image: none (all null), one per image in order, or,
 * when `shared`, a single one that applies to every image.
 */
export function clientIdParts(req: Request, name: string, imageCount: number, shared: boolean): (string | null)[] {
  const raw = textParts(req, name);
  if (raw.length === 0) return Array.from({ length: imageCount }, () => null);
  if (raw.length === imageCount) return raw;
  if (shared && raw.length === 1) return Array.from({ length: imageCount }, () => raw[0] as string);
  const allowed = shared ? `one ${name} for all images, one per image in the same order, or none` : `one ${name} per image in the same order, or none`;
  throw new BadRequest(`got ${imageCount} image part(s) and ${raw.length} ${name} part(s); send ${allowed}`);
}

const BOX = /^\s*(\d{1,6})\s*,\s*(\d{1,6})\s*,\s*(\d{1,6})\s*,\s*(\d{1,6})\s*$/;

/**
 * The `box` text parts ("x,y,width,height" in pixels of the upright image), one per image or none at all;
 * the i-th box belongs to the i-th image.
 */
export function boxParts(req: Request, imageCount: number): Box[] {
  const raw = textParts(req, 'box');
  if (raw.length === 0) return [];
  if (raw.length !== imageCount) {
    throw new BadRequest(`got ${imageCount} image part(s) and ${raw.length} box part(s); send one box per image, in the same order, or none`);
  }
  return raw.map((text, i) => {
    const m = BOX.exec(text);
    if (!m) throw new BadRequest(`box part ${i} is ${JSON.stringify(text.slice(0, 64))}; expected "x,y,width,height" in whole pixels`);
    const [x, y, width, height] = m.slice(1).map(Number) as [number, number, number, number];
    if (width === 0 || height === 0) throw new BadRequest(`box part ${i} has zero width or height`);
    return { x, y, width, height };
  });
}
