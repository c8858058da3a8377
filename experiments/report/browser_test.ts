/**
 * The report in a real browser: headless Chromium opens a page with every kind of chart and two
 * runs side by side, and finds no console error, nothing fetched, and every chart's marks drawn
 * and visible. The screenshot is kept at results/browser-test/report.png. Skipped, saying why,
 * where Chromium is absent.
 *
 * @module
 */
import assert from "node:assert/strict";
import { checkPage, findChromium } from "./browser.ts";
import { fullRun, writeFakeRun } from "./_fixtures.ts";
import { appendHistory } from "./history.ts";
import { writeReport } from "./report.ts";
import { readRun } from "./runs.ts";

const found = await findChromium();
const skip = "reason" in found ? ` (skipped: ${found.reason})` : "";
/** Where the screenshot is kept, as a test artifact. */
const ARTIFACTS = new URL("../../results/browser-test/", import.meta.url).pathname;

Deno.test({
  name: `report page opens in headless Chromium without errors, every chart with its marks${skip}`,
  ignore: "reason" in found,
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "moa_browser_" });
    try {
      const a = await writeFakeRun(`${tmp}/a`, fullRun("paper-retrieval"));
      const b = await writeFakeRun(`${tmp}/b`, {
        ...fullRun("paper-retrieval", 2),
        gitSha: "def",
        startedAt: "2026-01-02T00:00:00.000Z",
        runId: "paper-retrieval-1111",
      });
      const history = `${tmp}/history.csv`;
      await appendHistory(history, [await readRun(a), await readRun(b)]);
      const scale = `${tmp}/scale.csv`;
      await Deno.writeTextFile(
        scale,
        "shape,length,stage,seconds,peak_bytes\n1B,1024,profile,10,1e9\n1B,2048,profile,40,2e9\n",
      );
      const r = await writeReport([a, b], ARTIFACTS, { history, scale });
      const kinds = new Set(r.charts.map((c) => c.id.replace(/^trend-.*/, "trend")));
      for (
        const k of ["longeval-accuracy-deciles", "plan-pareto", "plan-map", "trend", "scale-time"]
      ) {
        assert.ok(kinds.has(k), `the page has a ${k} chart`);
      }
      const seen = await checkPage(
        (found as { path: string }).path,
        `${ARTIFACTS}/index.html`,
        `${ARTIFACTS}/report.png`,
      );
      assert.deepEqual(seen.problems, []);
      assert.deepEqual(
        seen.charts.map((c) => [c.id, c.drawn]),
        r.charts.map((c) => [c.id, c.marks]),
        "each chart draws the marks its data calls for",
      );
      const png = await Deno.readFile(`${ARTIFACTS}/report.png`);
      assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47], "a PNG screenshot");
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

Deno.test({
  name: `the browser check catches console errors, outside requests and missing marks${skip}`,
  ignore: "reason" in found,
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "moa_browser_bad_" });
    try {
      // a chart promising 3 marks that draws 2, one drawn with an empty box, a script error and
      // an image from outside the page
      const html = `${tmp}/bad.html`;
      await Deno.writeTextFile(
        html,
        `<!doctype html><html><body>
<figure data-chart="short" data-marks="3"><svg width="100" height="100">
<g class="mark-symbol role-mark data_marks"><path d="M0,0h10v10h-10z"/><path d="M0,0"/></g>
</svg></figure>
<img src="http://127.0.0.1:9/outside.png">
<script>console.error("planted error")</script>
</body></html>`,
      );
      const seen = await checkPage((found as { path: string }).path, html, `${tmp}/bad.png`);
      const all = seen.problems.join("\n");
      assert.match(all, /console: planted error/);
      assert.match(all, /outside: http:\/\/127\.0\.0\.1:9\/outside\.png/);
      assert.match(all, /short: 2 marks drawn, 3 expected/);
      assert.match(all, /short: 1 marks have an empty box/);
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
