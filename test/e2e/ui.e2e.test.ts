import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCairn, type Cairn } from '../support/cairn-harness.ts';

/**
 * The web UI (issue 15) in a real browser: Debian's Chromium driven by playwright-core against a
 * running Cairn (gateway serving the built UI at /ui, control and node workers). Screenshots of
 * each page go to services/ui/test-results/screenshots (gitignored).
 */

const CHROMIUM = '/usr/bin/chromium';
const SHOTS = path.resolve('services/ui/test-results/screenshots');

/** Installs Debian's Chromium when it is missing (the test stack runs as root, like the Postgres it installs). */
function ensureChromium(): void {
  if (fs.existsSync(CHROMIUM)) return;
  const isRoot = process.getuid?.() === 0;
  if (!isRoot) throw new Error(`${CHROMIUM} is missing and this is not root: install Debian's chromium package (apt-get install -y chromium)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => execFileSync('apt-get', ['install', '-y', '-q', 'chromium'], { env, stdio: ['ignore', 'ignore', 'pipe'], timeout: 540_000 });
  try {
    install();
  } catch {
    try {
      execFileSync('apt-get', ['update', '-q'], { env, stdio: ['ignore', 'ignore', 'pipe'], timeout: 180_000 });
      install();
    } catch (err) {
      throw new Error(`could not install Chromium with apt-get (apt-get install -y chromium): ${(err as Error).message}`);
    }
  }
  if (!fs.existsSync(CHROMIUM)) throw new Error(`apt-get installed chromium but ${CHROMIUM} is still missing`);
}

describe('web UI in Chromium', () => {
  let cairn: Cairn;
  let browser: Browser;
  let admin: BrowserContext;
  let page: Page;
  let appDir: string;
  let instanceId: string;
  let otherId: string;
  let copyDir: string;
  let memberToken: string;
  let backupId: string;
  const suffix = Math.random().toString(36).slice(2, 8);
  const instanceName = `ui-shop-${suffix}`;
  const otherName = `ui-other-${suffix}`;
  const copyName = `ui-copy-${suffix}`;
  const backupName = `before-upgrade-${suffix}`;
  const shot = (p: Page, name: string) => p.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });

  beforeAll(async () => {
    ensureChromium();
    // The gateway serves services/ui/dist: build it from the current sources.
    execFileSync(process.execPath, ['scripts/build-ui.mjs', '--strict'], { stdio: ['ignore', 'ignore', 'inherit'] });
    fs.mkdirSync(SHOTS, { recursive: true });

    cairn = await startCairn();
    appDir = path.join(cairn.volumeRoot, 'shop');
    fs.mkdirSync(path.join(appDir, 'data/docs'), { recursive: true });
    fs.writeFileSync(path.join(appDir, 'data/hello.txt'), 'hello\n');
    fs.writeFileSync(path.join(appDir, 'data/docs/readme.md'), '# original\n');
    fs.writeFileSync(path.join(appDir, 'data/docs/notes.txt'), Buffer.alloc(200_000, 'n'));
    const created = await cairn.api('POST', '/v1/instances', {
      name: instanceName,
      nodeId: cairn.nodeId,
      tenant: cairn.tenant,
      volumes: [{ name: 'data', hostPath: path.join(appDir, 'data') }],
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    instanceId = created.body.id;
    copyDir = path.join(cairn.volumeRoot, 'copy/data');
    fs.mkdirSync(copyDir, { recursive: true });
    const copy = await cairn.api('POST', '/v1/instances', {
      name: copyName,
      nodeId: cairn.nodeId,
      tenant: cairn.tenant,
      volumes: [{ name: 'data', hostPath: copyDir }],
    });
    expect(copy.status, JSON.stringify(copy.body)).toBe(201);
    fs.mkdirSync(path.join(cairn.volumeRoot, 'other/data'), { recursive: true });
    const other = await cairn.api('POST', '/v1/instances', {
      name: otherName,
      nodeId: cairn.nodeId,
      tenant: `${cairn.tenant}-b`,
      volumes: [{ name: 'data', hostPath: path.join(cairn.volumeRoot, 'other/data') }],
    });
    expect(other.status, JSON.stringify(other.body)).toBe(201);
    otherId = other.body.id;
    const token = await cairn.api('POST', '/v1/tokens', { name: `ui-member-${suffix}`, role: 'member', tenant: cairn.tenant });
    expect(token.status, JSON.stringify(token.body)).toBe(201);
    memberToken = token.body.token;

    // launch() gives Chromium a fresh, empty --user-data-dir of its own (removed at close).
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    admin = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
    page = await admin.newPage();
  }, 600_000);

  afterAll(async () => {
    await browser?.close();
    await cairn?.close();
  });

  it('redirects / to /ui and signs in with a token kept in sessionStorage', async () => {
    await page.goto(cairn.url);
    expect(new URL(page.url()).pathname).toBe('/ui/');
    await shot(page, '01-sign-in');
    await page.getByLabel('API token').fill('cairn_not-a-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('401 unauthorized');

    await page.getByLabel('API token').fill(cairn.adminToken);
    await page.getByLabel('API token').press('Enter'); // the keyboard alone signs in
    await page.getByRole('heading', { name: 'Instances' }).waitFor();
    // Expressions as strings: this file is type-checked without the DOM library.
    expect(await page.evaluate<string | null>("sessionStorage.getItem('cairn.token')")).toBe(cairn.adminToken);
    expect(await page.evaluate<number>('localStorage.length')).toBe(0);

    const row = page.getByRole('row').filter({ has: page.getByRole('link', { name: instanceName }) });
    await row.getByText('backed up').waitFor();
    expect(await row.textContent()).toContain('never'); // no successful backup yet
    await expect.poll(() => page.getByRole('link', { name: otherName }).count()).toBe(1); // admins see every tenant
    await shot(page, '02-instances');
  });

  it('backs up now and follows the progress to the end', async () => {
    await page.getByRole('link', { name: instanceName }).click();
    await page.getByRole('heading', { name: instanceName }).waitFor();
    await page.getByRole('button', { name: 'Back up now' }).click();
    const progress = page.getByTestId('job-progress');
    await progress.waitFor();
    await page.locator('[data-testid="job-progress"][data-ended="true"]').waitFor({ timeout: 30_000 });
    expect(await progress.getAttribute('data-status')).toBe('succeeded');
    expect(await progress.textContent()).toContain('Finished');
    await shot(page, '03-instance-after-backup');

    const backups = await cairn.api('GET', `/v1/instances/${instanceId}/backups`);
    backupId = backups.body.items[0].id;
    expect(backups.body.items[0].status).toBe('completed');
    const row = page.locator(`tr[data-backup-id="${backupId}"]`);
    await row.getByText('completed').waitFor();
    expect(await row.textContent()).toContain('full');
  });

  it('browses the backup by directory and downloads one path through a signed link', async () => {
    await page.locator(`tr[data-backup-id="${backupId}"]`).getByRole('link', { name: 'Browse and restore' }).click();
    await page.getByRole('button', { name: 'Open directory data' }).click();
    await page.getByRole('button', { name: 'Open directory data/docs' }).click();
    await page.locator('tr[data-path="data/docs/readme.md"]').waitFor();
    expect(await page.locator('tr[data-path="data/docs/notes.txt"]').textContent()).toContain('195 KiB');
    await shot(page, '04-backup-files');

    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download data/docs/readme.md' }).click()]);
    expect(download.suggestedFilename()).toMatch(/\.tar$/);
    // The browser itself fetched a signed link (streamed to disk, no Blob), which carries no API token.
    expect(new URL(download.url()).pathname).toMatch(/^\/v1\/downloads\/[\w-]+\.[\w-]+$/);
    expect(download.url()).not.toContain(cairn.adminToken);
    const file = path.join(cairn.volumeRoot, 'readme-download.tar');
    await download.saveAs(file);
    expect(fs.readFileSync(file).includes(Buffer.from('# original\n'))).toBe(true);

    const [whole] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download the whole backup' }).click()]);
    expect(new URL(whole.url()).pathname).toMatch(/^\/v1\/downloads\//);
    const archive = path.join(cairn.volumeRoot, 'whole-download.tar.zst');
    await whole.saveAs(archive);
    const stored = (await cairn.api('GET', `/v1/backups/${backupId}`)).body;
    expect(fs.statSync(archive).size).toBe(stored.sizeBytes);
    // The link works without the browser's session too, and stops working once altered.
    const link = await cairn.api('POST', `/v1/backups/${backupId}/download-links`, { path: 'data/hello.txt' });
    expect(link.status, JSON.stringify(link.body)).toBe(201);
    expect((await fetch(`${cairn.url}${link.body.url}`)).status).toBe(200);
    const altered = await fetch(`${cairn.url}${link.body.url.slice(0, -2)}xx`);
    expect(altered.status).toBe(401);
    expect(((await altered.json()) as { error: { code: string } }).error.code).toBe('unauthorized');
  });

  it('restores one file after a confirmation naming what it replaces', async () => {
    const target = path.join(appDir, 'data/docs/readme.md');
    fs.writeFileSync(target, '# changed after the backup\n');
    await page.getByLabel('Select data/docs/readme.md for restore').check();
    await page.getByLabel(/The selected paths/).check();
    // Escape leaves the confirmation without restoring; it opens again with the safe choice focused.
    await page.getByRole('button', { name: 'Restore…' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    await page.getByRole('button', { name: 'Restore…' }).click();
    await dialog.waitFor();
    expect(await page.evaluate<string | undefined>('document.activeElement?.textContent')).toBe('Keep everything as it is'); // the safe choice has focus
    const replaces = await dialog.getByTestId('restore-replaces').textContent();
    expect(replaces).toContain('data/docs/readme.md');
    expect(replaces).toContain(target);
    expect(await dialog.textContent()).toContain(instanceName);
    // The dry run's answer, before anything is restored: the one file differs, nothing is deleted.
    await expect.poll(() => dialog.getByTestId('restore-dry-run-counts').textContent(), { timeout: 30_000 }).toContain('0 deleted, 1 changed, 0 created');
    expect(await dialog.getByTestId('restore-dry-run').textContent()).toContain('data/docs/readme.md');
    expect(fs.readFileSync(target, 'utf8')).toBe('# changed after the backup\n'); // the dry run changed nothing
    await shot(page, '05-restore-confirm');
    await dialog.getByRole('button', { name: 'Restore now' }).click();
    await page.locator('[data-testid="job-progress"][data-ended="true"]').waitFor({ timeout: 30_000 });
    expect(await page.getByTestId('job-progress').getAttribute('data-status')).toBe('succeeded');
    await shot(page, '06-restore-done');
    expect(fs.readFileSync(target, 'utf8')).toBe('# original\n');
    expect(fs.readFileSync(path.join(appDir, 'data/hello.txt'), 'utf8')).toBe('hello\n');
  });

  it('restores the whole backup into another instance of the tenant, announcing and reporting what it deletes', async () => {
    fs.writeFileSync(path.join(copyDir, 'stale.txt'), 'not in the backup\n');
    const previous = await page.getByTestId('job-progress').getAttribute('data-job-id');
    await page.getByLabel(/The whole backup/).check();
    await page.getByLabel('Into instance').selectOption({ label: `${copyName} (${cairn.tenant})` });
    await page.getByRole('button', { name: 'Restore…' }).click();
    const dialog = page.getByRole('dialog');
    expect(await dialog.getByRole('heading').textContent()).toContain(copyName);
    expect(await dialog.getByTestId('restore-replaces').textContent()).toContain(copyDir);
    await expect.poll(() => dialog.getByTestId('restore-dry-run-counts').textContent(), { timeout: 30_000 }).toMatch(/^1 deleted, 0 changed, \d+ created/);
    expect(await dialog.getByTestId('restore-dry-run').textContent()).toContain('data/stale.txt');
    expect(fs.existsSync(path.join(copyDir, 'stale.txt'))).toBe(true);
    await shot(page, '05b-restore-confirm-deletes');
    await dialog.getByRole('button', { name: 'Restore now' }).click();
    const done = page.locator(`[data-testid="job-progress"][data-ended="true"]:not([data-job-id="${previous}"])`);
    await done.waitFor({ timeout: 30_000 });
    expect(await done.getAttribute('data-status')).toBe('succeeded');
    expect(fs.readFileSync(path.join(copyDir, 'docs/readme.md'), 'utf8')).toBe('# original\n');
    expect(fs.readFileSync(path.join(copyDir, 'hello.txt'), 'utf8')).toBe('hello\n');
    expect(fs.existsSync(path.join(copyDir, 'stale.txt'))).toBe(false);
    const job = (await cairn.api('GET', `/v1/jobs/${await done.getAttribute('data-job-id')}`)).body;
    expect(job.result.changes).toMatchObject({ deleted: 1, samples: { deleted: ['data/stale.txt'] } });
  });

  it('names, annotates, pins and unpins a backup, and shows its verification', async () => {
    const verify = await cairn.api('POST', `/v1/backups/${backupId}/verify`, { level: 'quick' });
    expect(verify.status, JSON.stringify(verify.body)).toBe(202);
    expect((await cairn.waitForJob(verify.body.job.id)).status).toBe('succeeded');
    await page.goto(`${cairn.url}/ui/#/backups/${backupId}`);
    await page.reload(); // the same address: load the backup again
    await page.getByTestId('backup-verify').getByText('quick check').waitFor();
    expect(await page.getByTestId('backup-verify').textContent()).toContain('ok');

    await page.getByRole('textbox', { name: 'Name', exact: true }).fill(backupName);
    await page.getByRole('textbox', { name: 'Note' }).fill('before the upgrade');
    await page.getByRole('button', { name: 'Save name and note' }).click();
    await page.getByRole('heading', { name: `Backup ${backupName}` }).waitFor();
    await page.getByRole('button', { name: 'Pin', exact: true }).click();
    await page.getByRole('button', { name: 'Unpin' }).waitFor();
    expect((await cairn.api('GET', `/v1/backups/${backupId}`)).body).toMatchObject({ name: backupName, note: 'before the upgrade', pinned: true });
    await shot(page, '06b-backup-named-pinned');
    // A refusal is shown as the API states it: an invalid name.
    await page.getByRole('textbox', { name: 'Name', exact: true }).fill('-bad');
    await page.getByRole('button', { name: 'Save name and note' }).click();
    await expect.poll(() => page.getByRole('alert').first().textContent()).toMatch(/^400 validation: /);
    await page.getByRole('button', { name: 'Unpin' }).click();
    await page.getByRole('button', { name: 'Pin', exact: true }).waitFor();
    expect((await cairn.api('GET', `/v1/backups/${backupId}`)).body.pinned).toBe(false);
  });

  it("shows and edits the instance's manual backups policy, with a retention preview", async () => {
    await page.goto(`${cairn.url}/ui/#/instances/${instanceId}`);
    const policy = page.getByTestId('instance-policy');
    await policy.waitFor();
    await policy.getByLabel(/Manual backup limit/).fill('5');
    await policy.getByLabel(/Apply a retention policy/).check();
    await policy.getByLabel('Keep last').fill('10'); // keeps every backup: later tests use them
    await policy.getByRole('button', { name: 'Preview manual retention' }).click();
    await policy.getByText(/keeps \d+, deletes \d+/).waitFor();
    await policy.getByRole('button', { name: 'Save policy' }).click();
    await policy.getByText('Limit: 5 manual backups').waitFor();
    expect((await cairn.api('GET', `/v1/instances/${instanceId}/policy`)).body).toMatchObject({ manualBackupLimit: 5, manualRetention: { keepLast: 10 } });
    await shot(page, '06c-instance-policy');
  });

  it("edits the instance's hooks, shows the webhook secret once and the API's refusal as stated", async () => {
    const hooks = page.getByTestId('instance-hooks');
    await page.locator('#hook-preBackup-type').selectOption('webhook');
    await page.locator('#hook-preBackup-target').fill('not a url');
    await hooks.getByRole('button', { name: 'Save hooks' }).click();
    await expect.poll(() => page.getByRole('alert').first().textContent()).toMatch(/^400 validation: .*http/);
    await page.locator('#hook-preBackup-target').fill('http://127.0.0.1:9/hook');
    await page.locator('#hook-preBackup-onerror').selectOption('continue');
    await hooks.getByRole('button', { name: 'Save hooks' }).click();
    const secret = page.getByTestId('hook-secret');
    await secret.waitFor();
    const shown = await secret.locator('code').last().textContent();
    const inst = (await cairn.api('GET', `/v1/instances/${instanceId}`)).body;
    expect(inst.hooks).toMatchObject({ preBackup: { type: 'webhook', url: 'http://127.0.0.1:9/hook', onError: 'continue' } });
    expect(inst.hookSecret).toBeUndefined(); // the API gave it once: to the page
    expect(shown?.length).toBeGreaterThan(20);
    await shot(page, '06d-instance-hooks');
    // Back to none: later tests back up without a webhook.
    await page.locator('#hook-preBackup-type').selectOption('');
    await hooks.getByRole('button', { name: 'Save hooks' }).click();
    await expect.poll(async () => (await cairn.api('GET', `/v1/instances/${instanceId}`)).body.hooks).toBeNull();
  });

  it('lists jobs', async () => {
    await page.getByRole('link', { name: 'Jobs' }).click();
    await page.getByRole('heading', { name: 'Jobs' }).waitFor();
    await page.locator('tr[data-job-id]').first().waitFor();
    await shot(page, '07-jobs');
  });

  it('is readable at phone width', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    for (const [name, hash, heading] of [
      ['10-instance-phone', `#/instances/${instanceId}`, instanceName],
      ['11-backup-phone', `#/backups/${backupId}`, `Backup ${backupName}`],
    ] as const) {
      await page.goto(`${cairn.url}/ui/${hash}`);
      await page.getByRole('heading', { name: heading }).waitFor();
      await page
        .getByRole('heading', { name: 'Backups' })
        .or(page.getByRole('heading', { name: 'Files' }))
        .first()
        .waitFor();
      await shot(page, name);
      expect(await page.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
    }
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it("previews a schedule's retention", async () => {
    const created = await cairn.api('POST', `/v1/instances/${instanceId}/schedules`, { cron: '0 3 * * *', timezone: 'UTC', retention: { keepLast: 5 } });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    await page.goto(`${cairn.url}/ui/#/instances/${instanceId}`);
    const schedule = page.locator(`li[data-schedule-id="${created.body.id}"]`);
    await schedule.getByText('retention: keep last 5').waitFor();
    await schedule.getByLabel('Keep last').fill('0');
    await schedule.getByLabel('Max age (days)').fill('1');
    await schedule.getByRole('button', { name: 'Preview retention' }).click();
    await schedule.getByText(/keeps \d+, deletes \d+/).waitFor();
    await shot(page, '12-schedule-preview');
    // The instance list names the next scheduled run now.
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Instances' }).click();
    // Other test files add instances to the run's database: narrow the admin's list to this tenant.
    await page.getByLabel('Tenant').fill(cairn.tenant);
    await page.getByRole('button', { name: 'Filter' }).click();
    const row = page.getByRole('row').filter({ has: page.getByRole('link', { name: instanceName }) });
    await row.getByText(/^in \d/).waitFor();
  });

  it('cancels a queued job from the jobs page', async () => {
    await cairn.stopInProcessNodeWorker(); // nothing picks the job up: it stays queued
    const started = await cairn.api('POST', `/v1/instances/${instanceId}/backups`, { kind: 'full' });
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    const jobId = started.body.job.id;
    await page.getByRole('link', { name: 'Jobs' }).click();
    const row = page.locator(`tr[data-job-id="${jobId}"]`);
    await row.getByText('queued', { exact: true }).waitFor();
    await row.getByRole('button', { name: 'Cancel job' }).click();
    await row.getByText('cancelled', { exact: true }).waitFor();
    await shot(page, '13-job-cancelled');
    expect((await cairn.api('GET', `/v1/jobs/${jobId}`)).body.status).toBe('cancelled');
  });

  it("shows a member only its tenant, and another tenant's instance as the API's 404, at phone width", async () => {
    const member = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true });
    try {
      const p = await member.newPage();
      await p.goto(`${cairn.url}/ui/`);
      await p.getByLabel('API token').fill(memberToken);
      await p.getByRole('button', { name: 'Sign in' }).click();
      await p.getByRole('link', { name: instanceName }).waitFor();
      expect(await p.getByRole('link', { name: otherName }).count()).toBe(0);
      await shot(p, '08-member-instances-phone');

      await p.goto(`${cairn.url}/ui/#/instances/${otherId}`);
      const alert = p.getByRole('alert');
      await alert.waitFor();
      expect(await alert.textContent()).toMatch(/^404 not-found: /);
      await shot(p, '09-member-denied-phone');
      // The page is readable at phone width: nothing wider than the screen.
      expect(await p.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
    } finally {
      await member.close();
    }
  });
});
