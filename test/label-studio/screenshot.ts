// docs/label-studio.md's picture of Label Studio's Data Manager with asm-fer's audit columns, taken in headless Chromium
// (Debian's chromium through playwright-core) from a running Label Studio: e2e.e2e.ts calls it when
// ASM_FER_E2E_SCREENSHOT names the PNG to write.
import { chromium } from 'playwright-core';

export interface ScreenshotTarget {
  url: string;
  user: string;
  password: string;
  projectId: number;
  /** Legacy-token API call of the running Label Studio (RealLabelStudio.api). */
  api<T = unknown>(method: string, apiPath: string, body?: unknown): Promise<T>;
}

/**
 * Hidden, so the columns a reviewer needs stay in view: the id, the image, the submitted label, who gave it, and
 * asm-fer's verdict tag, suggested choice and score.
 */
const HIDDEN = [
  'tasks:inner_id',
  'tasks:completed_at',
  'tasks:total_annotations',
  'tasks:cancelled_annotations',
  'tasks:total_predictions',
  'tasks:annotations_ids',
  'tasks:file_upload',
  'tasks:storage_filename',
  'tasks:created_at',
  'tasks:updated_at',
  'tasks:updated_by',
  'tasks:avg_lead_time',
  'tasks:draft_exists',
  'tasks:agreement',
  // Empty here: it averages only predictions of the project's selected model version (the backend's title).
  'tasks:predictions_score',
];

export async function screenshotDataManager(t: ScreenshotTarget, out: string): Promise<void> {
  // A Data Manager tab sorted by asm-fer's verdict tag, noisy first. (No comma in the tag: the column splits on commas.)
  await t.api('POST', `/api/dm/views?project=${t.projectId}`, {
    project: t.projectId,
    data: { title: 'asm-fer audit', ordering: ['-tasks:predictions_model_versions'], hiddenColumns: { explore: HIDDEN, labeling: HIDDEN }, columnsDisplayType: {}, columnsWidth: {}, filters: { conjunction: 'and', items: [] } },
  });
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1600, height: 820 }, deviceScaleFactor: 1 });
    await page.goto(`${t.url}/user/login/`);
    await page.fill('input[name="email"]', t.user);
    await page.fill('input[name="password"]', t.password);
    await Promise.all([page.waitForURL((u) => !u.pathname.startsWith('/user/login')), page.click('button[type="submit"], input[type="submit"]')]);
    await page.goto(`${t.url}/projects/${t.projectId}/data`);
    await page.waitForSelector('text=asm-fer audit', { timeout: 60_000 });
    await page.getByText('asm-fer audit', { exact: true }).first().click();
    // The table, its images and the model-version cells have rendered.
    await page.waitForSelector('img', { timeout: 60_000 });
    await page.waitForTimeout(3000);
    await page.screenshot({ path: out });
  } finally {
    await browser.close();
  }
}
