/**
 * Small deterministic random numbers: the same seed gives the same stream on every machine.
 *
 * @module
 */

/** A seeded pseudo-random generator (mulberry32 state update, 2^32 period). */
export class Rng {
  #state: number;

  /**
   * A generator at the start of the stream of `seed`.
   * @param seed any integer; equal seeds give equal streams
   */
  constructor(seed: number) {
    this.#state = (seed ^ 0x9e3779b9) >>> 0;
  }

  /**
   * The next number of the stream.
   * @returns a float in [0, 1)
   */
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /**
   * A uniform integer.
   * @param lo the smallest value
   * @param hi the largest value
   * @returns an integer in [lo, hi] (both inclusive)
   */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  /**
   * A normal sample.
   * @returns a standard normal sample (Box–Muller)
   */
  normal(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /**
   * A uniform choice.
   * @param xs a non-empty list
   * @returns one element of `xs`, chosen uniformly
   */
  pick<T>(xs: readonly T[]): T {
    if (xs.length === 0) throw new RangeError("Rng.pick: empty list");
    return xs[Math.floor(this.next() * xs.length)]!;
  }

  /** Shuffles `xs` in place (Fisher–Yates) and returns it. */
  shuffle<T>(xs: T[]): T[] {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [xs[i], xs[j]] = [xs[j]!, xs[i]!];
    }
    return xs;
  }
}
