import assert from "node:assert/strict";
import {
  mcnemarExact,
  newcombe,
  normalQuantile,
  pooledLogNoise,
  ratioBand,
  studentCdf,
  studentQuantile,
  wilson,
} from "./stats.ts";

// Reference values from scipy 1.17 (scipy.stats.binomtest, .proportion_ci(method="wilson"),
// scipy.stats.t) and Newcombe (1998), "Interval estimation for the difference between independent
// proportions", Statistics in Medicine 17, example (a): 56/70 − 48/80, method 10.
const close = (got: number, want: number, tol: number, what: string) =>
  assert.ok(Math.abs(got - want) <= tol, `${what}: ${got} vs ${want}`);

Deno.test("wilson() matches scipy's Wilson interval", () => {
  const a = wilson(81, 263);
  close(a.lo, 0.2552885198782742, 1e-12, "81/263 lo");
  close(a.hi, 0.36620957698280004, 1e-12, "81/263 hi");
  const b = wilson(56, 70);
  close(b.lo, 0.6918335550374693, 1e-12, "56/70 lo");
  close(b.hi, 0.8769526075163704, 1e-12, "56/70 hi");
  assert.deepEqual(wilson(0, 0), { lo: 0, hi: 1 }, "nothing measured: anything is possible");
  assert.equal(wilson(0, 10).lo, 0);
  close(wilson(0, 10).hi, 0.27753279986288926, 1e-12, "0/10 hi");
  assert.equal(wilson(10, 10).hi, 1);
  close(wilson(10, 10).lo, 0.7224672001371109, 1e-12, "10/10 lo");
});

Deno.test("newcombe() reproduces Newcombe's published interval for 56/70 − 48/80", () => {
  // p₂ − p₁ with p₁ = 48/80 and p₂ = 56/70: 0.2000, interval 0.0524 to 0.3339
  const d = newcombe(48, 80, 56, 70);
  close(d.lo, 0.0524, 5e-5, "lo");
  close(d.hi, 0.3339, 5e-5, "hi");
  // swapping the runs mirrors the interval
  const m = newcombe(56, 70, 48, 80);
  close(m.lo, -d.hi, 1e-12, "mirrored lo");
  close(m.hi, -d.lo, 1e-12, "mirrored hi");
});

Deno.test("newcombe() does not call a 0.04 drop in 50-case cells significant", () => {
  // the example: 0.80 → 0.76 over 50 cases each
  const d = newcombe(40, 50, 38, 50);
  assert.ok(d.lo < 0 && d.hi > 0, `${d.lo}..${d.hi}`);
});

Deno.test("mcnemarExact() is the two-sided exact binomial test of the discordant pairs", () => {
  close(mcnemarExact(10, 2), 0.03857421875, 1e-12, "b=10 c=2");
  close(mcnemarExact(2, 10), 0.03857421875, 1e-12, "symmetric");
  close(mcnemarExact(6, 0), 0.03125, 1e-12, "b=6 c=0");
  close(mcnemarExact(15, 5), 0.04138946533203125, 1e-12, "b=15 c=5");
  assert.equal(mcnemarExact(0, 0), 1);
  assert.equal(mcnemarExact(3, 3), 1);
});

Deno.test("studentCdf() and studentQuantile() match scipy's t distribution", () => {
  close(studentCdf(1.5, 3), 0.8847080673775886, 1e-10, "cdf(1.5; 3)");
  close(studentCdf(-0.7, 7.5), 0.2525278109369252, 1e-10, "cdf(-0.7; 7.5)");
  close(studentCdf(2, 1), 0.8524163823495667, 1e-10, "cdf(2; 1)");
  close(studentQuantile(0.975, 1), 12.706204736174694, 1e-8, "q(0.975; 1)");
  close(studentQuantile(0.975, 4), 2.7764451051977934, 1e-9, "q(0.975; 4)");
  close(studentQuantile(0.95, 30), 1.697260886593957, 1e-9, "q(0.95; 30)");
  close(studentQuantile(0.001, 2.5), -13.822193110865964, 1e-7, "q(0.001; 2.5)");
  assert.throws(() => studentQuantile(1, 3), /expected 0 < p < 1/);
});

Deno.test("pooledLogNoise() pools the spread of log values within cells; ratioBand() widens it by t", () => {
  // numpy: within-cell sum of squares of the logs over Σ(n − 1); band exp(t(0.975, 3)·√2·s)
  const noise = pooledLogNoise([[100, 104, 98], [50, 51], [10]])!;
  close(noise.sdLog, 0.02596102355328058, 1e-12, "sd");
  assert.equal(noise.df, 3);
  assert.equal(noise.cells, 2, "a cell measured once tells nothing");
  const band = ratioBand(noise);
  close(band.hi, 1.123941503764205, 1e-9, "band hi");
  close(band.lo, 1 / 1.123941503764205, 1e-9, "band lo");
  assert.equal(pooledLogNoise([[3], [4]]), null);
});

Deno.test("normalQuantile() matches scipy's norm.ppf in the centre and both tails", () => {
  const want: [number, number][] = [
    [0.975, 1.959963984540054],
    [0.5, 0],
    [0.3, -0.5244005127080409],
    [0.01, -2.3263478740408408],
    [0.999, 3.090232306167813],
    [0.0001, -3.7190164854556804],
  ];
  for (const [p, z] of want) close(normalQuantile(p), z, 1e-8 * Math.max(1, Math.abs(z)), `${p}`);
});
