/**
 * Progress on long work: a bar (cli-progress) when stderr is a terminal, otherwise plain lines
 * at most every `interval` seconds, so logs of scheduled runs stay readable.
 *
 * @module
 */
// @ts-types="@types/cli-progress"
import cliProgress from "cli-progress";
import process from "node:process";

/** Progress of a run made of `total` units (cells), each with inner steps. */
export interface Progress {
  /** A unit starts. */
  start(label: string): void;
  /** Inner progress of the current unit. */
  update(done: number, total: number): void;
  /** The current unit ended; `summary` is shown beside it. */
  finish(summary: string): void;
  /** A message that must not be garbled by the bar. */
  log(line: string): void;
  /** Stops the bar. */
  stop(): void;
}

/** Progress that shows nothing (runs inside tests and tools that print their own). */
export const SILENT_PROGRESS: Progress = {
  start() {},
  update() {},
  finish() {},
  log() {},
  stop() {},
};

/**
 * Chooses the bar on a TTY and plain lines elsewhere.
 * @param total number of units
 * @param write where plain lines go @default stderr
 */
export function createProgress(
  total: number,
  opts: { tty?: boolean; interval?: number; write?: (line: string) => void } = {},
): Progress {
  const write = opts.write ?? ((l: string) => console.error(l));
  const tty = opts.tty ?? Deno.stderr.isTerminal();
  return tty
    ? new BarProgress(total)
    : new LineProgress(total, write, (opts.interval ?? 10) * 1000);
}

class LineProgress implements Progress {
  #unit = 0;
  #label = "";
  #t0 = 0;
  #last = 0;
  constructor(
    readonly total: number,
    readonly write: (l: string) => void,
    readonly intervalMs: number,
  ) {}
  start(label: string) {
    this.#unit++;
    this.#label = label;
    this.#t0 = this.#last = performance.now();
    this.write(`[${this.#unit}/${this.total}] ${label} …`);
  }
  update(done: number, total: number) {
    const now = performance.now();
    if (now - this.#last < this.intervalMs) return;
    this.#last = now;
    this.write(`[${this.#unit}/${this.total}] ${this.#label}: ${done}/${total}`);
  }
  finish(summary: string) {
    const s = ((performance.now() - this.#t0) / 1000).toFixed(1);
    this.write(`[${this.#unit}/${this.total}] ${this.#label}: ${summary} (${s} s)`);
  }
  log(line: string) {
    this.write(line);
  }
  stop() {}
}

class BarProgress implements Progress {
  #bar: cliProgress.SingleBar;
  #unit = 0;
  constructor(readonly total: number) {
    this.#bar = new cliProgress.SingleBar({
      format: "{bar} {value}/{total} cells | {label} {inner} | {duration_formatted}",
      hideCursor: true,
      clearOnComplete: false,
      stream: process.stderr,
    }, cliProgress.Presets.shades_classic);
    this.#bar.start(total, 0, { label: "", inner: "" });
  }
  start(label: string) {
    this.#bar.update(this.#unit, { label, inner: "" });
  }
  update(done: number, total: number) {
    this.#bar.update(this.#unit, { inner: `${done}/${total}` });
  }
  finish(summary: string) {
    this.#unit++;
    this.#bar.update(this.#unit, { inner: summary });
  }
  log(line: string) {
    this.#bar.stop();
    console.error(line);
    this.#bar.start(this.total, this.#unit, { label: "", inner: "" });
  }
  stop() {
    this.#bar.stop();
  }
}
