import assert from "node:assert/strict";
import { main } from "../commands/history.ts";
import { cellId, type FakeCell, writeFakeRun } from "./_fixtures.ts";
import { appendHistory, historyRepeats, readHistory } from "./history.ts";
import { readRun } from "./runs.ts";

const TMP = await Deno.makeTempDir({ prefix: "moa_history_" });
globalThis.addEventListener("unload", () => Deno.removeSync(TMP, { recursive: true }));

const cell = (speed: number, acc: number): FakeCell[] => [
  {
    method: "dense",
    density: 1,
    length: 512,
    benchmark: "throughput",
    metrics: { decode_tokens_per_s: { value: speed, n: 8 } },
  },
  {
    method: "dense",
    density: 1,
    length: 512,
    benchmark: "longeval",
    metrics: { accuracy: { value: acc, n: 20 }, prompt_tokens: { value: NaN, n: 0 } },
  },
];
const TP = cellId({ method: "dense", density: 1, length: 512, benchmark: "throughput" });

/** Nightly runs of one experiment on three commits. */
const nights = await Promise.all(
  [["a1", "2026-01-01", 100, 0.5], ["b2", "2026-01-02", 110, 0.55], ["c3", "2026-01-03", 90, 0.6]]
    .map(([sha, day, speed, acc], i) =>
      writeFakeRun(`${TMP}/night${i}`, {
        name: "nightly",
        gitSha: sha as string,
        startedAt: `${day}T02:00:00.000Z`,
        cells: cell(speed as number, acc as number),
      })
    ),
);

Deno.test("history: runs are appended once, keyed by commit, date and run id", async () => {
  const file = `${TMP}/h1.csv`;
  // the newest first: the file keeps entries in date order
  assert.deepEqual(await appendHistory(file, [await readRun(nights[2]!)]), {
    added: 1,
    replaced: 0,
  });
  assert.equal(await main([nights[0]!, nights[1]!, "--file", file]), 0);
  // appending a folder again replaces its entry
  assert.deepEqual(await appendHistory(file, [await readRun(nights[1]!)]), {
    added: 0,
    replaced: 1,
  });
  const h = await readHistory(file);
  assert.equal(h.length, 3 * 3, "3 entries × 3 rows");
  assert.deepEqual([...new Set(h.map((r) => r.git_sha))], ["a1", "b2", "c3"]);
  const speeds = h.filter((r) => r.metric === "decode_tokens_per_s").map((r) => r.value);
  assert.deepEqual(speeds, [100, 110, 90]);
  const missing = h.find((r) => r.metric === "prompt_tokens")!;
  assert.ok(Number.isNaN(missing.value), "a missing value stays missing, not 0");
  assert.equal(h[0]!.date, "2026-01-01T02:00:00.000Z");
});

Deno.test("history: earlier entries of the same experiment and device are a run's repeats", async () => {
  const file = `${TMP}/h2.csv`;
  const other = await writeFakeRun(`${TMP}/other-device`, {
    name: "nightly",
    gitSha: "d4",
    startedAt: "2026-01-04T02:00:00.000Z",
    device: "NVIDIA H200",
    cells: cell(5000, 0.5),
  });
  await appendHistory(file, await Promise.all([...nights, other].map(readRun)));
  const latest = await readRun(nights[2]!);
  const reps = historyRepeats(await readHistory(file), latest, (m) => m.endsWith("_per_s"));
  // its own entry and the other device's are left out; accuracy is not a timed metric
  assert.deepEqual([...reps.entries()], [[`${TP} decode_tokens_per_s`, [100, 110]]]);
  assert.deepEqual(
    historyRepeats(await readHistory(file), latest, () => true, 1).get(`${TP} decode_tokens_per_s`),
    [110],
    "only the last entries",
  );
});

Deno.test("history: a file that is not a history is refused, naming the column", async () => {
  const file = `${TMP}/not-history.csv`;
  await Deno.writeTextFile(file, "a,b\n1,2\n");
  await assert.rejects(readHistory(file), /not-history\.csv: header lacks column 'git_sha'/);
  await assert.rejects(main(["--file", file]), /give at least one run folder/);
});
