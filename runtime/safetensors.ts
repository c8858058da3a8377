/**
 * Reading and writing the safetensors format.
 *
 * Layout of a file: an 8-byte little-endian unsigned integer N, then N bytes of UTF-8 JSON
 * (the header), then the data area. The header maps each tensor name to
 * `{dtype, shape, data_offsets: [begin, end]}`, offsets counted from the start of the data area;
 * an optional `"__metadata__"` entry maps strings to strings. Tensors are row-major and
 * little-endian.
 *
 * @module
 */
import { InputError } from "./errors.ts";

/** Element types of the safetensors format that this module can parse (all but sub-byte ones). */
export type Dtype =
  | "BOOL"
  | "U8"
  | "I8"
  | "F8_E4M3"
  | "F8_E5M2"
  | "I16"
  | "U16"
  | "F16"
  | "BF16"
  | "I32"
  | "U32"
  | "F32"
  | "I64"
  | "U64"
  | "F64";

/** Float element types that {@linkcode encodeSafetensors} writes and {@linkcode toFloat32} reads. */
export type FloatDtype = "F32" | "F16" | "BF16";

/** Bytes per element of each dtype. */
export const DTYPE_BYTES: Readonly<Record<Dtype, number>> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
};

/** One tensor of a parsed file. */
export interface TensorView {
  /** The element type as stored. */
  dtype: Dtype;
  /** Dimensions, outermost first. */
  shape: number[];
  /** The tensor's bytes: a view into the file's buffer, not a copy. */
  data: Uint8Array;
}

/** A tensor's header entry as written: its name, element type and shape. */
export interface TensorHeader {
  /** The tensor's name in the header. */
  name: string;
  /** The element type to store. */
  dtype: FloatDtype;
  /** Dimensions, outermost first. */
  shape: number[];
}

/** A tensor to write: float32 values converted to `dtype` on the way out. */
export interface TensorToWrite extends TensorHeader {
  /** Row-major values; length must equal the product of `shape`. */
  data: Float32Array;
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function isDtype(s: string): s is Dtype {
  return Object.hasOwn(DTYPE_BYTES, s);
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function describe(x: unknown): string {
  if (typeof x === "string") return JSON.stringify(x.length > 40 ? x.slice(0, 40) + "…" : x);
  if (x === undefined) return "nothing";
  const s = JSON.stringify(x);
  return s.length > 60 ? s.slice(0, 60) + "…" : s;
}

function product(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Parses a safetensors file held in memory. Every tensor's bytes are checked against its shape
 * and dtype and against the bounds of the data area.
 *
 * @example
 * ```ts
 * import { encodeSafetensors, parseSafetensors, toFloat32 } from "./safetensors.ts";
 * const bytes = encodeSafetensors([
 *   { name: "w", dtype: "F16", shape: [2], data: new Float32Array([1, -2]) },
 * ]);
 * const w = parseSafetensors(bytes, "w.safetensors").get("w")!;
 * console.log(w.shape, toFloat32(w, "w.safetensors", "w")); // [ 2 ] Float32Array(2) [ 1, -2 ]
 * ```
 *
 * @param bytes the whole file
 * @param file the file's path, used to start error messages
 * @returns tensors by name; each `data` is a view into `bytes`
 * @throws {InputError} when the file is truncated or its header is malformed or inconsistent
 */
export function parseSafetensors(bytes: Uint8Array, file: string): Map<string, TensorView> {
  return parseSafetensorsWithMetadata(bytes, file).tensors;
}

/**
 * Like {@linkcode parseSafetensors}, and also returns the header's `__metadata__`.
 *
 * @example
 * ```ts
 * import { encodeSafetensors, parseSafetensorsWithMetadata } from "./safetensors.ts";
 * const bytes = encodeSafetensors([], { format: "pt" });
 * console.log(parseSafetensorsWithMetadata(bytes, "x.safetensors").metadata); // { format: "pt" }
 * ```
 *
 * @param bytes the whole file
 * @param file the file's path, used to start error messages
 * @returns tensors by name (views into `bytes`) and the metadata (empty when absent)
 * @throws {InputError} when the file is truncated or its header is malformed or inconsistent
 */
export function parseSafetensorsWithMetadata(
  bytes: Uint8Array,
  file: string,
): { tensors: Map<string, TensorView>; metadata: Record<string, string> } {
  const { entries, metadata, dataStart } = parseHeader(bytes, bytes.length, file);
  const tensors = new Map<string, TensorView>();
  for (const t of entries) {
    tensors.set(t.name, {
      dtype: t.dtype,
      shape: t.shape,
      data: bytes.subarray(dataStart + t.begin, dataStart + t.end),
    });
  }
  return { tensors, metadata };
}

/** One tensor entry of a safetensors header: where its bytes lie in the data area. */
export interface TensorEntry {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** Byte offsets in the data area (after the header), `[begin, end)`. */
  begin: number;
  end: number;
}

/** The most header bytes a safetensors file may declare (the format's limit, 100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;

/**
 * Reads and checks only the header of a safetensors file: every check of
 * {@linkcode parseSafetensors} (truncation included, against the file's size) without reading
 * the tensor data, so a large model folder can be validated in milliseconds.
 *
 * @example
 * ```ts
 * import { encodeSafetensors, readSafetensorsHeader } from "./safetensors.ts";
 * const path = await Deno.makeTempFile({ suffix: ".safetensors" });
 * await Deno.writeFile(path, encodeSafetensors([
 *   { name: "w", dtype: "BF16", shape: [2, 3], data: new Float32Array(6) },
 * ]));
 * console.log((await readSafetensorsHeader(path)).get("w")); // { name: "w", dtype: "BF16", ... }
 * await Deno.remove(path);
 * ```
 *
 * @param path the file
 * @returns the tensor entries by name
 * @throws {InputError} when the file is truncated or its header is malformed or inconsistent
 * @throws {Deno.errors.NotFound} when the file does not exist
 */
export async function readSafetensorsHeader(path: string): Promise<Map<string, TensorEntry>> {
  const f = await Deno.open(path);
  try {
    return (await readLayout(f, path)).entries;
  } finally {
    f.close();
  }
}

/** Reads and checks the header of an open file: its entries and where the data area starts. */
async function readLayout(
  f: Deno.FsFile,
  path: string,
): Promise<{ entries: Map<string, TensorEntry>; dataStart: number }> {
  const size = (await f.stat()).size;
  const head = await readFully(f, new Uint8Array(Math.min(8, size)));
  let prefix = head;
  if (head.length === 8) {
    const declared = new DataView(head.buffer).getBigUint64(0, true);
    if (declared <= BigInt(Math.min(size - 8, MAX_HEADER_BYTES))) {
      prefix = new Uint8Array(8 + Number(declared));
      prefix.set(head);
      prefix.set(await readFully(f, new Uint8Array(Number(declared))), 8);
    }
  }
  const { entries, dataStart } = parseHeader(prefix, size, path);
  return { entries: new Map(entries.map((t) => [t.name, t])), dataStart };
}

/** Fills `out` from the current position (a shorter view only at the end of the file). */
async function readFully(f: Deno.FsFile, out: Uint8Array): Promise<Uint8Array> {
  let at = 0;
  while (at < out.length) {
    const got = await f.read(out.subarray(at));
    if (got === null) return out.subarray(0, at);
    at += got;
  }
  return out;
}

/** Elements widened per read when a half-precision tensor is loaded as float32. */
const WIDEN_CHUNK = 1 << 20;

/**
 * A safetensors file opened for reading one tensor at a time, straight from the file into the
 * tensor's own array: nothing but the tensors asked for is ever in memory, so a checkpoint of
 * any size loads in its own bytes (plus one 2 MiB buffer when widening to float32).
 *
 * @example
 * ```ts
 * import { encodeSafetensors, SafetensorsFile } from "./safetensors.ts";
 * const path = await Deno.makeTempFile({ suffix: ".safetensors" });
 * await Deno.writeFile(path, encodeSafetensors([
 *   { name: "w", dtype: "BF16", shape: [2], data: new Float32Array([1, -2]) },
 * ]));
 * const file = await SafetensorsFile.open(path);
 * console.log(await file.readFloat32("w"), await file.readHalf("w")); // [1, -2], [16256, 49152]
 * file.close();
 * await Deno.remove(path);
 * ```
 */
export class SafetensorsFile {
  private constructor(
    readonly path: string,
    /** The tensor entries by name, checked against the file's size. */
    readonly entries: Map<string, TensorEntry>,
    readonly dataStart: number,
    readonly file: Deno.FsFile,
  ) {}

  /**
   * Opens a file and checks its header.
   * @param path the file
   * @returns the open file; close it with {@linkcode SafetensorsFile.close}
   * @throws {InputError} when the file is truncated or its header is malformed or inconsistent
   * @throws {Deno.errors.NotFound} when the file does not exist
   */
  static async open(path: string): Promise<SafetensorsFile> {
    const f = await Deno.open(path);
    try {
      const { entries, dataStart } = await readLayout(f, path);
      return new SafetensorsFile(path, entries, dataStart, f);
    } catch (e) {
      f.close();
      throw e;
    }
  }

  /** The entry of a tensor. @throws {InputError} when the file has no such tensor */
  entry(name: string): TensorEntry {
    const e = this.entries.get(name);
    if (e === undefined) throw new InputError(`${this.path}: missing tensor ${name}`);
    return e;
  }

  /** Reads a tensor's bytes (or `out.length` of them from byte `skip` on) into `out`. */
  async readBytes(e: TensorEntry, out: Uint8Array, skip = 0): Promise<void> {
    if (skip + out.length > e.end - e.begin) {
      throw new RangeError(`${this.path}: ${e.name}: read past the tensor's bytes`);
    }
    await this.file.seek(this.dataStart + e.begin + skip, Deno.SeekMode.Start);
    const got = await readFully(this.file, out);
    if (got.length !== out.length) {
      throw new InputError(`${this.path}: tensor ${JSON.stringify(e.name)}: file ends early`);
    }
  }

  /**
   * A float tensor as a new float32 array, widened exactly from F16 or BF16 a chunk at a time.
   * @throws {InputError} when the tensor is missing or not F32, F16 or BF16
   */
  async readFloat32(name: string): Promise<Float32Array> {
    const e = this.entry(name);
    const n = (e.end - e.begin) / DTYPE_BYTES[e.dtype];
    const out = new Float32Array(n);
    if (e.dtype === "F32") {
      await this.readBytes(e, new Uint8Array(out.buffer));
      if (!LITTLE_ENDIAN_HOST) swapBytes(new Uint8Array(out.buffer), 4);
      return out;
    }
    this.checkHalf(e);
    const chunk = new Uint16Array(Math.min(n, WIDEN_CHUNK));
    const bytes = new Uint8Array(chunk.buffer);
    for (let i = 0; i < n; i += chunk.length) {
      const m = Math.min(chunk.length, n - i);
      await this.readBytes(e, bytes.subarray(0, 2 * m), 2 * i);
      const view: TensorView = { dtype: e.dtype, shape: [m], data: bytes.subarray(0, 2 * m) };
      out.set(toFloat32(view, this.path, name), i);
    }
    return out;
  }

  /**
   * An F16 or BF16 tensor's 16-bit patterns, as stored (host byte order).
   * @throws {InputError} when the tensor is missing or not F16 or BF16
   */
  async readHalf(name: string): Promise<Uint16Array> {
    const e = this.entry(name);
    this.checkHalf(e);
    const out = new Uint16Array((e.end - e.begin) / 2);
    await this.readBytes(e, new Uint8Array(out.buffer));
    if (!LITTLE_ENDIAN_HOST) swapBytes(new Uint8Array(out.buffer), 2);
    return out;
  }

  private checkHalf(e: TensorEntry): void {
    if (e.dtype !== "F16" && e.dtype !== "BF16") {
      throw new InputError(
        `${this.path}: tensor ${JSON.stringify(e.name)}: unsupported dtype ${e.dtype} ` +
          `(expected F32, F16 or BF16)`,
      );
    }
  }

  /** Closes the file. */
  close(): void {
    this.file.close();
  }
}

/** Reverses the bytes of every `size`-byte element in place (little-endian data, big host). */
function swapBytes(b: Uint8Array, size: number): void {
  for (let i = 0; i < b.length; i += size) b.subarray(i, i + size).reverse();
}

/**
 * Parses and checks a safetensors header.
 * @param prefix the file's first bytes: at least the 8-byte length and the header it declares
 *   (when the file has them)
 * @param size the whole file's size in bytes
 * @param file the file's path, used to start error messages
 */
function parseHeader(
  prefix: Uint8Array,
  size: number,
  file: string,
): { entries: TensorEntry[]; metadata: Record<string, string>; dataStart: number } {
  if (size < 8) {
    throw new InputError(
      `${file}: file is ${size} bytes, too short for the 8-byte header length of a ` +
        `safetensors file`,
    );
  }
  const dv = new DataView(prefix.buffer, prefix.byteOffset, prefix.byteLength);
  const declared = dv.getBigUint64(0, true);
  const available = size - 8;
  if (declared > BigInt(available)) {
    throw new InputError(
      `${file}: header declares ${declared} bytes but the file has only ${available} after ` +
        `the 8-byte length (truncated, or not a safetensors file)`,
    );
  }
  if (declared > BigInt(MAX_HEADER_BYTES)) {
    throw new InputError(
      `${file}: header declares ${declared} bytes, more than the ${MAX_HEADER_BYTES} a ` +
        `safetensors header may have (not a safetensors file?)`,
    );
  }
  const headerLen = Number(declared);
  let header: unknown;
  try {
    const text = new TextDecoder("utf-8", { fatal: true }).decode(
      prefix.subarray(8, 8 + headerLen),
    );
    header = JSON.parse(text);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new InputError(`${file}: invalid JSON header (${headerLen} bytes): ${why}`);
  }
  if (!isRecord(header)) {
    throw new InputError(`${file}: header: expected a JSON object, got ${describe(header)}`);
  }

  const dataStart = 8 + headerLen;
  const dataLen = size - dataStart;
  const metadata: Record<string, string> = {};
  const entries: TensorEntry[] = [];

  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") {
      if (!isRecord(entry)) {
        throw new InputError(
          `${file}: header.__metadata__: expected an object of strings, got ${describe(entry)}`,
        );
      }
      for (const [k, v] of Object.entries(entry)) {
        if (typeof v !== "string") {
          throw new InputError(
            `${file}: header.__metadata__.${k}: expected a string, got ${describe(v)}`,
          );
        }
        metadata[k] = v;
      }
      continue;
    }
    const where = `${file}: tensor ${JSON.stringify(name)}`;
    if (!isRecord(entry)) {
      throw new InputError(
        `${where}: expected {dtype, shape, data_offsets}, got ${describe(entry)}`,
      );
    }
    const { dtype, shape, data_offsets: offsets } = entry;
    if (typeof dtype !== "string" || !isDtype(dtype)) {
      throw new InputError(
        `${where}: dtype: expected one of ${Object.keys(DTYPE_BYTES).join(", ")}, ` +
          `got ${describe(dtype)}`,
      );
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new InputError(
        `${where}: shape: expected an array of non-negative integers, got ${describe(shape)}`,
      );
    }
    if (
      !Array.isArray(offsets) || offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) || offsets[0] > offsets[1]
    ) {
      throw new InputError(
        `${where}: data_offsets: expected [begin, end] with 0 <= begin <= end, ` +
          `got ${describe(offsets)}`,
      );
    }
    const begin = offsets[0] as number;
    const end = offsets[1] as number;
    if (end > dataLen) {
      throw new InputError(
        `${where} ends at byte ${end} but data area has ${dataLen} bytes (file truncated?)`,
      );
    }
    const dims = shape as number[];
    const expected = product(dims) * DTYPE_BYTES[dtype];
    if (end - begin !== expected) {
      throw new InputError(
        `${where}: data_offsets [${begin}, ${end}] span ${end - begin} bytes but shape ` +
          `[${dims.join(",")}] of ${dtype} needs ${expected}`,
      );
    }
    entries.push({ name, dtype, shape: dims, begin, end });
  }

  const spans = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < spans.length; i++) {
    const prev = spans[i - 1]!;
    const cur = spans[i]!;
    if (cur.begin < prev.end) {
      throw new InputError(
        `${file}: tensors ${JSON.stringify(prev.name)} [${prev.begin}, ${prev.end}) and ` +
          `${JSON.stringify(cur.name)} [${cur.begin}, ${cur.end}) overlap in the data area`,
      );
    }
  }
  return { entries, metadata, dataStart };
}

let f16Values: Float32Array | null = null;

/** Decodes one IEEE 754 binary16 bit pattern. */
export function f16BitsToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/**
 * The float32 value of every binary16 bit pattern (65,536 entries, built on first use): the
 * fastest way to widen F16 data.
 *
 * @example
 * ```ts
 * import { f16Table } from "./safetensors.ts";
 * console.log(f16Table()[0x3c00], f16Table()[0xfc00]); // 1 -Infinity
 * ```
 */
export function f16Table(): Float32Array {
  if (f16Values === null) {
    f16Values = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Values[h] = f16BitsToNumber(h);
  }
  return f16Values;
}

/** The bytes of `data` as a buffer aligned for `align`-byte elements (copied only if needed). */
function aligned(data: Uint8Array, align: number): Uint8Array {
  if (data.byteOffset % align === 0) return data;
  return data.slice();
}

/**
 * Converts a float tensor (F32, F16 or BF16) to a new float32 array. F16 subnormals,
 * infinities and NaNs decode exactly; BF16 is the top half of a float32, so it decodes exactly.
 *
 * @example
 * ```ts
 * import { toFloat32 } from "./safetensors.ts";
 * const data = new Uint8Array([0x00, 0x3c, 0x00, 0xfc]); // F16 1 and -inf, little-endian
 * console.log(toFloat32({ dtype: "F16", shape: [2], data }, "x.safetensors", "w"));
 * // Float32Array(2) [ 1, -Infinity ]
 * ```
 *
 * @param view the tensor
 * @param file the file it came from, for error messages
 * @param name the tensor's name, for error messages
 * @returns a fresh array of product(shape) values
 * @throws {InputError} when the dtype is not F32, F16 or BF16
 */
export function toFloat32(view: TensorView, file: string, name: string): Float32Array {
  const n = product(view.shape);
  const size = DTYPE_BYTES[view.dtype];
  if (view.data.length !== n * size) {
    throw new InputError(
      `${file}: tensor ${JSON.stringify(name)} has ${view.data.length} bytes but shape ` +
        `[${view.shape.join(",")}] of ${view.dtype} needs ${n * size}`,
    );
  }
  const out = new Float32Array(n);
  const data = view.data;
  switch (view.dtype) {
    case "F32": {
      if (LITTLE_ENDIAN_HOST) {
        new Uint8Array(out.buffer).set(data);
      } else {
        const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
        for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true);
      }
      return out;
    }
    case "F16": {
      const table = f16Table();
      if (LITTLE_ENDIAN_HOST) {
        const a = aligned(data, 2);
        const u16 = new Uint16Array(a.buffer, a.byteOffset, n);
        for (let i = 0; i < n; i++) out[i] = table[u16[i]!]!;
      } else {
        for (let i = 0; i < n; i++) out[i] = table[data[2 * i]! | (data[2 * i + 1]! << 8)]!;
      }
      return out;
    }
    case "BF16": {
      const u32 = new Uint32Array(out.buffer);
      if (LITTLE_ENDIAN_HOST) {
        const a = aligned(data, 2);
        const u16 = new Uint16Array(a.buffer, a.byteOffset, n);
        for (let i = 0; i < n; i++) u32[i] = u16[i]! << 16;
      } else {
        const dv = new DataView(out.buffer);
        for (let i = 0; i < n; i++) {
          dv.setUint16(4 * i, data[2 * i]! | (data[2 * i + 1]! << 8), false);
        }
      }
      return out;
    }
    default:
      throw new InputError(
        `${file}: tensor ${JSON.stringify(name)}: unsupported dtype ${view.dtype} ` +
          `(expected F32, F16 or BF16)`,
      );
  }
}

/**
 * Rounds float32 bits to the nearest binary16 (ties to even); overflow gives ±inf, NaN stays
 * a (quiet) NaN.
 *
 * @example
 * ```ts
 * import { f32BitsToF16Bits } from "./safetensors.ts";
 * const bits = new Uint32Array(new Float32Array([65504, 1 / 3]).buffer);
 * console.log(f32BitsToF16Bits(bits[0]!).toString(16), f32BitsToF16Bits(bits[1]!).toString(16));
 * // 7bff 3555
 * ```
 *
 * @param x float32 bits as an unsigned 32-bit integer
 * @returns binary16 bits
 */
export function f32BitsToF16Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal (or zero) in binary16: value = m · 2^-24 with m = mantissa24 · 2^(e − 14).
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (half & 1) === 1)) half++;
    return sign | half; // a carry into bit 10 gives the smallest normal, as it should
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1) === 1)) half++;
  return sign | half; // a carry into the exponent may give inf, as it should
}

/**
 * Rounds float32 bits to the nearest bfloat16 (ties to even); NaN stays a (quiet) NaN.
 *
 * @example
 * ```ts
 * import { f32BitsToBf16Bits } from "./safetensors.ts";
 * const bits = new Uint32Array(new Float32Array([Math.PI]).buffer);
 * console.log(f32BitsToBf16Bits(bits[0]!).toString(16)); // 4049
 * ```
 *
 * @param x float32 bits as an unsigned 32-bit integer
 * @returns bfloat16 bits
 */
export function f32BitsToBf16Bits(x: number): number {
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) return (x >>> 16) | 0x40;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/**
 * Encodes float32 values as `dtype`, little-endian, rounding to nearest, ties to even: the bytes
 * of those elements in a file's data area, so a large tensor can be written a chunk at a time.
 *
 * @example
 * ```ts
 * import { encodeValues } from "./safetensors.ts";
 * console.log(encodeValues(new Float32Array([1]), "BF16")); // Uint8Array(2) [ 128, 63 ]
 * ```
 */
export function encodeValues(data: Float32Array, dtype: FloatDtype): Uint8Array {
  const n = data.length;
  if (dtype === "F32") {
    const out = new Uint8Array(4 * n);
    if (LITTLE_ENDIAN_HOST) {
      out.set(new Uint8Array(data.buffer, data.byteOffset, 4 * n));
    } else {
      const dv = new DataView(out.buffer);
      for (let i = 0; i < n; i++) dv.setFloat32(4 * i, data[i]!, true);
    }
    return out;
  }
  const bits = new Uint32Array(data.buffer, data.byteOffset, n);
  const out = new Uint8Array(2 * n);
  const convert = dtype === "F16" ? f32BitsToF16Bits : f32BitsToBf16Bits;
  for (let i = 0; i < n; i++) {
    const h = convert(bits[i]!);
    out[2 * i] = h & 0xff;
    out[2 * i + 1] = h >>> 8;
  }
  return out;
}

/** A safetensors file laid out but not yet encoded: its header and its tensors in data order. */
export interface SafetensorsLayout<T extends TensorHeader = TensorToWrite> {
  /** The 8-byte length followed by the space-padded JSON header. */
  prefix: Uint8Array;
  /** Tensors sorted by name, in the order their bytes follow the header. */
  tensors: T[];
  /** Total file size in bytes. */
  totalBytes: number;
}

/**
 * Lays out a safetensors file: validates the tensors, sorts them by name and builds the header.
 * Pass the layout to {@linkcode encodeTensorData} one tensor at a time, or give headers without
 * `data` and {@linkcode encodeValues} chunks in data order, to stream a large file.
 *
 * @example
 * ```ts
 * import { layoutSafetensors } from "./safetensors.ts";
 * const l = layoutSafetensors([{ name: "b", dtype: "BF16", shape: [3], data: new Float32Array(3) }]);
 * console.log(l.prefix.length % 8, l.totalBytes - l.prefix.length); // 0 6
 * ```
 *
 * @param tensors what to write; names must be unique and data lengths, where given, must match
 *   shapes
 * @param metadata written as `__metadata__` when given
 * @returns the header bytes, the tensors in data order and the file size
 * @throws {RangeError} on a duplicate name or a data length that disagrees with the shape
 */
export function layoutSafetensors<T extends TensorHeader & { data?: Float32Array }>(
  tensors: readonly T[],
  metadata?: Record<string, string>,
): SafetensorsLayout<T> {
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) header["__metadata__"] = { ...metadata };
  let offset = 0;
  for (let i = 0; i < sorted.length; i++) {
    const t = sorted[i]!;
    if (t.name === "__metadata__") throw new RangeError(`tensor name "__metadata__" is reserved`);
    if (i > 0 && sorted[i - 1]!.name === t.name) {
      throw new RangeError(`duplicate tensor name ${JSON.stringify(t.name)}`);
    }
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new RangeError(`tensor ${JSON.stringify(t.name)}: bad shape [${t.shape.join(",")}]`);
    }
    const n = product(t.shape);
    if (t.data !== undefined && t.data.length !== n) {
      throw new RangeError(
        `tensor ${JSON.stringify(t.name)}: data has ${t.data.length} values but shape ` +
          `[${t.shape.join(",")}] needs ${n}`,
      );
    }
    const end = offset + n * DTYPE_BYTES[t.dtype];
    header[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, end] };
    offset = end;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerLen = Math.ceil(json.length / 8) * 8;
  const prefix = new Uint8Array(8 + headerLen).fill(0x20, 8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(headerLen), true);
  prefix.set(json, 8);
  return { prefix, tensors: sorted, totalBytes: prefix.length + offset };
}

/**
 * The data-area bytes of one tensor: its float32 values converted to its dtype (ties to even).
 *
 * @example
 * ```ts
 * import { encodeTensorData } from "./safetensors.ts";
 * const t = { name: "x", dtype: "F16" as const, shape: [1], data: new Float32Array([1]) };
 * console.log(encodeTensorData(t)); // Uint8Array(2) [ 0, 60 ]
 * ```
 *
 * @param t the tensor
 * @returns `product(shape) · bytes(dtype)` bytes, little-endian
 */
export function encodeTensorData(t: TensorToWrite): Uint8Array {
  return encodeValues(t.data, t.dtype);
}

/**
 * Encodes tensors as a complete safetensors file in memory: header padded with spaces to a
 * multiple of 8 bytes, tensors sorted by name and packed back to back, float32 values rounded
 * to F16 or BF16 to nearest, ties to even.
 *
 * @example
 * ```ts
 * import { encodeSafetensors } from "./safetensors.ts";
 * const bytes = encodeSafetensors(
 *   [{ name: "w", dtype: "F32", shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) }],
 *   { format: "pt" },
 * );
 * console.log(bytes.length % 8); // 0
 * ```
 *
 * @param tensors what to write; names must be unique and data lengths must match shapes
 * @param metadata written as `__metadata__` when given
 * @returns the file's bytes
 * @throws {RangeError} on a duplicate name or a data length that disagrees with the shape
 */
export function encodeSafetensors(
  tensors: readonly TensorToWrite[],
  metadata?: Record<string, string>,
): Uint8Array {
  const layout = layoutSafetensors(tensors, metadata);
  const out = new Uint8Array(layout.totalBytes);
  out.set(layout.prefix, 0);
  let pos = layout.prefix.length;
  for (const t of layout.tensors) {
    const bytes = encodeTensorData(t);
    out.set(bytes, pos);
    pos += bytes.length;
  }
  return out;
}
