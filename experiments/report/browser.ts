/**
 * Opens a report page in headless Chromium (Debian's `chromium`, driven by playwright-core; no
 * browser is downloaded) and checks it as a reader would see it: no console error, no failed or
 * outside request, and every chart drawing exactly the marks its data calls for, visibly. Keeps
 * a screenshot.
 *
 * @module
 */

/** Where Chromium is looked for, after `$MOA_CHROMIUM`. */
const CANDIDATES = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];

/**
 * The Chromium executable, or null with the reason it is absent.
 */
export async function findChromium(): Promise<{ path: string } | { reason: string }> {
  const env = Deno.env.get("MOA_CHROMIUM");
  for (const p of env ? [env] : CANDIDATES) {
    try {
      if ((await Deno.stat(p)).isFile) return { path: p };
    } catch {
      // not there
    }
  }
  return {
    reason: env
      ? `$MOA_CHROMIUM=${env} does not exist`
      : `no Chromium at ${CANDIDATES.join(", ")} (install Debian's chromium, or set $MOA_CHROMIUM)`,
  };
}

/** What the browser saw of one chart. */
export interface ChartSeen {
  id: string;
  /** Marks the chart's data calls for (its `data-marks`). */
  expected: number;
  /** Marks drawn in its data layer (`g.data_marks` children). */
  drawn: number;
  /** Of those, the ones with a non-empty box on the page. */
  visible: number;
}

/** What {@link checkPage} found. */
export interface PageCheck {
  charts: ChartSeen[];
  /** Console errors and uncaught exceptions. */
  errors: string[];
  /** Requests that failed or left the page's own file. */
  requests: string[];
  /** Problems, one line each; empty when the page is clean. */
  problems: string[];
}

/**
 * Run in the page: each chart's expected marks (`data-marks`), the marks its data layer drew
 * (the children of Vega's `g.data_marks` groups, one per facet) and how many have a box.
 */
const COUNT_MARKS = `[...document.querySelectorAll("figure[data-chart]")].map((f) => {
  const marks = [...f.querySelectorAll("g.data_marks")].flatMap((g) => [...g.children]);
  return {
    id: f.getAttribute("data-chart") ?? "",
    expected: Number(f.getAttribute("data-marks")),
    drawn: marks.length,
    visible: marks.filter((m) => {
      const b = m.getBoundingClientRect();
      return b.width > 0 && b.height > 0;
    }).length,
  };
})`;

/** Flags Debian's chromium takes headless here: no sandbox (root), no GPU, nothing fetched. */
const FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/**
 * Opens `html` in headless Chromium, checks it, and writes a full-page screenshot.
 * @param chromium the executable
 * @param html the page (a local file)
 * @param screenshot where the PNG goes
 */
export async function checkPage(
  chromium: string,
  html: string,
  screenshot: string,
): Promise<PageCheck> {
  const { chromium: launcher } = await import("playwright-core");
  const browser = await launcher.launch({
    executablePath: chromium,
    headless: true,
    // playwright starts the browser with a fresh temporary profile of its own
    args: FLAGS,
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    const requests: string[] = [];
    const url = new URL(`file://${await Deno.realPath(html)}`).href;
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(`console: ${m.text()}`);
    });
    page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
    page.on("requestfailed", (r) => requests.push(`failed: ${r.url()}`));
    page.on("request", (r) => {
      if (r.url() !== url && !r.url().startsWith("data:")) requests.push(`outside: ${r.url()}`);
    });
    await page.goto(url, { waitUntil: "load" });
    const charts = await page.evaluate(COUNT_MARKS) as ChartSeen[];
    await page.screenshot({ path: screenshot, fullPage: true });
    const problems = [
      ...errors,
      ...requests,
      ...(charts.length === 0 ? ["the page has no chart"] : []),
      ...charts.flatMap((c) => [
        ...(c.expected > 0 ? [] : [`${c.id}: no data marks expected`]),
        ...(c.drawn === c.expected
          ? []
          : [`${c.id}: ${c.drawn} marks drawn, ${c.expected} expected`]),
        ...(c.visible === c.drawn
          ? []
          : [`${c.id}: ${c.drawn - c.visible} marks have an empty box`]),
      ]),
    ];
    return { charts, errors, requests, problems };
  } finally {
    await browser.close();
  }
}
