// Byte-exact HTTP for hostile requests: multipart bodies (test/fixtures/multipart.ts), raw sockets for slow or
// malformed traffic.
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { multipart, type MultipartOptions, type Part } from '../fixtures/multipart.js';

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** The parsed body when it is JSON, else undefined. */
  body: unknown;
}

function parse(status: number, headers: Reply['headers'], text: string): Reply {
  const type = String(headers['content-type'] ?? '');
  let body: unknown;
  if (type.includes('json') && text.length > 0) body = JSON.parse(text);
  return { status, headers, text, body };
}

/** One request on a fresh connection; rejects after `timeoutMs`. */
export function send(
  port: number,
  method: string,
  path: string,
  opts: { headers?: Record<string, string>; body?: Buffer | string; timeoutMs?: number } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method, path, headers: opts.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(parse(res.statusCode ?? 0, res.headers, Buffer.concat(chunks).toString('utf8'))));
      res.on('error', reject);
    });
    req.setTimeout(opts.timeoutMs ?? 15_000, () => req.destroy(new Error(`no answer to ${method} ${path} within ${opts.timeoutMs ?? 15_000} ms`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

export function postMultipart(port: number, path: string, parts: Part[], opts: MultipartOptions = {}): Promise<Reply> {
  const { body, contentType } = multipart(parts, opts);
  return send(port, 'POST', path, { headers: { 'Content-Type': contentType }, body });
}

export function postJson(port: number, path: string, json: string, contentType = 'application/json'): Promise<Reply> {
  return send(port, 'POST', path, { headers: { 'Content-Type': contentType }, body: json });
}

/**
 * Writes `chunks` to a raw socket, pausing `gapMs` between them, and parses the single response that comes back
 * (the server may answer before all chunks are written). Rejects if no response arrives within `timeoutMs`.
 */
export function rawExchange(port: number, chunks: (Buffer | string)[], opts: { gapMs?: number; timeoutMs?: number } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const received: Buffer[] = [];
    let done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) return reject(err);
      const raw = Buffer.concat(received).toString('utf8');
      const m = /^HTTP\/1\.[01] (\d{3})[^\r\n]*\r\n([\s\S]*?)\r\n\r\n([\s\S]*)$/.exec(raw);
      if (!m) return reject(new Error(`no HTTP response, got ${JSON.stringify(raw.slice(0, 200))}`));
      const headers: Reply['headers'] = {};
      for (const line of (m[2] ?? '').split('\r\n')) {
        const i = line.indexOf(':');
        if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
      }
      let text = m[3] ?? '';
      if (/chunked/i.test(String(headers['transfer-encoding'] ?? ''))) text = dechunk(text);
      resolve(parse(Number(m[1]), headers, text));
    };
    const timer = setTimeout(() => finish(new Error(`no complete response within ${opts.timeoutMs ?? 15_000} ms`)), opts.timeoutMs ?? 15_000);
    socket.on('data', (d: Buffer) => {
      received.push(d);
      // A response with Content-Length is complete once that many body bytes arrived.
      const raw = Buffer.concat(received).toString('utf8');
      const head = raw.indexOf('\r\n\r\n');
      const len = /\r\ncontent-length:\s*(\d+)/i.exec(raw.slice(0, head));
      if (head >= 0 && len && Buffer.byteLength(raw.slice(head + 4)) >= Number(len[1])) finish();
    });
    socket.on('end', () => finish());
    socket.on('close', () => finish());
    // The server may reset a connection it refused while we were still writing.
    socket.on('error', (err) => (received.length > 0 ? finish() : finish(err)));
    void (async () => {
      for (const c of chunks) {
        if (done || socket.destroyed) return;
        socket.write(c);
        if (opts.gapMs) await new Promise((r) => setTimeout(r, opts.gapMs));
      }
    })();
  });
}

function dechunk(text: string): string {
  let out = '';
  let rest = text;
  for (;;) {
    const nl = rest.indexOf('\r\n');
    if (nl < 0) return out;
    const size = parseInt(rest.slice(0, nl), 16);
    if (!size) return out;
    out += rest.slice(nl + 2, nl + 2 + size);
    rest = rest.slice(nl + 2 + size + 2);
  }
}
