/**
 * The statistics reports and comparisons of runs use: Wilson's interval of a proportion,
 * Newcombe's interval on the difference of two independent proportions, McNemar's exact test of
 * paired outcomes, and a noise band for ratios of timed measurements estimated from repeats.
 *
 * @module
 */

/** z of a two-sided 95% normal interval. */
export const Z95 = 1.959963984540054;

/** The standard normal quantile (Acklam's rational approximation, relative error < 1.2e-9). */
export function normalQuantile(p: number): number {
  const a = [
    -39.69683028665376,
    220.9460984245205,
    -275.9285104469687,
    138.357751867269,
    -30.66479806614716,
    2.506628277459239,
  ];
  const b = [
    -54.47609879822406,
    161.5858368580409,
    -155.6989798598866,
    66.80131188771972,
    -13.28068155288572,
  ];
  const c = [
    -0.007784894002430293,
    -0.3223964580411365,
    -2.400758277161838,
    -2.549732539343734,
    4.374664141464968,
    2.938163982698783,
  ];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const lowTail = (q: number) =>
    (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) /
    ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  if (p < 0.02425) return lowTail(Math.sqrt(-2 * Math.log(p)));
  if (p > 1 - 0.02425) return -lowTail(Math.sqrt(-2 * Math.log(1 - p)));
  const q = p - 0.5, r = q * q;
  return (((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q /
    (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1);
}

/** An interval [lo, hi]. */
export interface Interval {
  lo: number;
  hi: number;
}

/**
 * Wilson's score interval of a proportion of `k` successes in `n` trials.
 * @param z the normal quantile (default: a 95% interval)
 * @returns [0, 1] when n = 0 (nothing is known)
 */
export function wilson(k: number, n: number, z = Z95): Interval {
  if (n === 0) return { lo: 0, hi: 1 };
  // the bound at an extreme is the extreme itself (the formula gives it up to rounding)
  if (k === 0 || k === n) {
    const other = n / (n + z * z);
    return k === 0 ? { lo: 0, hi: 1 - other } : { lo: other, hi: 1 };
  }
  const p = k / n, z2 = z * z;
  const centre = (p + z2 / (2 * n)) / (1 + z2 / n);
  const half = (z / (1 + z2 / n)) * Math.sqrt(p * (1 - p) / n + z2 / (4 * n * n));
  return { lo: Math.max(0, centre - half), hi: Math.min(1, centre + half) };
}

/**
 * Newcombe's hybrid score interval (his method 10) on p₂ − p₁ for two independent proportions
 * k₁/n₁ and k₂/n₂, built from each one's Wilson interval.
 */
export function newcombe(k1: number, n1: number, k2: number, n2: number, z = Z95): Interval {
  const p1 = k1 / n1, p2 = k2 / n2;
  const a = wilson(k1, n1, z), b = wilson(k2, n2, z);
  const d = p2 - p1;
  return {
    lo: d - Math.sqrt((p2 - b.lo) ** 2 + (a.hi - p1) ** 2),
    hi: d + Math.sqrt((b.hi - p2) ** 2 + (p1 - a.lo) ** 2),
  };
}

/** log C(n, k), exact enough for the binomial tails below (n up to millions). */
function logChoose(n: number, k: number): number {
  let s = 0;
  const m = Math.min(k, n - k);
  for (let i = 1; i <= m; i++) s += Math.log(n - m + i) - Math.log(i);
  return s;
}

/**
 * McNemar's exact test of paired binary outcomes: of the pairs that disagree, `b` went one way
 * (base right, new wrong) and `c` the other. Under no difference b ~ Binomial(b + c, ½).
 * @returns the two-sided p-value, min(1, 2·P(X ≤ min(b, c))); 1 when no pair disagrees
 */
export function mcnemarExact(b: number, c: number): number {
  const n = b + c;
  if (n === 0) return 1;
  const m = Math.min(b, c);
  let tail = 0;
  for (let i = 0; i <= m; i++) tail += Math.exp(logChoose(n, i) - n * Math.LN2);
  return Math.min(1, 2 * tail);
}

/**
 * The regularised incomplete beta function I_x(a, b), by its continued fraction (modified
 * Lentz), used for Student's t distribution.
 */
function incompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  // the continued fraction converges for x < (a + 1) / (a + b + 2); use the symmetry otherwise
  if (x > (a + 1) / (a + b + 2)) return 1 - incompleteBeta(1 - x, b, a);
  const lnFront = a * Math.log(x) + b * Math.log(1 - x) - Math.log(a) -
    (logGamma(a) + logGamma(b) - logGamma(a + b));
  const tiny = 1e-300;
  let f = 1, c = 1, d = 0;
  for (let i = 0; i <= 400; i++) {
    const m = Math.floor(i / 2);
    const num = i === 0
      ? 1
      : i % 2 === 0
      ? (m * (b - m) * x) / ((a + 2 * m - 1) * (a + 2 * m))
      : -((a + m) * (a + b + m) * x) / ((a + 2 * m) * (a + 2 * m + 1));
    d = 1 + num * d;
    d = Math.abs(d) < tiny ? tiny : d;
    d = 1 / d;
    c = 1 + num / c;
    c = Math.abs(c) < tiny ? tiny : c;
    const cd = c * d;
    f *= cd;
    if (Math.abs(1 - cd) < 1e-14) break;
  }
  return Math.exp(lnFront) * (f - 1);
}

/** log Γ(x) for x > 0 (Lanczos, g = 7). */
function logGamma(x: number): number {
  const g = [
    0.99999999999980993,
    676.5203681218851,
    -1259.1392167224028,
    771.32342877765313,
    -176.61502916214059,
    12.507343278686905,
    -0.13857109526572012,
    9.9843695780195716e-6,
    1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const y = x - 1;
  let s = g[0]!;
  for (let i = 1; i < 9; i++) s += g[i]! / (y + i);
  const t = y + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (y + 0.5) * Math.log(t) - t + Math.log(s);
}

/** Student's t cumulative distribution function with `df` degrees of freedom. */
export function studentCdf(t: number, df: number): number {
  const tail = 0.5 * incompleteBeta(df / (df + t * t), df / 2, 0.5);
  return t >= 0 ? 1 - tail : tail;
}

/** The quantile of Student's t with `df` degrees of freedom at probability `p`, by bisection. */
export function studentQuantile(p: number, df: number): number {
  if (!(p > 0 && p < 1) || !(df > 0)) {
    throw new RangeError(`studentQuantile: expected 0 < p < 1 and df > 0, got ${p}, ${df}`);
  }
  let lo = -1e6, hi = 1e6;
  for (let i = 0; i < 200 && hi - lo > 1e-12 * Math.max(1, Math.abs(lo)); i++) {
    const mid = (lo + hi) / 2;
    if (studentCdf(mid, df) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** The spread of timed measurements, estimated from repeats of the same cells. */
export interface Noise {
  /** The pooled standard deviation of log(value) within cells. */
  sdLog: number;
  /** Its degrees of freedom: Σ (repeats of a cell − 1). */
  df: number;
  /** Cells that had at least two values. */
  cells: number;
}

/**
 * Pools the within-cell spread of log(value) over cells measured more than once (a cell with
 * one value tells nothing about noise and is left out).
 * @param groups each cell's repeated values (positive)
 * @returns null when no cell has two values
 */
export function pooledLogNoise(groups: number[][]): Noise | null {
  let ss = 0, df = 0, cells = 0;
  for (const g of groups) {
    const xs = g.filter((v) => v > 0 && Number.isFinite(v)).map(Math.log);
    if (xs.length < 2) continue;
    const mean = xs.reduce((a, x) => a + x, 0) / xs.length;
    ss += xs.reduce((a, x) => a + (x - mean) ** 2, 0);
    df += xs.length - 1;
    cells++;
  }
  return df === 0 ? null : { sdLog: Math.sqrt(ss / df), df, cells };
}

/**
 * The band the ratio of two single measurements of one cell stays in, with probability 1 − α,
 * when they differ by noise alone: log(new/base) has standard deviation √2·σ, and σ is
 * estimated with `df` degrees of freedom, so the band is exp(± t_{1−α/2, df} · √2 · σ).
 */
export function ratioBand(noise: Noise, alpha = 0.05): Interval {
  const h = studentQuantile(1 - alpha / 2, noise.df) * Math.SQRT2 * noise.sdLog;
  return { lo: Math.exp(-h), hi: Math.exp(h) };
}
