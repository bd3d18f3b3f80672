// Browser checks against a running `iops serve`, in Debian's headless Chromium driven by
// playwright-core (no browser download: the system binary is used).
//
//   node browser.mjs report BASE_URL SHORT_CODE PASSWORD ANALYSIS_NAME OUT_DIR
//     A password-protected report, opened as a reader would and with JavaScript OFF (the
//     form must work without it): the form page (401), a wrong password (401 again), the
//     right one (303 to the report, then 200 with the report), the unlock cookie's scope
//     and flags, and a reload that still opens it.
//   node browser.mjs docs BASE_URL OUT_DIR
//     /docs renders Swagger UI from the binary: the API title and its operations appear,
//     and no request leaves the server's own origin.
//
// Each check prints `ok - ...` or `not ok - ...`; the exit code is non-zero if any failed.
// Screenshots (PNG) go to OUT_DIR.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// Root in a container: no sandbox; nothing that phones home.
const ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

let failures = 0;
function check(ok, name, detail = '') {
  if (ok) {
    console.log(`ok - ${name}`);
  } else {
    failures += 1;
    console.log(`not ok - ${name}${detail ? `: ${detail}` : ''}`);
  }
  return ok;
}

// A fresh profile per browser (the user-data-dir is removed afterwards).
async function withBrowser(options, body) {
  const profile = mkdtempSync(join(tmpdir(), 'iops-e2e-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport: { width: 1280, height: 900 },
    ...options,
  });
  try {
    return await body(context);
  } finally {
    await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  }
}

// Every request the page makes must stay on the server under test.
function watchOrigins(page, base) {
  const origin = new URL(base).origin;
  const foreign = [];
  page.on('request', (req) => {
    const url = req.url();
    if (!url.startsWith(origin) && !url.startsWith('data:') && !url.startsWith('blob:')) {
      foreign.push(url);
    }
  });
  return foreign;
}

async function reportCheck(base, code, password, analysisName, outDir) {
  await withBrowser({ javaScriptEnabled: false }, async (context) => {
    const page = context.pages()[0] ?? (await context.newPage());
    const foreign = watchOrigins(page, base);
    const reportUrl = `${base}/r/${code}`;

    const first = await page.goto(reportUrl);
    check(first.status() === 401, 'protected report answers 401 to a browser', `got ${first.status()}`);
    check((first.headers()['content-type'] || '').startsWith('text/html'), 'the 401 is an HTML page',
      first.headers()['content-type']);
    const csp = first.headers()['content-security-policy'] || '';
    check(csp.includes("default-src 'none'"), 'HTML page carries a strict Content-Security-Policy', csp);
    check(first.headers()['x-content-type-options'] === 'nosniff', 'HTML page carries nosniff');
    const form = page.locator(`form[method="post"][action="/r/${code}/unlock"]`);
    check((await form.count()) === 1, 'the page has a password form posting to unlock');
    await page.screenshot({ path: join(outDir, 'report-password-form.png') });

    await page.fill('input[name="password"]', 'not-the-password');
    const [wrong] = await Promise.all([
      page.waitForNavigation(),
      page.click('button[type="submit"]'),
    ]);
    check(wrong.status() === 401, 'a wrong password gives the form again with 401', `got ${wrong.status()}`);
    check(/not right/i.test(await page.textContent('body')), 'the form says the password was wrong');

    await page.fill('input[name="password"]', password);
    const [unlocked] = await Promise.all([
      page.waitForNavigation(),
      page.click('button[type="submit"]'),
    ]);
    const redirect = unlocked.request().redirectedFrom();
    check(redirect !== null && redirect.url().endsWith(`/r/${code}/unlock`),
      'the right password posts to unlock and is redirected');
    if (redirect) {
      const redirectRes = await redirect.response();
      check(redirectRes && redirectRes.status() === 303, 'unlock answers 303', `got ${redirectRes && redirectRes.status()}`);
    }
    check(page.url() === reportUrl, 'the browser lands on the report URL', page.url());
    check(unlocked.status() === 200, 'the report opens with 200', `got ${unlocked.status()}`);
    const heading = await page.textContent('h1');
    check(heading === analysisName, 'the report page shows the analysis name (escaped, as text)',
      JSON.stringify(heading));
    const text = await page.textContent('body');
    check(text.includes('sales.csv') && text.includes('3 rows'), 'the report page shows its dataset');
    check(text.includes('"north": 260'), 'the report page shows the results');
    await page.screenshot({ path: join(outDir, 'report-unlocked.png'), fullPage: true });

    const cookies = await context.cookies(reportUrl);
    const cookie = cookies.find((c) => c.name.startsWith('iops_report'));
    check(cookie !== undefined, 'unlock set a report cookie', JSON.stringify(cookies));
    if (cookie) {
      check(cookie.httpOnly, 'the cookie is HttpOnly');
      check(cookie.sameSite === 'Strict' || cookie.sameSite === 'Lax', 'the cookie is SameSite',
        cookie.sameSite);
      check(cookie.path === `/r/${code}`, "the cookie is scoped to this report's path", cookie.path);
    }

    const again = await page.reload();
    check(again.status() === 200, 'a reload still opens the report (cookie)', `got ${again.status()}`);
    const views = await page.locator('dt:has-text("Views") + dd').textContent();
    check(Number(views) >= 2, 'each view is counted', views);

    const other = await page.goto(`${base}/r/${code}x`);
    check(other.status() === 404, 'an unknown code is a 404 page', `got ${other.status()}`);
    check(foreign.length === 0, 'no request leaves the server', foreign.join(' '));
  });
}

async function docsCheck(base, outDir) {
  await withBrowser({}, async (context) => {
    const page = context.pages()[0] ?? (await context.newPage());
    const foreign = watchOrigins(page, base);
    const res = await page.goto(`${base}/docs`, { waitUntil: 'load' });
    check(res.status() === 200, '/docs answers 200', `got ${res.status()}`);
    let rendered = true;
    try {
      await page.waitForSelector('.swagger-ui .opblock', { timeout: 20000 });
    } catch (err) {
      rendered = false;
    }
    check(rendered, 'Swagger UI renders the operations');
    const title = rendered ? await page.textContent('.swagger-ui .info .title') : '';
    check(/iOps API/.test(title || ''), 'the docs show the API title', JSON.stringify(title));
    const doc = await (await fetch(`${base}/api/openapi.json`)).json();
    const documented = Object.values(doc.paths)
      .flatMap((item) => Object.keys(item))
      .filter((m) => ['get', 'put', 'post', 'patch', 'delete'].includes(m)).length;
    const operations = await page.locator('.swagger-ui .opblock').count();
    check(operations === documented && documented > 0, 'the docs list every documented operation',
      `${operations} shown, ${documented} documented`);
    const authorize = await page.locator('.swagger-ui .btn.authorize').count();
    check(authorize > 0, 'the docs offer bearer authorization');
    await page.screenshot({ path: join(outDir, 'docs.png') });
    await page.screenshot({ path: join(outDir, 'docs-full.png'), fullPage: true });
    check(foreign.length === 0, 'the docs load nothing from outside the server (no CDN)',
      foreign.join(' '));
  });
}

async function main() {
  const [mode, ...rest] = process.argv.slice(2);
  if (mode === 'report' && rest.length === 5) {
    await reportCheck(...rest);
  } else if (mode === 'docs' && rest.length === 2) {
    await docsCheck(...rest);
  } else {
    console.error('usage: browser.mjs report BASE CODE PASSWORD NAME OUT_DIR | docs BASE OUT_DIR');
    process.exit(2);
  }
}

main().then(
  () => process.exit(failures ? 1 : 0),
  (err) => {
    console.log(`not ok - ${err && err.message ? err.message.split('\n')[0] : err}`);
    process.exit(1);
  },
);
