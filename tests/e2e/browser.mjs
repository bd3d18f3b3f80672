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
//   node browser.mjs charts BASE_URL SHORT_CODE BAR_TITLE LINE_TITLE OUT_DIR
//     A public report with a bar and a line chart, opened with JavaScript OFF (the charts
//     are inline SVG drawn by the server): both drawings render at a non-zero size above
//     the results, their titles, axis names and legend are text on the page, and the
//     browser reports no error (a CSP violation included).
//   node browser.mjs embed BASE_URL TOKEN CHART_ID CHART_TITLE OUT_DIR
//     Publishes the chart's embed for the origin of a tiny page server started here, and
//     frames `/e/{code}` from it: the chart renders in the iframe and the view is counted
//     with the embedding page's host as referrer. The same iframe served from another
//     port, and from `localhost` instead of `127.0.0.1`, is refused by the browser
//     (`frame-ancestors`).
//
// Each check prints `ok - ...` or `not ok - ...`; the exit code is non-zero if any failed.
// Screenshots (PNG) go to OUT_DIR.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
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
    // The results of the server-side run, as a table: a header row with names and types,
    // one row per region, numbers right-aligned.
    const headers = await page.locator('table thead th').evaluateAll((ths) =>
      ths.map((th) => th.innerText.replace(/\s+/g, ' ').trim()));
    check(JSON.stringify(headers) === JSON.stringify(['region string', 'revenue integer']),
      'the results table names its columns and their types', JSON.stringify(headers));
    const cells = await page.locator('table tbody tr').evaluateAll((rows) =>
      rows.map((r) => Array.from(r.querySelectorAll('td')).map((td) => td.textContent)));
    check(JSON.stringify(cells) === JSON.stringify([['north', '260'], ['south', '95']]),
      'the results table holds the computed rows', JSON.stringify(cells));
    const align = await page.locator('table tbody td').nth(1).evaluate((td) => getComputedStyle(td).textAlign);
    check(align === 'right', 'numbers are right-aligned', align);
    check(!text.includes('"rows"'), 'the results are not shown as a JSON dump');
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

// Console messages of the levels that mean something went wrong. Chromium reports CSP
// violations (and resources that failed to load) as console errors even with JavaScript
// off: they come from the browser, not from a script.
function watchConsole(page) {
  const messages = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.type() === 'warning') messages.push(msg.text());
  });
  page.on('pageerror', (err) => messages.push(String(err)));
  return messages;
}

async function chartsCheck(base, code, barTitle, lineTitle, outDir) {
  await withBrowser({ javaScriptEnabled: false }, async (context) => {
    const page = context.pages()[0] ?? (await context.newPage());
    const foreign = watchOrigins(page, base);
    const problems = watchConsole(page);
    const res = await page.goto(`${base}/r/${code}`);
    check(res.status() === 200, 'the public report opens with 200', `got ${res.status()}`);
    const csp = res.headers()['content-security-policy'] || '';
    check(csp.includes("default-src 'none'"), 'the report keeps its strict Content-Security-Policy', csp);

    const figures = page.locator('figure.chart');
    const svgs = page.locator('figure.chart > svg');
    check((await figures.count()) === 2 && (await svgs.count()) === 2,
      'the report shows two charts, each an inline svg in figure.chart',
      `${await figures.count()} figures, ${await svgs.count()} svg`);
    const mainBox = await page.locator('main').boundingBox();
    for (const [i, title] of [barTitle, lineTitle].entries()) {
      const svg = svgs.nth(i);
      if ((await svg.count()) === 0) continue;
      const box = await svg.boundingBox();
      check(box !== null && box.width > 0 && box.height > 0, `chart ${i + 1} renders at a non-zero size`,
        JSON.stringify(box));
      // Scaled to the page's column, not drawn at a fixed size that overflows it.
      check(box !== null && mainBox !== null && box.x >= mainBox.x &&
        box.x + box.width <= mainBox.x + mainBox.width + 0.5,
      `chart ${i + 1} fits the report's column`, JSON.stringify({ box, mainBox }));
      // The title is drawn as SVG text (so it is read, selected and found as text) and
      // comes out escaped: `<` and `&` in it are characters, not markup.
      const heading = svg.locator('text').filter({ hasText: title }).first();
      const shown = (await heading.count()) > 0 && (await heading.isVisible());
      const text = shown ? (await heading.textContent()).trim() : null;
      check(shown && text === title, `chart ${i + 1} shows its title as text: ${title}`,
        JSON.stringify(text));
      check((await svg.getAttribute('aria-label')) === title, `chart ${i + 1} is named by its title (aria-label)`,
        await svg.getAttribute('aria-label'));
      const words = (await svg.locator('text').allTextContents()).map((t) => t.trim());
      const missing = ['month', 'revenue', 'north', 'south'].filter((w) => !words.includes(w));
      check(missing.length === 0, `chart ${i + 1} labels its axes and its legend (month, revenue, north, south)`,
        `missing ${missing.join(', ')}`);
    }
    // The charts come before the results they draw.
    const results = await page.locator('h2', { hasText: 'Results' }).boundingBox();
    const last = (await svgs.count()) ? await svgs.last().boundingBox() : null;
    check(results !== null && last !== null && last.y + last.height <= results.y,
      'the charts are above the results');
    await page.screenshot({ path: join(outDir, 'report-charts.png'), fullPage: true });
    check(problems.length === 0, 'the browser reports no error or CSP violation', problems.join(' | '));
    check(foreign.length === 0, 'no request leaves the server', foreign.join(' '));
  });
}

// The page an invitation link opens: readable without login or JavaScript, the analysis
// name shown as text (its markup escaped), the invited email and role, how to answer.
async function invitationCheck(base, inviteUrl, analysisName, email, outDir) {
  await withBrowser({ javaScriptEnabled: false }, async (context) => {
    const page = context.pages()[0] ?? (await context.newPage());
    const foreign = watchOrigins(page, base);
    const problems = watchConsole(page);
    const res = await page.goto(`${base}${inviteUrl}`);
    check(res.status() === 200, 'the invitation link opens with 200', `got ${res.status()}`);
    check((res.headers()['referrer-policy'] || '') === 'no-referrer',
      'the page sends no Referer (its URL holds the token)', res.headers()['referrer-policy']);
    const heading = (await page.locator('h1').textContent()).trim();
    check(heading.includes(analysisName), 'the heading names the analysis, its markup shown as text',
      JSON.stringify(heading));
    check((await page.locator('main script').count()) === 0, 'the analysis name injected no element');
    const text = await page.locator('main').innerText();
    check(text.includes(email) && text.includes('editor'), 'the page says who is invited and as what',
      JSON.stringify(text.slice(0, 300)));
    check(text.includes(`${inviteUrl.replace('/invitations/', '/api/v1/invitations/')}/accept`),
      'the page says how to accept');
    await page.screenshot({ path: join(outDir, 'invitation.png'), fullPage: true });
    check(problems.length === 0, 'the browser reports no error or CSP violation', problems.join(' | '));
    // Last: the browser logs the 404 itself as a failed load.
    const unknown = await page.goto(`${base}/invitations/not-a-real-token`);
    check(unknown.status() === 404, 'an unknown invitation link is a 404 page', `got ${unknown.status()}`);
    check(foreign.length === 0, 'no request leaves the server', foreign.join(' '));
  });
}

// A page server standing for a site that embeds the chart; `page()` gives its HTML, so
// the embed code (known only once published, for this server's origin) can come later.
async function startSite(page) {
  const server = createServer((req, res) => {
    if (req.url !== '/') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(page());
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return { server, port: server.address().port };
}

function stopSite(site) {
  site.server.closeAllConnections();
  return new Promise((resolve) => site.server.close(resolve));
}

// The embedding page: an iframe at the drawing's own size (640×400) and an empty icon,
// so that the browser's favicon request does not add a 404 to the console.
function sitePage(src) {
  return `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<link rel="icon" href="data:,"><title>A site embedding a chart</title>
<style>body{font-family:sans-serif;margin:1rem}iframe{border:1px solid #ccc}</style></head>
<body><h1>A site embedding a chart</h1>
<iframe src="${src}" width="640" height="400" title="chart"></iframe>
<p>Text after the chart.</p></body></html>`;
}

// The embed's frame in a page: the child of its main frame.
function childFrame(page) {
  return page.mainFrame().childFrames()[0] ?? null;
}

// How many svg the frame's document holds; an error page may not even be reachable.
async function svgCount(frame) {
  try {
    return await frame.locator('svg').count();
  } catch (err) {
    return 0;
  }
}

async function analytics(base, token, chartId) {
  const res = await fetch(`${base}/api/v1/charts/${chartId}/analytics`, {
    headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
  });
  if (res.status !== 200) throw new Error(`analytics answered ${res.status}: ${await res.text()}`);
  return (await res.json()).days;
}

// Views per referrer host, summed over the days.
function viewsByReferrer(days) {
  const out = {};
  for (const day of days) {
    for (const [host, views] of Object.entries(day.referrers)) out[host] = (out[host] || 0) + views;
  }
  return out;
}

async function embedCheck(base, token, chartId, chartTitle, outDir) {
  let src = 'about:blank';
  const allowed = await startSite(() => sitePage(src));
  const other = await startSite(() => sitePage(src));
  try {
    const allowedOrigin = `http://127.0.0.1:${allowed.port}`;
    // Published here rather than by seed.py: the allowed origin is this page server's,
    // whose port is known only once it listens.
    const published = await fetch(`${base}/api/v1/charts/${chartId}/embed`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json',
      },
      body: JSON.stringify({ mode: 'public', allowed_origins: [allowedOrigin] }),
    });
    const embed = await published.json();
    check(published.status === 200, 'publishing the embed answers 200', `got ${published.status}`);
    check(/^\/e\/[0-9A-Za-z]+$/.test(embed.embed_url || '') && embed.embed_url === `/e/${embed.embed_code}`,
      'the embed has a /e/{code} URL', JSON.stringify(embed));
    check(JSON.stringify(embed.allowed_origins) === JSON.stringify([allowedOrigin]),
      'the embed lists the allowed origin', JSON.stringify(embed.allowed_origins));
    if (!embed.embed_url) return;
    src = `${base}${embed.embed_url}`;

    await withBrowser({ viewport: { width: 800, height: 600 } }, async (context) => {
      // From the allowed origin: the frame shows the chart.
      const page = context.pages()[0] ?? (await context.newPage());
      const problems = watchConsole(page);
      const embedResponse = page.waitForResponse((r) => r.url() === src);
      await page.goto(`${allowedOrigin}/`);
      const res = await embedResponse;
      const csp = res.headers()['content-security-policy'] || '';
      check(res.status() === 200, 'the embed answers 200 inside the iframe', `got ${res.status()}`);
      check(csp.includes(`frame-ancestors ${allowedOrigin}`),
        'the embed allows framing by the allowed origin only (CSP frame-ancestors)', csp);
      const frame = childFrame(page);
      check(frame !== null && frame.url() === src, 'the iframe holds the embed', frame && frame.url());
      const svg = frame ? frame.locator('svg') : null;
      check(frame !== null && (await svgCount(frame)) === 1, 'the iframe renders the chart as svg');
      if (frame && (await svgCount(frame)) === 1) {
        const box = await svg.boundingBox();
        check(box !== null && box.width > 0 && box.height > 0, 'the chart has a non-zero size in the iframe',
          JSON.stringify(box));
        const title = svg.locator('text').filter({ hasText: chartTitle }).first();
        check((await title.count()) > 0 && (await title.isVisible()), 'the chart shows its title in the iframe');
        // The chart fills the frame's width and all of it is in view: no scroll bar.
        const fit = await frame.evaluate(() => ({
          width: innerWidth, height: innerHeight,
          scrollWidth: document.documentElement.scrollWidth,
          scrollHeight: document.documentElement.scrollHeight,
        }));
        check(fit.scrollWidth <= fit.width && fit.scrollHeight <= fit.height,
          'the chart fits the 640×400 iframe without scrolling', JSON.stringify(fit));
        check(box !== null && Math.abs(box.width - fit.width) <= 1, 'the chart spans the iframe\'s width',
          JSON.stringify({ box, fit }));
      }
      await page.screenshot({ path: join(outDir, 'embed-allowed.png'), fullPage: true });
      check(problems.length === 0, 'the embedding page reports no error', problems.join(' | '));

      // Counted before the refused loads below: the server serves those too (only the
      // browser refuses them), and one of them has the same referrer host.
      const byHost = viewsByReferrer(await analytics(base, token, chartId));
      check((byHost['127.0.0.1'] || 0) >= 1,
        'the analytics count the view with the embedding page\'s host (127.0.0.1) as referrer',
        JSON.stringify(byHost));
      check(Object.keys(byHost).every((h) => h === h.toLowerCase() && !h.includes(':')),
        'referrer hosts are lower-case and without port', JSON.stringify(byHost));

      // From origins not in the list: another port, and `localhost` for 127.0.0.1. The
      // server still answers 200; the browser must not render the frame (Chromium swaps
      // in its error page) and says why in the console.
      for (const [origin, shot, what] of [
        [`http://127.0.0.1:${other.port}`, 'embed-refused.png', 'another port'],
        [`http://localhost:${allowed.port}`, 'embed-refused-localhost.png', 'localhost'],
      ]) {
        const refusedPage = await context.newPage();
        const refusedProblems = watchConsole(refusedPage);
        await refusedPage.goto(`${origin}/`);
        const refused = childFrame(refusedPage);
        const url = refused ? refused.url() : '';
        check(refused !== null && url !== src && (await svgCount(refused)) === 0,
          `the browser refuses to render the embed framed from ${what} (${origin})`,
          `frame at ${url}, ${refused ? await svgCount(refused) : 0} svg`);
        check(refusedProblems.some((m) => m.includes('frame-ancestors')),
          `the browser names frame-ancestors as the reason (${what})`, refusedProblems.join(' | '));
        await refusedPage.screenshot({ path: join(outDir, shot), fullPage: true });
        await refusedPage.close();
      }
      console.log(`# analytics after every load: ${JSON.stringify(await analytics(base, token, chartId))}`);
    });
  } finally {
    await stopSite(allowed);
    await stopSite(other);
  }
}

async function main() {
  const [mode, ...rest] = process.argv.slice(2);
  if (mode === 'report' && rest.length === 5) {
    await reportCheck(...rest);
  } else if (mode === 'docs' && rest.length === 2) {
    await docsCheck(...rest);
  } else if (mode === 'charts' && rest.length === 5) {
    await chartsCheck(...rest);
  } else if (mode === 'embed' && rest.length === 5) {
    await embedCheck(...rest);
  } else if (mode === 'invitation' && rest.length === 5) {
    await invitationCheck(...rest);
  } else {
    console.error('usage: browser.mjs report BASE CODE PASSWORD NAME OUT_DIR | docs BASE OUT_DIR |\n' +
      '  charts BASE CODE BAR_TITLE LINE_TITLE OUT_DIR | embed BASE TOKEN CHART_ID CHART_TITLE OUT_DIR |\n' +
      '  invitation BASE INVITE_URL ANALYSIS_NAME EMAIL OUT_DIR');
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
