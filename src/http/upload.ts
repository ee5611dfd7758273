// Multipart intake: express-openapi-validator runs multer (memory storage, limits from config) and checks the parts
// against openapi.yaml; src/http/parts.ts then reads the parts into per-item requests. POST /v1/predict has its own
// intake with the same limits and schemas (image-intake.ts).
import type { RequestHandler } from 'express';
import * as OpenApiValidator from 'express-openapi-validator';
import multer from 'multer';
import type { Config } from '../config.js';

/** Longest accepted text part (a label); class names are at most 32 characters by the bundle schema. */
const MAX_FIELD_BYTES = 1024;

/** multer's limits: a part over the byte limit or too many parts → 413; a text part too long → 400. */
export function uploadLimits(config: Config): multer.Options['limits'] {
  return {
    fileSize: config.ASM_FER_MAX_FILE_BYTES,
    files: config.ASM_FER_MAX_FILES,
    // Per image at most: label, box, face, itemId, annotatorId, datasetId.
    fields: 6 * config.ASM_FER_MAX_FILES,
    fieldSize: MAX_FIELD_BYTES,
  };
}

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
    fileUploader: { storage: multer.memoryStorage(), limits: uploadLimits(config) },
  }) as unknown as RequestHandler[];
}
