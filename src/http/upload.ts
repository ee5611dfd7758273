// Multipart intake: express-openapi-validator runs multer (memory storage, limits from config) and checks the parts
// against openapi.yaml; the helpers here hand the handlers the image buffers and labels in request order.
import type { Request, RequestHandler } from 'express';
import * as OpenApiValidator from 'express-openapi-validator';
import multer from 'multer';
import type { Config } from '../config.js';
import { BadRequest } from '../errors.js';

/** Longest accepted text part (a label); class names are at most 32 characters by the bundle schema. */
const MAX_FIELD_BYTES = 1024;

/** Request validation against the contract, with multer limits → 413 (too large / too many) or 400. */
export function contractValidator(config: Config, apiSpecPath: string): RequestHandler[] {
  return OpenApiValidator.middleware({
    apiSpec: apiSpecPath,
    validateRequests: true,
    validateResponses: false,
    fileUploader: {
      storage: multer.memoryStorage(),
      limits: {
        fileSize: config.ASM_FER_MAX_FILE_BYTES,
        files: config.ASM_FER_MAX_FILES,
        fields: config.ASM_FER_MAX_FILES,
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

/** The `label` text parts in order (multer gives a string for one part, an array for several). */
export function labelParts(req: Request): string[] {
  const raw: unknown = (req.body as Record<string, unknown> | undefined)?.label;
  if (raw === undefined) return [];
  return (Array.isArray(raw) ? raw : [raw]).map(String);
}
