// Makes sure the tiny fixture model and parity vectors exist; the Python half writes them.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { FIXTURE_BUNDLE_DIR, FIXTURE_ROOT, PARITY_JSON } from './fixtures/paths.js';

const CLI = 'training/.venv/bin/asm-fer';

export default function setup(): void {
  if (existsSync(`${FIXTURE_BUNDLE_DIR}/model.json`) && existsSync(PARITY_JSON)) return;
  if (!existsSync(CLI)) {
    throw new Error(`${CLI} is missing, so the fixture model cannot be generated: run \`make test\`, which creates training/.venv`);
  }
  execFileSync(CLI, ['fixtures', '--out', FIXTURE_ROOT], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 300_000 });
  if (!existsSync(`${FIXTURE_BUNDLE_DIR}/model.json`)) throw new Error(`${CLI} fixtures ran but wrote no ${FIXTURE_BUNDLE_DIR}/model.json`);
}
