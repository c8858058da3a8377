/**
 * Content hashing: the stable JSON form of a value and its SHA-256, which key every cached
 * artifact (experiments/cache.ts) and name runs, and the fingerprint of a model folder's content.
 *
 * @module
 */

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
 * import { hashOf } from "./hash.ts";
 * console.log((await hashOf({ b: 1, a: 2 })) === (await hashOf({ a: 2, b: 1 })));
 * ```
 */
export async function hashOf(value: unknown): Promise<string> {
  return (await sha256Hex(stableStringify(value))).slice(0, 16);
}

/**
 * A fingerprint of a model folder's content (config, tokenizer and weights), so cached results
 * are invalidated when the model changes. Files above 256 MiB contribute their size and header.
 */
export async function modelFingerprint(dir: string): Promise<string> {
  const parts: string[] = [];
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && /\.(json|safetensors)$/.test(e.name)) names.push(e.name);
  }
  for (const name of names.sort()) {
    const path = `${dir}/${name}`;
    const size = (await Deno.stat(path)).size;
    let bytes: Uint8Array;
    if (size <= 256 << 20) {
      bytes = await Deno.readFile(path);
    } else {
      const f = await Deno.open(path);
      bytes = new Uint8Array(1 << 20);
      await f.read(bytes);
      f.close();
    }
    parts.push(`${name}:${size}:${await sha256Hex(bytes)}`);
  }
  return (await sha256Hex(parts.join("\n"))).slice(0, 16);
}
