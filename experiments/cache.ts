/**
 * Content-addressed artifacts: each pipeline stage stores its output under a hash of its
 * resolved inputs, so a rerun (or a rerun after a crash) finds finished work and skips it.
 * Writes are atomic; a missing or unreadable artifact is simply recomputed. The keys are
 * `hashOf` (runtime/hash.ts) of the stage's inputs.
 *
 * @module
 */
import { writeFileAtomic } from "../runtime/atomic.ts";

/**
 * Checks a stored artifact's shape and returns it in memory form.
 * @throws Error whose message says what is wrong (e.g. `metrics[0].value: expected a number`)
 */
export type Validator<T> = (value: unknown) => T;

/** Who holds a claim: written into the claim file when it is created. */
export interface ClaimHolder {
  pid: number;
  host: string;
  /** ISO time the claim was made. */
  since: string;
}

/** A claim this process holds on an artifact: release it when the artifact is stored. */
export interface Claim {
  /** Removes the claim file (unless another process has taken the claim over). */
  release(): Promise<void>;
}

/** Options of {@link ArtifactStore}. */
export interface StoreOptions {
  /** Where one-line notices go (an invalid artifact, a wait for another run). @default stderr */
  notice?: (line: string) => void;
  /** How often a waiting run looks again, ms. @default 1000 */
  pollMs?: number;
  /** How often a claim's holder refreshes it, ms. @default 30000 */
  heartbeatMs?: number;
  /** A claim not refreshed for this long is stale and may be taken over, ms. @default 600000 */
  staleMs?: number;
}

/**
 * A folder of JSON artifacts, one subfolder per stage.
 *
 * Reads are validated: an artifact that is not JSON or has the wrong shape is reported (naming
 * the file) and treated as absent, so it is recomputed and overwritten.
 *
 * Runs sharing the folder claim an artifact before computing it: `<stage>/<key>.claim` is
 * created atomically (create-new) and holds the claimant's pid, host and start time; its holder
 * touches it every `heartbeatMs`. Another run finding the claim waits for the artifact (or does
 * other work) instead of computing it again. A claim is stale, and is taken over, when its
 * holder is a dead process on this host or it has not been touched for `staleMs` (a holder on
 * another host that died). Claims only save work: results are deterministic and written
 * atomically, so a rare double computation (two runs taking over one stale claim at once) is
 * harmless.
 */
export class ArtifactStore {
  readonly #notice: (line: string) => void;
  readonly #pollMs: number;
  readonly #heartbeatMs: number;
  readonly #staleMs: number;
  /** Invalid files reported, with the text they had then. */
  readonly #reported = new Map<string, string>();

  /**
   * @param root the folder (created on first write)
   * @param opts notices and claim timings
   */
  constructor(readonly root: string, opts: StoreOptions = {}) {
    this.#notice = opts.notice ?? ((l) => console.error(l));
    this.#pollMs = opts.pollMs ?? 1000;
    this.#heartbeatMs = opts.heartbeatMs ?? 30_000;
    this.#staleMs = opts.staleMs ?? 600_000;
  }

  /** The file of an artifact. */
  path(stage: string, key: string): string {
    return `${this.root}/${stage}/${key}.json`;
  }

  /**
   * The stored artifact, or null when absent. One that is unreadable, not JSON, or rejected by
   * `validate` is reported with its file name and treated as absent.
   */
  async get<T>(stage: string, key: string, validate?: Validator<T>): Promise<T | null> {
    const path = this.path(stage, key);
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return null;
      this.#invalid(path, "", `unreadable (${e instanceof Error ? e.message : e})`);
      return null;
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      this.#invalid(path, text, `not JSON (${e instanceof Error ? e.message : e})`);
      return null;
    }
    if (!validate) return value as T;
    try {
      return validate(value);
    } catch (e) {
      this.#invalid(path, text, `not a ${stage} artifact: ${e instanceof Error ? e.message : e}`);
      return null;
    }
  }

  /** Reports an invalid artifact, once per file and content. */
  #invalid(path: string, text: string, why: string): void {
    if (this.#reported.get(path) === text) return;
    this.#reported.set(path, text);
    this.#notice(`warning: ${path}: ${why}; it will be recomputed`);
  }

  /** Stores an artifact atomically. */
  async put(stage: string, key: string, value: unknown): Promise<void> {
    const path = this.path(stage, key);
    await writeFileAtomic(path, JSON.stringify(value));
    this.#reported.delete(path);
  }

  /**
   * The cached artifact, or computes, stores and returns it. While another run holds the
   * artifact's claim, waits for it instead of computing it too.
   */
  async getOrCompute<T>(
    stage: string,
    key: string,
    compute: () => Promise<T>,
    validate?: Validator<T>,
  ): Promise<{ value: T; cached: boolean }> {
    let told = false;
    for (;;) {
      const hit = await this.get<T>(stage, key, validate);
      if (hit !== null) return { value: hit, cached: true };
      const claim = await this.claim(stage, key);
      if ("pid" in claim) {
        if (!told) this.#notice(`${stage} ${key}: ${describeHolder(claim)}; waiting for it`);
        told = true;
        await this.wait();
        continue;
      }
      try {
        const late = await this.get<T>(stage, key, validate); // stored while we looked
        if (late !== null) return { value: late, cached: true };
        const value = await compute();
        await this.put(stage, key, value);
        return { value, cached: false };
      } finally {
        await claim.release();
      }
    }
  }

  /** Sleeps one poll interval. */
  wait(): Promise<void> {
    return new Promise((r) => setTimeout(r, this.#pollMs));
  }

  /**
   * Claims an artifact before computing it.
   * @returns the claim, or the holder of a live claim another run (or this one) made
   */
  async claim(stage: string, key: string): Promise<Claim | ClaimHolder> {
    const path = `${this.root}/${stage}/${key}.claim`;
    await Deno.mkdir(`${this.root}/${stage}`, { recursive: true });
    const mine: ClaimHolder = { pid: Deno.pid, host: Deno.hostname(), since: nowIso() };
    for (let attempt = 0;; attempt++) {
      let file: Deno.FsFile;
      try {
        file = await Deno.open(path, { createNew: true, write: true });
      } catch (e) {
        if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
        const holder = await this.#holder(path);
        if (typeof holder === "object") return holder;
        // released since we tried, or stale: try again (a few times, in case of a race)
        if (attempt >= 4) return { pid: 0, host: "?", since: "?" };
        if (holder === "stale") {
          this.#notice(`${path}: taking over the stale claim of a run that is gone`);
          await Deno.remove(path).catch(() => {});
        }
        continue;
      }
      try {
        await file.write(new TextEncoder().encode(JSON.stringify(mine)));
      } finally {
        file.close();
      }
      const text = JSON.stringify(mine);
      const timer = setInterval(() => {
        const now = new Date();
        Deno.utime(path, now, now).catch(() => {});
      }, this.#heartbeatMs);
      Deno.unrefTimer(timer);
      return {
        release: async () => {
          clearInterval(timer);
          try {
            if ((await Deno.readTextFile(path)) === text) await Deno.remove(path);
          } catch { /* gone, or taken over */ }
        },
      };
    }
  }

  /** The live holder of a claim file, "stale", or "gone" when it no longer exists. */
  async #holder(path: string): Promise<ClaimHolder | "stale" | "gone"> {
    let mtime: Date | null;
    let text: string;
    try {
      mtime = (await Deno.stat(path)).mtime;
      text = await Deno.readTextFile(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return "gone";
      throw e;
    }
    if (mtime !== null && Date.now() - mtime.getTime() > this.#staleMs) return "stale";
    let holder: ClaimHolder;
    try {
      holder = JSON.parse(text) as ClaimHolder;
      if (typeof holder.pid !== "number" || typeof holder.host !== "string") throw new Error();
    } catch {
      // being written right now, or damaged: live until it goes stale
      return { pid: 0, host: "?", since: mtime?.toISOString() ?? "?" };
    }
    if (holder.host === Deno.hostname() && !(await processAlive(holder.pid))) return "stale";
    return holder;
  }
}

/** `claimed by pid P on host H since T` */
export function describeHolder(h: ClaimHolder): string {
  return `being computed by another run (pid ${h.pid} on ${h.host} since ${h.since})`;
}

function nowIso(): string {
  return new Date().toISOString();
}

/**
 * Whether a process of this host is running (Linux: /proc/PID exists). Elsewhere it cannot be
 * told cheaply, so every process counts as alive and only the heartbeat ages a claim.
 */
async function processAlive(pid: number): Promise<boolean> {
  if (pid === Deno.pid) return true;
  if (Deno.build.os !== "linux") return true;
  try {
    await Deno.stat(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}
