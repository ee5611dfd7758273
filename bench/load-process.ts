// One autocannon run in a process of its own (as an outside harness drives the service), so the load generator's
// event loop and CPU are not the benchmark's: `load` here, called by bench/e5-peers.ts --drive process.
// Usage: npx tsx bench/load-process.ts <base> <path> <connections> <duration s> <FER+ dir> <images>; prints one JSON
// LoadResult line on stdout.
import { ferplusPngs, load, predictBody } from './e5-load.js';

const [base, path, connections, duration, dir, images] = process.argv.slice(2);
if (!base || !path || !dir) throw new Error('usage: load-process.ts <base> <path> <connections> <duration s> <FER+ dir> <images>');
const bodies = ferplusPngs(dir, Number(images)).map(predictBody);
const result = await load(base, path, bodies, { connections: Number(connections), duration: Number(duration) });
process.stdout.write(`${JSON.stringify(result)}\n`);
