import assert from "node:assert/strict";
import { ArtifactStore, type Claim, type ClaimHolder } from "./cache.ts";

/** A store in a fresh folder that records its notices. */
async function store(opts: { staleMs?: number } = {}) {
  const root = await Deno.makeTempDir({ prefix: "moa_cache_test_" });
  const notices: string[] = [];
  const s = new ArtifactStore(root, { notice: (l) => notices.push(l), pollMs: 10, ...opts });
  return { s, root, notices, [Symbol.asyncDispose]: () => Deno.remove(root, { recursive: true }) };
}

/** Accepts `{x: number}` only. */
function validX(v: unknown): { x: number } {
  if (typeof v !== "object" || v === null || typeof (v as { x?: unknown }).x !== "number") {
    throw new Error(`x: expected a number, got ${JSON.stringify(v)}`);
  }
  return v as { x: number };
}

function isClaim(c: Claim | ClaimHolder): c is Claim {
  return "release" in c;
}

Deno.test("ArtifactStore.get() validates what it reads and names a bad file", async (t) => {
  await using st = await store();
  const { s, notices } = st;
  await t.step("an absent artifact is null, without a notice", async () => {
    assert.equal(await s.get("cell", "k0", validX), null);
    assert.deepEqual(notices, []);
  });
  await t.step("a valid one is returned", async () => {
    await s.put("cell", "k1", { x: 3 });
    assert.deepEqual(await s.get("cell", "k1", validX), { x: 3 });
    assert.deepEqual(notices, []);
  });
  const cases: [string, string, RegExp][] = [
    ["not JSON", '{"x": ', /: not JSON \(/],
    [
      "JSON of the wrong shape",
      '{"x": "3"}',
      /: not a cell artifact: x: expected a number, got \{"x":"3"\}/,
    ],
    ["null", "null", /: not a cell artifact: x: expected a number, got null/],
  ];
  for (const [what, text, why] of cases) {
    await t.step(`${what}: null, and a notice naming the file`, async () => {
      notices.length = 0;
      await Deno.writeTextFile(s.path("cell", "bad"), text);
      assert.equal(await s.get("cell", "bad", validX), null);
      assert.equal(notices.length, 1, notices.join("\n"));
      assert.ok(notices[0]!.startsWith(`warning: ${s.path("cell", "bad")}: `), notices[0]!);
      assert.match(notices[0]!, why);
      assert.match(notices[0]!, /; it will be recomputed$/);
    });
  }
  await t.step("getOrCompute() recomputes an invalid artifact and overwrites it", async () => {
    await Deno.writeTextFile(s.path("cell", "bad"), "[1, 2]");
    let calls = 0;
    const r = await s.getOrCompute("cell", "bad", () => Promise.resolve({ x: ++calls }), validX);
    assert.deepEqual(r, { value: { x: 1 }, cached: false });
    assert.deepEqual(JSON.parse(await Deno.readTextFile(s.path("cell", "bad"))), { x: 1 });
    const again = await s.getOrCompute(
      "cell",
      "bad",
      () => Promise.resolve({ x: ++calls }),
      validX,
    );
    assert.deepEqual(again, { value: { x: 1 }, cached: true });
  });
});

Deno.test("ArtifactStore claims: one holder at a time, stale ones taken over", async (t) => {
  await using st = await store({ staleMs: 60_000 });
  const { s, root, notices } = st;
  const claimFile = `${root}/cell/k.claim`;

  await t.step("the first claim wins; a second sees its holder; release frees it", async () => {
    const first = await s.claim("cell", "k");
    assert.ok(isClaim(first));
    const holder = JSON.parse(await Deno.readTextFile(claimFile));
    assert.equal(holder.pid, Deno.pid);
    assert.equal(holder.host, Deno.hostname());
    assert.ok(!Number.isNaN(Date.parse(holder.since)));
    const second = await s.claim("cell", "k");
    assert.ok(!isClaim(second));
    assert.deepEqual(second, holder);
    await first.release();
    await assert.rejects(Deno.stat(claimFile), Deno.errors.NotFound);
    const third = await s.claim("cell", "k");
    assert.ok(isClaim(third));
    await third.release();
  });

  await t.step("a claim of a dead process on this host is taken over", async () => {
    const child = new Deno.Command("true").spawn();
    await child.status; // exited: its pid names no process now
    const dead: ClaimHolder = { pid: child.pid, host: Deno.hostname(), since: "2020-01-01" };
    await Deno.writeTextFile(claimFile, JSON.stringify(dead));
    notices.length = 0;
    const c = await s.claim("cell", "k");
    assert.ok(isClaim(c), `not taken over: ${JSON.stringify(c)}`);
    assert.deepEqual(notices, [`${claimFile}: taking over the stale claim of a run that is gone`]);
    assert.equal(JSON.parse(await Deno.readTextFile(claimFile)).pid, Deno.pid);
    await c.release();
  });

  await t.step("a claim from another host is live until its heartbeat is stale", async () => {
    const other: ClaimHolder = { pid: 1, host: "elsewhere", since: "2020-01-01" };
    await Deno.writeTextFile(claimFile, JSON.stringify(other));
    assert.deepEqual(await s.claim("cell", "k"), other);
    const old = new Date(Date.now() - 120_000); // staleMs is 60 s
    await Deno.utime(claimFile, old, old);
    const c = await s.claim("cell", "k");
    assert.ok(isClaim(c), `not taken over: ${JSON.stringify(c)}`);
    await c.release();
  });

  await t.step("release leaves a claim another run has taken over", async () => {
    const c = await s.claim("cell", "k");
    assert.ok(isClaim(c));
    const other: ClaimHolder = { pid: 1, host: "elsewhere", since: "2020-01-01" };
    await Deno.writeTextFile(claimFile, JSON.stringify(other));
    await c.release();
    assert.deepEqual(JSON.parse(await Deno.readTextFile(claimFile)), other);
    await Deno.remove(claimFile);
  });
});

Deno.test("getOrCompute() waits for an artifact another run has claimed instead of computing it", async () => {
  await using st = await store();
  const { s, notices } = st;
  const holder = await s.claim("plan", "p");
  assert.ok(isClaim(holder));
  let computed = 0;
  const waiter = s.getOrCompute("plan", "p", () => Promise.resolve({ x: ++computed }), validX);
  // the waiter has looked, found the claim and said so before the holder finishes
  while (!notices.some((l) => l.includes("waiting for it"))) await s.wait();
  assert.match(
    notices[0]!,
    /^plan p: being computed by another run \(pid \d+ on .+ since .+\); waiting for it$/,
  );
  await s.put("plan", "p", { x: 42 });
  await holder.release();
  assert.deepEqual(await waiter, { value: { x: 42 }, cached: true });
  assert.equal(computed, 0);
});

Deno.test("getOrCompute() computes itself when the holder gives up without an artifact", async () => {
  await using st = await store();
  const { s, notices } = st;
  const holder = await s.claim("plan", "p");
  assert.ok(isClaim(holder));
  const waiter = s.getOrCompute("plan", "p", () => Promise.resolve({ x: 7 }), validX);
  while (notices.length === 0) await s.wait();
  await holder.release(); // e.g. the other run crashed in this stage
  assert.deepEqual(await waiter, { value: { x: 7 }, cached: false });
});
