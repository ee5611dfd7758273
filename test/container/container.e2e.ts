// The built image (test/container/run.sh builds it first; `make test-container`), run the way deploy/kubernetes runs
// it: read-only root filesystem, user 1000:1000, no capabilities, no privilege escalation, a volume for the audit trail
// at /app/data, the port published on loopback only, the ConfigMap's environment with the example Secret's API key.
// Checked: readiness, the image's own HEALTHCHECK command, the process's uid and what it may write, predict and
// audit on real FER+ faces (and a photo, through the face detector) answered as the service run from source answers
// them on the same bundle, problem+json on bad requests, and a `kill -9` mid-audit after which a new container on the
// same volume holds every acknowledged record.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { textFile } from '../fixtures/make-images.js';
import { oneFace, threeFaces } from '../fixtures/photos.js';
import { listeningPort, startServer, stopServers, until, type ServerProcess } from '../fixtures/server-process.js';

const run = promisify(execFile);
const PODMAN = process.env.ASM_FER_PODMAN ?? '';
const IMAGE = process.env.ASM_FER_IMAGE ?? '';
const LABEL = process.env.ASM_FER_CONTAINER_LABEL ?? 'asm-fer-test-container';
const FERPLUS = process.env.ASM_FER_CONTAINER_FERPLUS ?? '';
const VOLUME = 'asm-fer-test-data';
const PORT = 18620;
const BASE = `http://127.0.0.1:${PORT}`;
const HEALTHCHECK = `fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/v2/health/ready').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))`;

if (!PODMAN || !IMAGE) throw new Error('run through test/container/run.sh (make test-container): it builds the image and sets ASM_FER_PODMAN, ASM_FER_IMAGE');

const podman = async (...args: string[]) => (await run(PODMAN, args, { maxBuffer: 16 << 20 })).stdout.trim();

/** deploy/kubernetes: the ConfigMap's data and the example Secret's API key (no PostgreSQL URL: the SQLite trail). */
const configMap = parse(readFileSync('deploy/kubernetes/configmap.yaml', 'utf8')).data as Record<string, string>;
const API_KEY = (parse(readFileSync('deploy/kubernetes/examples/secret.yaml', 'utf8')).stringData as Record<string, string>).ASM_FER_API_KEY as string;
const ENV: Record<string, string> = { ...configMap, ASM_FER_API_KEY: API_KEY };
const AUTH = { authorization: `Bearer ${API_KEY}` };

/** Starts the image as deploy/kubernetes runs it; the name is also the container's label value. */
async function startContainer(name: string): Promise<void> {
  const env = Object.entries(ENV).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
  await podman(
    'run', '-d', '--name', name, '--label', `${LABEL}=${name}`,
    '--read-only', '--read-only-tmpfs=false', // readOnlyRootFilesystem, and no tmpfs of podman's own (/tmp, /run, /var/tmp)
    '--user', '1000:1000', '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges',
    '--health-interval', 'disable', // no systemd here to schedule it: the test runs the image's healthcheck itself
    '-v', `${VOLUME}:/app/data`, '-p', `127.0.0.1:${PORT}:8080`,
    ...env, IMAGE,
  );
}

async function ready(name: string): Promise<number> {
  const t0 = Date.now();
  await until(async () => {
    const state = await podman('inspect', '--format', '{{.State.Status}}', name);
    if (state !== 'running') throw new Error(`container ${name} is ${state}:\n${await podman('logs', name).catch(() => '')}`);
    return fetch(`${BASE}/v2/health/ready`).then((r) => r.status === 200, () => false);
  }, 120_000);
  return Date.now() - t0;
}

interface Face {
  name: string;
  png: Buffer;
  label: string;
}

/** FER+ Valid faces with a clear majority among the 8 classes (label.csv), or, without the data set, 48x48 grey crops of a photo fixture's face. */
async function faces(n: number): Promise<{ source: string; faces: Face[] }> {
  const classes = ['neutral', 'happiness', 'surprise', 'sadness', 'anger', 'disgust', 'fear', 'contempt'];
  const dir = path.join(FERPLUS, 'FER2013Valid');
  if (FERPLUS && existsSync(path.join(dir, 'label.csv'))) {
    const out: Face[] = [];
    for (const line of readFileSync(path.join(dir, 'label.csv'), 'utf8').split('\n')) {
      const m = /^([^,]+\.png),"[^"]*",(.*)$/.exec(line.trim());
      if (!m) continue;
      const votes = (m[2] as string).split(',').map(Number);
      const top = Math.max(...votes);
      const k = votes.indexOf(top);
      if (k >= classes.length || votes.filter((v) => v === top).length > 1) continue;
      out.push({ name: m[1] as string, png: readFileSync(path.join(dir, m[1] as string)), label: classes[k] as string });
      if (out.length === n) break;
    }
    return { source: `FER+ ${dir}`, faces: out };
  }
  // oneFace(): a 500x500 cut of sample1.jpg with one face at about 170,159 187x187; framed a little differently each
  // time, made grey and 48x48 like FER+.
  const photo = await oneFace();
  const out: Face[] = [];
  for (let i = 0; i < n; i++) {
    const side = 200 + (i % 4) * 12;
    const png = await sharp(photo).extract({ left: 160 + (i % 5) * 3 - (i % 4) * 6, top: 150 + (i % 3) * 3 - (i % 4) * 6, width: side, height: side }).greyscale().resize(48, 48).png().toBuffer();
    out.push({ name: `sample1-face-${i}.png`, png, label: classes[i % classes.length] as string });
  }
  return { source: 'crops of the face in @vladmandic/face-api sample1.jpg (no FER+ data set found)', faces: out };
}

function form(items: Face[], audit: boolean): FormData {
  const f = new FormData();
  for (const face of items) {
    f.append('image', new Blob([face.png], { type: 'image/png' }), face.name);
    if (audit) {
      f.append('label', face.label);
      f.append('itemId', face.name);
    }
  }
  if (audit) f.append('datasetId', 'container-parity');
  return f;
}

/** The largest |difference| between a number the image answered and the source's, over every comparison. */
let maxDiff = 0;

/** Every number the same to 1e-6, every string and boolean equal; `id` (the record's own) left out. */
function expectSameAnswers(fromImage: unknown, fromSource: unknown, where = 'body'): void {
  if (typeof fromSource === 'number') {
    expect(typeof fromImage, where).toBe('number');
    maxDiff = Math.max(maxDiff, Math.abs((fromImage as number) - fromSource));
    expect(Math.abs((fromImage as number) - fromSource), where).toBeLessThanOrEqual(1e-6);
  } else if (Array.isArray(fromSource)) {
    expect(Array.isArray(fromImage) && fromImage.length, where).toBe(fromSource.length);
    fromSource.forEach((v, i) => expectSameAnswers((fromImage as unknown[])[i], v, `${where}[${i}]`));
  } else if (fromSource && typeof fromSource === 'object') {
    const keys = Object.keys(fromSource).filter((k) => k !== 'id');
    expect(Object.keys(fromImage as object).filter((k) => k !== 'id').sort(), where).toEqual(keys.sort());
    for (const k of keys) expectSameAnswers((fromImage as Record<string, unknown>)[k], (fromSource as Record<string, unknown>)[k], `${where}.${k}`);
  } else {
    expect(fromImage, where).toEqual(fromSource);
  }
}

let source: ServerProcess;
let sourceBase: string;
let testFaces: { source: string; faces: Face[] };

beforeAll(async () => {
  // The service from source (src/main.ts through tsx), with the same bundle (models/default) and environment.
  // Its trail goes to a temporary folder (startServer's), not the ConfigMap's /app/data.
  const { ASM_FER_DATA_DIR: _, ...sourceEnv } = ENV;
  source = startServer({ ...sourceEnv, PORT: '0', ASM_FER_HOST: '127.0.0.1', ASM_FER_LOG_LEVEL: 'info' }, { baseEnv: {} });
  await podman('volume', 'rm', '-f', VOLUME);
  await podman('volume', 'create', VOLUME);
  await startContainer('asm-fer-test-a');
  sourceBase = `http://127.0.0.1:${await listeningPort(source)}`;
  testFaces = await faces(24);
  console.log(`container: test faces: ${testFaces.faces.length} from ${testFaces.source}`);
});

afterAll(async () => {
  stopServers();
  // run.sh removes them too (trap), whatever happens here.
  await podman('rm', '-f', '-t', '0', 'asm-fer-test-a', 'asm-fer-test-b').catch(() => undefined);
});

describe('the CPU image, run as deploy/kubernetes runs it', () => {
  it('turns ready: GET /v2/health/ready answers 200', async () => {
    const ms = await ready('asm-fer-test-a');
    console.log(`container: ready ${(ms / 1000).toFixed(1)} s after podman run returned`);
    const res = await fetch(`${BASE}/v2/health/ready`);
    expect(res.status).toBe(200);
  });

  it("passes its own HEALTHCHECK, the Dockerfile's command run inside the container", async () => {
    const hc = JSON.parse(await podman('inspect', '--format', '{{json .Config.Healthcheck}}', 'asm-fer-test-a')) as { Test: string[] };
    expect(hc.Test).toEqual(['CMD', 'node', '-e', HEALTHCHECK]);
    await expect(podman('healthcheck', 'run', 'asm-fer-test-a')).resolves.toMatch(/healthy|^$/);
    // and it can fail: the same command against a port nothing listens on
    await expect(podman('exec', '-e', 'PORT=1', 'asm-fer-test-a', ...hc.Test.slice(1))).rejects.toThrow();
  });

  it('runs the service as uid and gid 1000, without capabilities, published on loopback only', async () => {
    const pid = await podman('inspect', '--format', '{{.State.Pid}}', 'asm-fer-test-a');
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    expect(/^Uid:\s+(.*)$/m.exec(status)?.[1]?.split(/\s+/)).toEqual(['1000', '1000', '1000', '1000']);
    expect(/^Gid:\s+(.*)$/m.exec(status)?.[1]?.split(/\s+/)).toEqual(['1000', '1000', '1000', '1000']);
    expect(/^CapEff:\s+(.*)$/m.exec(status)?.[1]).toBe('0000000000000000');
    expect(/^NoNewPrivs:\s+(.*)$/m.exec(status)?.[1]).toBe('1');
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean)).toEqual(['node', 'dist/main.js']);
    const config = JSON.parse(await podman('image', 'inspect', '--format', '{{json .Config}}', IMAGE)) as { User: string; ExposedPorts: object; Volumes: object };
    expect([config.User, Object.keys(config.ExposedPorts), Object.keys(config.Volumes)]).toEqual(['1000:1000', ['8080/tcp'], ['/app/data']]);
    const ports = JSON.parse(await podman('inspect', '--format', '{{json .NetworkSettings.Ports}}', 'asm-fer-test-a'));
    expect(ports).toEqual({ '8080/tcp': [{ HostIp: '127.0.0.1', HostPort: String(PORT) }] });
  });

  it('cannot write anywhere but the volume', async () => {
    // As the container's user, in its mount namespace: try to create a file in each folder.
    const dirs = ['/app/data', '/', '/app', '/app/dist', '/app/node_modules', '/app/models/default', '/tmp', '/var/tmp', '/run', '/home/node', '/etc', '/usr/local/bin'];
    const script = `const fs=require('fs');for(const d of ${JSON.stringify(dirs)}){const f=d.replace(/\\/$/,'')+'/.write-probe';try{fs.writeFileSync(f,'x');fs.unlinkSync(f);console.log(d+' ok')}catch(e){console.log(d+' '+e.code)}}`;
    const out = Object.fromEntries((await podman('exec', 'asm-fer-test-a', 'node', '-e', script)).split('\n').map((l) => l.split(' ')));
    expect(out['/app/data']).toBe('ok');
    for (const d of dirs.slice(1)) expect(['EROFS', 'EACCES'], d).toContain(out[d]);
    // Every writable mount of the container: the volume, and the kernel's own /dev ones (shm, mqueue, pts).
    const mounts = (await podman('exec', 'asm-fer-test-a', 'cat', '/proc/self/mountinfo'))
      .split('\n')
      .map((l) => l.split(' '))
      .filter((f) => (f[5] ?? '').split(',').includes('rw'))
      .map((f) => f[4] as string);
    expect(mounts.filter((m) => !['/app/data', '/dev', '/dev/shm', '/dev/mqueue', '/dev/pts', '/proc', '/sys/fs/cgroup'].includes(m) && !m.startsWith('/proc/'))).toEqual([]);
    expect(mounts).toContain('/app/data');
  });

  it('answers predict on FER+ faces and a photo as the service run from source does', async () => {
    const items = testFaces.faces;
    expect(items.length).toBe(24);
    let compared = 0;
    for (let i = 0; i < items.length; i += 4) {
      const [a, b] = await Promise.all([BASE, sourceBase].map((base) => fetch(`${base}/v1/predict`, { method: 'POST', body: form(items.slice(i, i + 4), false) })));
      expect([a?.status, b?.status]).toEqual([200, 200]);
      const [fromImage, fromSource] = [await a!.json(), await b!.json()];
      expectSameAnswers(fromImage, fromSource);
      compared += (fromSource as { results: unknown[] }).results.length;
    }
    expect(compared).toBe(24);
    // A photo: the face detector (models/blazeface) finds and frames three faces before they are classified.
    const photo = () => {
      const f = new FormData();
      f.append('image', new Blob([threeFaces()], { type: 'image/jpeg' }), 'sample1.jpg');
      return f;
    };
    const [a, b] = await Promise.all([BASE, sourceBase].map((base) => fetch(`${base}/v1/predict`, { method: 'POST', body: photo() })));
    expect([a?.status, b?.status]).toEqual([200, 200]);
    const [fromImage, fromSource] = [await a!.json(), await b!.json()];
    expect((fromSource as { results: { faces: unknown[] }[] }).results[0]?.faces.length).toBe(3);
    expectSameAnswers(fromImage, fromSource);
  });

  it('answers audit on FER+ faces with their FER+ labels as the service run from source does, and stores them', async () => {
    const items = testFaces.faces;
    const ids: string[] = [];
    for (let i = 0; i < items.length; i += 4) {
      const [a, b] = await Promise.all([BASE, sourceBase].map((base) => fetch(`${base}/v1/audit`, { method: 'POST', headers: AUTH, body: form(items.slice(i, i + 4), true) })));
      expect([a?.status, b?.status]).toEqual([200, 200]);
      const [fromImage, fromSource] = (await Promise.all([a!.json(), b!.json()])) as { results: { id: string; verdict: string }[] }[];
      expectSameAnswers(fromImage, fromSource);
      ids.push(...fromImage!.results.map((r) => r.id));
    }
    const verdicts = new Set<string>();
    const list = (await (await fetch(`${BASE}/v1/audits?datasetId=container-parity&limit=100`, { headers: AUTH })).json()) as { items: { id: string; verdict: string }[] };
    for (const r of list.items) verdicts.add(r.verdict);
    expect(list.items.map((r) => r.id).sort()).toEqual([...ids].sort());
    console.log(`container: predicted and audited ${ids.length} faces, verdicts ${[...verdicts].sort().join(', ')}; largest |difference| from the source's numbers ${maxDiff.toExponential(1)}`);
  });

  it('answers bad requests with application/problem+json', async () => {
    const text = new FormData();
    text.append('image', new Blob([textFile], { type: 'image/png' }), 'not-an-image.png');
    const cases: [string, RequestInit][] = [
      ['/v1/predict', { method: 'POST', body: text }], // text posing as an image
      ['/v1/predict', { method: 'POST', body: new FormData() }], // no image part
      ['/v1/audits', {}], // the API key is missing
      ['/v1/nothing-here', {}],
    ];
    for (const [route, init] of cases) {
      const res = await fetch(`${BASE}${route}`, init);
      expect(res.status, route).toBeGreaterThanOrEqual(400);
      expect(res.status, route).toBeLessThan(500);
      expect(res.headers.get('content-type'), route).toMatch(/^application\/problem\+json/);
      const body = (await res.json()) as { status: number; title: string; type: string };
      expect(body.status, route).toBe(res.status);
      expect(typeof body.title, route).toBe('string');
    }
  });

  it('keeps every acknowledged audit when the container is killed with SIGKILL mid-traffic, for the next container on the volume', async () => {
    const items = testFaces.faces.slice(0, 2);
    const acknowledged: string[] = [];
    let failed = 0;
    let killed: Promise<string> | undefined;
    const deadline = Date.now() + 60_000;
    // Four clients send audits back to back until the connection fails; the container is killed after 20 200s.
    const client = async () => {
      while (Date.now() < deadline) {
        try {
          const res = await fetch(`${BASE}/v1/audit`, { method: 'POST', headers: AUTH, body: form(items, true) });
          if (res.status !== 200) throw new Error(`audit answered ${res.status}`);
          const body = (await res.json()) as { results: { id: string }[] };
          acknowledged.push(...body.results.map((r) => r.id));
          if (acknowledged.length >= 40 && !killed) killed = podman('kill', '--signal', 'KILL', 'asm-fer-test-a');
        } catch {
          failed++;
          if (killed) return;
          throw new Error('an audit failed before the kill');
        }
      }
      throw new Error('the container was not killed within 60 s');
    };
    await Promise.all([client(), client(), client(), client()]);
    await killed;
    expect(failed).toBeGreaterThan(0); // requests were in flight, or arriving, when the process died
    await until(async () => (await podman('inspect', '--format', '{{.State.Status}}', 'asm-fer-test-a')) === 'exited', 10_000);
    expect(await podman('inspect', '--format', '{{.State.ExitCode}}', 'asm-fer-test-a')).toBe('137');
    await podman('rm', '-f', 'asm-fer-test-a');

    await startContainer('asm-fer-test-b');
    await ready('asm-fer-test-b');
    const res = await fetch(`${BASE}/v1/audits?limit=10000`, { headers: AUTH });
    expect(res.status).toBe(200);
    const stored = new Set(((await res.json()) as { items: { id: string }[] }).items.map((r) => r.id));
    expect(acknowledged.filter((id) => !stored.has(id))).toEqual([]);
    console.log(`container: killed after ${acknowledged.length} acknowledged records (${failed} requests cut off); the next container holds all ${acknowledged.length}, ${stored.size} records in all`);
    await expect(podman('healthcheck', 'run', 'asm-fer-test-b')).resolves.toMatch(/healthy|^$/);
  });
});
