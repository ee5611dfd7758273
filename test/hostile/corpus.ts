// The hostile-input corpus: each case sends one malformed, oversized, slow or merely unusual request to a running
// server and names the statuses a correct server may answer (a 4xx problem, or 200 where the input is legitimate).
import { jpeg, png, solidPng, textFile, truncated } from '../fixtures/make-images.js';
import { oneFace } from '../fixtures/photos.js';
import { imagePart, multipart, type Part } from '../fixtures/multipart.js';
import { postJson, postMultipart, rawExchange, send, type Reply } from './http-client.js';
import * as img from './images.js';

export interface Target {
  port: number;
  /** The served model's name and classes. */
  model: string;
  classes: string[];
  /** The server's ASM_FER_MAX_FILES. */
  maxFiles: number;
}

export interface HostileCase {
  name: string;
  /** Statuses a correct server may answer. */
  expect: number[];
  /** The openapi.yaml operation the reply must satisfy; absent for paths the contract does not list. */
  op?: { method: string; path: string };
  run(t: Target): Promise<Reply>;
}

const PREDICT = { method: 'POST', path: '/v1/predict' };
const AUDIT = { method: 'POST', path: '/v1/audit' };
const INFER = { method: 'POST', path: '/v2/models/{name}/infer' };
const LIST_AUDITS = { method: 'GET', path: '/v1/audits' };
const AUDIT_SUMMARY = { method: 'GET', path: '/v1/audits/summary' };
const GET_AUDIT = { method: 'GET', path: '/v1/audits/{id}' };
const GET_AUDIT_IMAGE = { method: 'GET', path: '/v1/audits/{id}/image' };

/** One image part on /v1/predict. */
const predictImage = (name: string, expect: number[], make: () => Promise<Buffer> | Buffer, filename = 'face.png'): HostileCase => ({
  name: `predict: ${name}`,
  expect,
  op: PREDICT,
  run: async (t) => postMultipart(t.port, '/v1/predict', [imagePart(await make(), filename)]),
});

/** Parts on /v1/predict; `query` (e.g. "?detect=never") is appended to the path. */
const predictParts = (name: string, expect: number[], parts: (t: Target) => Promise<Part[]>, query = ''): HostileCase => ({
  name: `predict: ${name}`,
  expect,
  op: PREDICT,
  run: async (t) => postMultipart(t.port, `/v1/predict${query}`, await parts(t)),
});

/** Parts on /v1/audit; `query` (e.g. "?detect=never") is appended to the path. */
const auditParts = (name: string, expect: number[], parts: (t: Target) => Promise<Part[]>, query = ''): HostileCase => ({
  name: `audit: ${name}`,
  expect,
  op: AUDIT,
  run: async (t) => postMultipart(t.port, `/v1/audit${query}`, await parts(t)),
});

/** A GET on the audit trail's read routes. */
const auditRead = (name: string, expect: number[], op: { method: string; path: string }, url: string): HostileCase => ({
  name: `audit trail: ${name}`,
  expect,
  op,
  run: (t) => send(t.port, 'GET', url),
});

const face = (value: string): Part => ({ name: 'face', data: value });
/** A query string encoded as a client library would (":" as %3A), so only the value under test can be wrong. */
const query = (params: Record<string, string>) => `?${new URLSearchParams(params).toString()}`;
/** A cursor shaped like the service's own (base64url), holding something the service never issues. */
const forgedCursor = Buffer.from('s-1; DROP TABLE audits').toString('base64url');
const UNKNOWN_ID = '00000000-0000-4000-8000-000000000000';

const label = (value: string): Part => ({ name: 'label', data: value });

const inferJson = (name: string, expect: number[], body: (t: Target) => string, contentType?: string): HostileCase => ({
  name: `v2 infer: ${name}`,
  expect,
  op: INFER,
  run: (t) => postJson(t.port, `/v2/models/${t.model}/infer`, body(t), contentType),
});

const tensor = (shape: number[], data: unknown[], extra: Record<string, unknown> = {}) =>
  JSON.stringify({ inputs: [{ name: 'input', shape, datatype: 'FP32', data, ...extra }] });
const zeros = (n: number) => new Array<number>(n).fill(0);
const PIXELS = 48 * 48;

/** Request line and headers of a multipart predict, without the blank line that ends them. */
const slowRequestHead = (port: number, length: number) =>
  `POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: multipart/form-data; boundary=slow\r\nContent-Length: ${length}\r\n`;

export const corpus: HostileCase[] = [
  // Bytes that are not an image, or not a whole one.
  predictImage('zero-byte part', [415], () => Buffer.alloc(0)),
  predictImage('text file named .png', [415], () => textFile),
  predictImage('SVG (not decoded by design)', [415], () => img.svg, 'face.svg'),
  predictImage('random bytes', [415], () => Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 251))),
  predictImage('PNG signature then garbage', [422], () => Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(200, 0x41)])),
  predictImage('truncated PNG (60%)', [422], async () => truncated(await png(64, 64), 0.6)),
  predictImage('truncated PNG (signature + half an IHDR)', [422], async () => truncated(await png(64, 64), 0.02)),
  predictImage('truncated JPEG (60%)', [422], async () => truncated(await jpeg(200, 200), 0.6), 'face.jpg'),
  predictImage('JPEG SOI marker only', [422], () => Buffer.from([0xff, 0xd8, 0xff]), 'face.jpg'),
  predictImage('truncated GIF', [422], async () => truncated(await img.staticGif(), 0.5), 'face.gif'),
  predictImage('truncated WebP', [422], async () => truncated(await img.webp(), 0.5), 'face.webp'),
  predictImage('PNG with a bad IHDR CRC', [422], () => img.pngBadCrc()),
  predictImage('PNG header declaring 0 x 0', [422], () => img.pngDeclaring(0, 0)),
  predictImage('PNG header without pixel data', [422], () => img.pngDeclaring(64, 64)),
  // Sizes: bombs are refused from the header, before any pixel is decoded.
  predictImage('PNG bomb head declaring 50000 x 50000', [413], () => img.pngDeclaring(50_000, 50_000, 4)),
  predictImage('PNG header declaring 2^31-1 x 2^31-1', [413, 422], () => img.pngDeclaring(2 ** 31 - 1, 2 ** 31 - 1, 1)),
  predictImage('JPEG header declaring 65000 x 65000', [413], () => img.jpegDeclaring(65_000, 65_000), 'face.jpg'),
  predictImage('real 7000 x 7000 PNG (49 MP, over the 40 MP cap)', [413], () => solidPng(7000, 7000)),
  // Legitimate but unusual images: a correct 200.
  predictImage('1 x 1 PNG', [200], () => png(1, 1)),
  predictImage('1 x 1 JPEG', [200], () => jpeg(1, 1), 'face.jpg'),
  predictImage('1 x 4000 strip', [200], () => png(1, 4000)),
  predictImage('animated GIF (first frame)', [200], () => img.animatedGif(), 'face.gif'),
  predictImage('static GIF', [200], () => img.staticGif(), 'face.gif'),
  predictImage('16-bit PNG', [200], () => img.png16()),
  predictImage('CMYK JPEG', [200], () => img.cmykJpeg(), 'face.jpg'),
  predictImage('RGBA PNG', [200], () => png(48, 48, 4)),
  predictImage('grey + alpha PNG', [200], () => img.greyAlphaPng()),
  predictImage('greyscale PNG', [200], () => img.greyPng()),
  predictImage('palette PNG', [200], () => img.palettePng()),
  predictImage('EXIF-rotated JPEG (orientation 6)', [200], () => jpeg(80, 40, { orientation: 6 }), 'face.jpg'),
  predictImage('WebP', [200], () => img.webp(), 'face.webp'),
  predictImage('TIFF', [200], () => img.tiff(), 'face.tiff'),
  predictImage('AVIF', [200], () => img.avif(), 'face.avif'),
  predictImage('JPEG with trailing garbage', [200], async () => Buffer.concat([await jpeg(48, 48), Buffer.alloc(1000, 0x5a)]), 'face.jpg'),
  predictImage('file name with path traversal and Unicode', [200], () => png(), '../../etc/пароль 😀.png'),
  // Multipart structure.
  predictParts('wrong field name "file"', [400], async () => [{ ...imagePart(await png()), name: 'file' }]),
  predictParts('wrong field name "images"', [400], async () => [{ ...imagePart(await png()), name: 'images' }]),
  predictParts('image sent as a text field', [400], async () => [{ name: 'image', data: 'not a file' }]),
  predictParts('no parts at all', [400], async () => []),
  predictParts('unknown extra text field', [400], async () => [imagePart(await png()), { name: 'debug', data: '1' }]),
  predictParts('one image more than allowed', [413], async (t) => {
    const one = await png(8, 8);
    return Array.from({ length: t.maxFiles + 1 }, () => imagePart(one));
  }),
  predictParts('malformed box', [400], async () => [imagePart(await png()), { name: 'box', data: '1,2,three,4' }]),
  predictParts('two boxes for one image', [400], async () => [imagePart(await png()), { name: 'box', data: '0,0,8,8' }, { name: 'box', data: '0,0,8,8' }]),
  predictParts('box outside the image', [422], async () => [imagePart(await png()), { name: 'box', data: '40,40,20,20' }]),
  predictParts('part header 64 KiB long', [400, 413, 431], async () => [{ ...imagePart(await png()), extraHeaders: [`X-Pad: ${'a'.repeat(64 * 1024)}`] }]),
  {
    name: 'predict: 8 MiB multipart preamble before the first part',
    expect: [200, 400, 413],
    op: PREDICT,
    run: async (t) => postMultipart(t.port, '/v1/predict', [imagePart(await png())], { preamble: Buffer.alloc(8 * 1024 * 1024, 0x2d) }),
  },
  {
    name: 'predict: no closing boundary',
    expect: [400],
    op: PREDICT,
    run: async (t) => postMultipart(t.port, '/v1/predict', [imagePart(await png())], { unterminated: true }),
  },
  {
    name: 'predict: multipart without a boundary parameter',
    expect: [400, 415],
    op: PREDICT,
    run: async (t) => {
      const { body } = multipart([imagePart(await png())]);
      return send(t.port, 'POST', '/v1/predict', { headers: { 'Content-Type': 'multipart/form-data' }, body });
    },
  },
  {
    name: 'predict: body declared as text/plain',
    expect: [415],
    op: PREDICT,
    run: async (t) => send(t.port, 'POST', '/v1/predict', { headers: { 'Content-Type': 'text/plain' }, body: 'hello' }),
  },
  {
    name: 'predict: no body and no content type',
    expect: [400, 415],
    op: PREDICT,
    run: async (t) => send(t.port, 'POST', '/v1/predict'),
  },
  {
    name: 'predict: slow upload (1 byte every 150 ms) past the request timeout',
    expect: [408],
    run: async (t) => {
      const { body } = multipart([imagePart(await png())], { boundary: 'slow' });
      const bytes = [...body].map((b) => Buffer.from([b]));
      return rawExchange(t.port, [`${slowRequestHead(t.port, body.length)}\r\n`, ...bytes], { gapMs: 150, timeoutMs: 20_000 });
    },
  },
  {
    name: 'predict: headers trickled in (slowloris) past the header timeout',
    expect: [408],
    run: async (t) => {
      const head = slowRequestHead(t.port, 10) + 'X-Slow: ';
      return rawExchange(t.port, [head, ...Array.from({ length: 400 }, () => 'a')], { gapMs: 100, timeoutMs: 30_000 });
    },
  },
  {
    name: 'raw HTTP: request line that is not HTTP',
    expect: [400],
    run: (t) => rawExchange(t.port, ['HELLO THERE\r\n\r\n']),
  },
  {
    name: 'raw HTTP: 100 KiB header',
    expect: [431],
    run: (t) => rawExchange(t.port, [`GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(100 * 1024)}\r\n\r\n`]),
  },
  // Labels on /v1/audit.
  auditParts('label without an image', [400], async (t) => [label(t.classes[0] as string)]),
  auditParts('image without a label', [400], async () => [imagePart(await png())]),
  auditParts('two labels for one image', [400], async (t) => [imagePart(await png()), label(t.classes[0] as string), label(t.classes[1] as string)]),
  auditParts('duplicate labels, one per image', [200], async (t) => [imagePart(await png()), imagePart(await jpeg(), 'b.jpg', 'image/jpeg'), label(t.classes[0] as string), label(t.classes[0] as string)]),
  auditParts('unknown label', [400], async () => [imagePart(await png()), label('sleepy')]),
  auditParts('label differing only in case', [400], async (t) => [imagePart(await png()), label((t.classes[0] as string).toUpperCase())]),
  auditParts('label with trailing space', [400], async (t) => [imagePart(await png()), label(`${t.classes[0] as string} `)]),
  auditParts('Unicode label', [400], async () => [imagePart(await png()), label('喜び 😀 Ünïcödé')]),
  auditParts('label with control characters', [400], async () => [imagePart(await png()), label('happy\u0000\u0007\u001b[31m')]),
  auditParts('empty label', [400], async () => [imagePart(await png()), label('')]),
  auditParts('1000-character label', [400], async () => [imagePart(await png()), label('x'.repeat(1000))]),
  auditParts('100 KiB label', [400, 413], async () => [imagePart(await png()), label('y'.repeat(100 * 1024))]),
  auditParts('label sent as a file part', [400], async (t) => [imagePart(await png()), { name: 'label', data: t.classes[0] as string, filename: 'label.txt', contentType: 'text/plain' }]),
  // Faces and detection on /v1/audit and /v1/predict.
  auditParts('face index past the only face of a crop', [422], async (t) => [imagePart(await png()), label(t.classes[0] as string), face('1')]),
  auditParts('face index past the faces the detector found', [422], async (t) => [imagePart(await oneFace(), 'photo.jpg', 'image/jpeg'), label(t.classes[0] as string), face('7')], '?detect=always'),
  auditParts('face index of four digits', [400], async (t) => [imagePart(await png()), label(t.classes[0] as string), face('1000')]),
  auditParts('negative face index', [400], async (t) => [imagePart(await png()), label(t.classes[0] as string), face('-1')]),
  auditParts('face index that is not a number', [400], async (t) => [imagePart(await png()), label(t.classes[0] as string), face('first')]),
  auditParts('two face indices for one image', [400], async (t) => [imagePart(await png()), label(t.classes[0] as string), face('0'), face('0')]),
  auditParts('faceless photo with detect=always', [422], async (t) => [imagePart(await png(320, 240)), label(t.classes[0] as string)], '?detect=always'),
  auditParts('detect=bogus', [400], async (t) => [imagePart(await png()), label(t.classes[0] as string)], '?detect=bogus'),
  predictParts('detect=bogus', [400], async () => [imagePart(await png())], '?detect=bogus'),
  predictParts('detect in upper case', [400], async () => [imagePart(await png())], '?detect=NEVER'),
  predictParts('detect given twice', [400], async () => [imagePart(await png())], '?detect=never&detect=always'),
  predictParts('face part on predict', [400], async () => [imagePart(await png()), face('0')]),
  // Reads of the audit trail.
  auditRead('cursor that is not base64url', [400], LIST_AUDITS, '/v1/audits?cursor=%25%25%25'),
  auditRead('forged cursor', [400], LIST_AUDITS, `/v1/audits?cursor=${forgedCursor}`),
  auditRead('cursor over 64 characters', [400], LIST_AUDITS, `/v1/audits?cursor=${'A'.repeat(65)}`),
  auditRead('empty cursor', [400], LIST_AUDITS, '/v1/audits?cursor='),
  auditRead('format=xml', [400], LIST_AUDITS, '/v1/audits?format=xml'),
  auditRead('limit=0', [400], LIST_AUDITS, '/v1/audits?limit=0'),
  auditRead('limit beyond the maximum', [400], LIST_AUDITS, '/v1/audits?limit=10001'),
  auditRead('limit that is not a number', [400], LIST_AUDITS, '/v1/audits?limit=ten'),
  auditRead('unknown verdict', [400], LIST_AUDITS, '/v1/audits?verdict=suspicious'),
  auditRead('from that is not a date-time', [400], LIST_AUDITS, `/v1/audits${query({ from: 'yesterday' })}`),
  auditRead('date-only from', [400], LIST_AUDITS, `/v1/audits${query({ from: '2026-01-01' })}`),
  auditRead('from on a day the calendar lacks', [400], LIST_AUDITS, `/v1/audits${query({ from: '2026-02-30T00:00:00Z' })}`),
  auditRead('from after to', [400], LIST_AUDITS, `/v1/audits${query({ from: '2026-06-01T00:00:00Z', to: '2026-01-01T00:00:00Z' })}`),
  auditRead('from equal to to (to is exclusive)', [400], LIST_AUDITS, `/v1/audits${query({ from: '2026-01-01T00:00:00Z', to: '2026-01-01T00:00:00Z' })}`),
  auditRead('a window with a UTC offset', [200], LIST_AUDITS, `/v1/audits${query({ from: '2026-01-01T00:00:00Z', to: '2026-06-01T00:00:00+02:00', format: 'csv' })}`),
  // The same times typed into curl, nothing percent-encoded: ":" and the "+" of an offset as they are.
  auditRead('unencoded window with offsets', [200], LIST_AUDITS, '/v1/audits?from=2026-01-01T00:00:00+02:00&to=2026-06-01T00:00:00.5-03:30&format=csv'),
  auditRead('unencoded from on a day the calendar lacks', [400], LIST_AUDITS, '/v1/audits?from=2026-02-30T00:00:00Z'),
  auditRead('unencoded from after to', [400], LIST_AUDITS, '/v1/audits?from=2026-06-01T00:00:00+02:00&to=2026-01-01T00:00:00Z'),
  auditRead('unencoded from with trailing reserved characters', [400], LIST_AUDITS, "/v1/audits?from=2026-01-01T00:00:00Z;@!$'()*+,"),
  auditRead('summary with from after to', [400], AUDIT_SUMMARY, `/v1/audits/summary${query({ from: '2026-06-01T00:00:00Z', to: '2026-01-01T00:00:00Z' })}`),
  auditRead('summary with an unknown filter', [400], AUDIT_SUMMARY, '/v1/audits/summary?debug=1'),
  auditRead('record id that is not a UUID', [400], GET_AUDIT, '/v1/audits/..%2F..%2Fetc%2Fpasswd'),
  auditRead('unknown record id', [404], GET_AUDIT, `/v1/audits/${UNKNOWN_ID}`),
  auditRead('image of an unknown record', [404], GET_AUDIT_IMAGE, `/v1/audits/${UNKNOWN_ID}/image`),
  // Open Inference Protocol bodies.
  inferJson('malformed JSON', [400], () => '{"inputs": [{"name": "input", '),
  inferJson('empty JSON body', [400], () => ''),
  inferJson('JSON array instead of an object', [400], () => '[1, 2, 3]'),
  inferJson('JSON null', [400], () => 'null'),
  inferJson('no inputs', [400], () => '{"inputs": []}'),
  inferJson('shape with three dimensions', [400], () => tensor([1, 48, 48], zeros(PIXELS))),
  inferJson('three channels for a one-channel model', [400], () => tensor([1, 3, 48, 48], zeros(3 * PIXELS))),
  inferJson('batch of zero', [400], () => tensor([0, 1, 48, 48], [])),
  inferJson('negative dimension', [400], () => tensor([-1, 1, 48, 48], zeros(PIXELS))),
  inferJson('fractional dimension', [400], () => tensor([1.5, 1, 48, 48], zeros(PIXELS))),
  inferJson('data shorter than the shape', [400], () => tensor([1, 1, 48, 48], zeros(PIXELS - 1))),
  inferJson('data as strings', [400], () => tensor([1, 1, 48, 48], new Array<string>(PIXELS).fill('0'))),
  inferJson('nested data arrays', [400], () => tensor([1, 1, 48, 48], [zeros(PIXELS)])),
  inferJson('values beyond float32 range', [400], () => tensor([1, 1, 48, 48], new Array<number>(PIXELS).fill(1e39))),
  inferJson('datatype INT64', [400], () => tensor([1, 1, 48, 48], zeros(PIXELS), { datatype: 'INT64' })),
  inferJson('wrong input name', [400], () => tensor([1, 1, 48, 48], zeros(PIXELS), { name: 'pixels' })),
  inferJson('unknown output requested', [400], () => JSON.stringify({ ...JSON.parse(tensor([1, 1, 48, 48], zeros(PIXELS))), outputs: [{ name: 'logits' }] })),
  inferJson('batch over the image limit', [413], (t) => tensor([t.maxFiles + 1, 1, 48, 48], zeros((t.maxFiles + 1) * PIXELS))),
  inferJson('100 000-deep nested arrays', [400], () => `{"inputs": ${'['.repeat(100_000)}${']'.repeat(100_000)}}`),
  inferJson('__proto__ member', [200, 400], () => `{"__proto__": {"polluted": true}, "inputs": ${tensor([1, 1, 48, 48], zeros(PIXELS)).slice(10, -1)}}`),
  inferJson('body declared as text/plain', [415], () => tensor([1, 1, 48, 48], zeros(PIXELS)), 'text/plain'),
  {
    name: 'v2 infer: 20 MiB JSON body',
    expect: [413],
    op: INFER,
    run: (t) => postJson(t.port, `/v2/models/${t.model}/infer`, `{"inputs": [{"name": "input", "data": [${'0,'.repeat(10 * 1024 * 1024)}0]}]}`),
  },
  {
    name: 'v2 infer: unknown model',
    expect: [404],
    op: INFER,
    run: (t) => postJson(t.port, '/v2/models/no-such-model/infer', tensor([1, 1, 48, 48], zeros(PIXELS))),
  },
  // Routing and headers.
  {
    name: 'GET on a POST-only route',
    expect: [405],
    run: (t) => send(t.port, 'GET', '/v1/predict'),
  },
  {
    name: 'path traversal in the URL',
    expect: [404],
    run: (t) => send(t.port, 'GET', '/v1/../../../../etc/passwd'),
  },
  {
    name: 'percent-encoded NUL and traversal in a model name',
    expect: [404],
    run: (t) => send(t.port, 'GET', '/v2/models/%00..%2F..%2Fetc%2Fpasswd'),
  },
  {
    name: '10 KiB X-Request-Id',
    expect: [200],
    run: (t) => send(t.port, 'GET', '/v2/health/live', { headers: { 'X-Request-Id': 'r'.repeat(10 * 1024) } }),
  },
];
