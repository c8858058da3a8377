/**
 * Content-addressed artifacts: each pipeline stage stores its output under a hash of its
 * resolved inputs, so a rerun (or a rerun after a crash) finds finished work and skips it.
 * Writes are atomic; a missing or unreadable artifact is simply recomputed.
 *
 * @module
 */
import { writeFileAtomic } from "../runtime/atomic.ts";

/** JSON with object keys sorted, so equal values always give equal text. */
export function stableStringify(value: unknown): string {
  return JSON.stringify(value, (_k, v) => {
    if (v && typeof v === "object" && !Array.isArray(v) && !ArrayBuffer.isView(v)) {
      return Object.fromEntries(
        Object.keys(v).sort().map((k) => [k, (v as Record<string, unknown>)[k]]),
      );
    }
    return v;
  });
}

/** Lower-case hex SHA-256 of bytes. */
export async function sha256Hex(bytes: Uint8Array | string): Promise<string> {
  const data = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
  const digest = await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The hash of a value's stable JSON form, shortened to 16 hex digits.
 *
 * @example
 * ```ts
 * import { hashOf } from "./cache.ts";
 * console.log((await hashOf({ b: 1, a: 2 })) === (await hashOf({ a: 2, b: 1 })));
 * ```
 */
export async function hashOf(value: unknown): Promise<string> {
  return (await sha256Hex(stableStringify(value))).slice(0, 16);
}

/** A folder of JSON artifacts, one subfolder per stage. */
export class ArtifactStore {
  /** @param root the folder (created on first write) */
  constructor(readonly root: string) {}

  #path(stage: string, key: string): string {
    return `${this.root}/${stage}/${key}.json`;
  }

  /** The stored artifact, or null when absent or unreadable. */
  async get<T>(stage: string, key: string): Promise<T | null> {
    try {
      return JSON.parse(await Deno.readTextFile(this.#path(stage, key))) as T;
    } catch {
      return null;
    }
  }

  /** Stores an artifact atomically. */
  async put(stage: string, key: string, value: unknown): Promise<void> {
    await writeFileAtomic(this.#path(stage, key), JSON.stringify(value));
  }

  /** The cached artifact, or computes, stores and returns it. */
  async getOrCompute<T>(
    stage: string,
    key: string,
    compute: () => Promise<T>,
  ): Promise<{ value: T; cached: boolean }> {
    const hit = await this.get<T>(stage, key);
    if (hit !== null) return { value: hit, cached: true };
    const value = await compute();
    await this.put(stage, key, value);
    return { value, cached: false };
  }
}
