/**
 * The WebGPU device moa's GPU backend runs on: acquiring it (with the optional features it
 * uses), compiling WGSL kernels into cached pipelines with readable errors, and small buffer
 * helpers. Everything GPU-side goes through a {@link Gpu}.
 *
 * Storage types: weights and the KV cache are stored as f32 or f16 (`shader-f16`), chosen per
 * run; arithmetic is always f32. Kernels refer to the aliases `WT` (weights) and `KT` (keys and
 * values) that {@link prelude} defines.
 *
 * @module
 */
import { f16BitsToNumber, f32BitsToF16Bits } from "../safetensors.ts";

/** No usable WebGPU adapter or device, or the device was lost. */
export class GpuUnavailableError extends Error {
  /** @param message what is missing and what the user can do */
  constructor(message: string) {
    super(message);
    this.name = "GpuUnavailableError";
  }
}

/** Storage type of weights or of the KV cache. */
export type StorageType = "f32" | "f16";

/** Bytes per element of a storage type. */
export function bytesOf(t: StorageType): number {
  return t === "f16" ? 2 : 4;
}

/** An acquired device and what it can do. */
export interface Gpu {
  device: GPUDevice;
  /** adapter description, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)" or "NVIDIA H200" */
  name: string;
  /** driver / architecture string when the adapter reports one */
  driver: string;
  /** `shader-f16` is enabled */
  f16: boolean;
  /** `timestamp-query` is enabled */
  timestamps: boolean;
  /** the device is a software (CPU) adapter */
  fallback: boolean;
  /** compiled pipelines by source and entry point */
  pipelines: Map<string, GPUComputePipeline>;
  /** set when the device reports it was lost */
  lost: string | null;
}

let shared: Promise<Gpu> | null = null;

/**
 * The process-wide GPU, acquired on first use with every limit the adapter allows and the
 * optional features `shader-f16` and `timestamp-query` when present.
 *
 * @returns the device
 * @throws {GpuUnavailableError} when there is no WebGPU adapter (no `navigator.gpu`, no
 *   driver) or the device cannot be created
 * @example
 * ```ts ignore
 * import { getGpu } from "./device.ts";
 * const gpu = await getGpu();
 * console.log(gpu.name);
 * ```
 */
export function getGpu(): Promise<Gpu> {
  shared ??= acquire().catch((e) => {
    shared = null;
    throw e;
  });
  return shared;
}

/**
 * Whether a WebGPU adapter exists here (tests skip their GPU cases when it does not).
 * @returns true when {@link getGpu} succeeds
 */
export async function hasGpu(): Promise<boolean> {
  try {
    await getGpu();
    return true;
  } catch (e) {
    if (e instanceof GpuUnavailableError) return false;
    throw e;
  }
}

async function acquire(): Promise<Gpu> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (!nav?.gpu) {
    throw new GpuUnavailableError(
      "WebGPU is not available in this runtime (no navigator.gpu); run under Deno ≥ 2 or use " +
        "the CPU backend",
    );
  }
  let adapter: GPUAdapter | null = null;
  try {
    adapter = await nav.gpu.requestAdapter({ powerPreference: "high-performance" });
  } catch (e) {
    throw new GpuUnavailableError(`requesting a WebGPU adapter failed: ${String(e)}`);
  }
  if (!adapter) {
    throw new GpuUnavailableError(
      "no WebGPU adapter found; install a GPU driver, or mesa-vulkan-drivers for the CPU " +
        "adapter (lavapipe), or use the CPU backend",
    );
  }
  const want: GPUFeatureName[] = ["shader-f16", "timestamp-query"];
  const features = want.filter((f) => adapter.features.has(f));
  const l = adapter.limits;
  const device = await adapter.requestDevice({
    requiredFeatures: features,
    requiredLimits: {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
    },
  }).catch((e) => {
    throw new GpuUnavailableError(`creating the WebGPU device failed: ${String(e)}`);
  });
  const info = adapter.info;
  const gpu: Gpu = {
    device,
    name: info.description || `${info.vendor} ${info.device}`.trim() || "unknown GPU",
    driver: [info.vendor, info.architecture].filter((x) => x).join(" "),
    f16: features.includes("shader-f16"),
    timestamps: features.includes("timestamp-query"),
    fallback: info.isFallbackAdapter ?? false,
    pipelines: new Map(),
    lost: null,
  };
  device.lost.then((i) => {
    gpu.lost = i.message || i.reason || "lost";
    if (shared) shared = null;
  });
  return gpu;
}

/**
 * Throws a clear error when the device was lost (a driver reset, a kernel that ran too long).
 * @param gpu the device
 */
export function checkAlive(gpu: Gpu): void {
  if (gpu.lost !== null) {
    throw new GpuUnavailableError(
      `the WebGPU device "${gpu.name}" was lost (${gpu.lost}); restart the run, or use the ` +
        "CPU backend",
    );
  }
}

/**
 * The text put before every kernel: `enable f16;` when a storage type needs it, the storage
 * aliases `WT` and `KT`, and the kernel's integer constants.
 *
 * @param weights storage type of weights
 * @param kv storage type of keys and values
 * @param consts `const NAME: u32 = value;` lines to define
 * @returns WGSL source
 * @example
 * ```ts
 * import { prelude } from "./device.ts";
 * console.log(prelude("f32", "f16", { HS: 64 }));
 * ```
 */
export function prelude(
  weights: StorageType,
  kv: StorageType,
  consts: Record<string, number> = {},
): string {
  const lines: string[] = [];
  if (weights === "f16" || kv === "f16") lines.push("enable f16;");
  lines.push(`alias WT = ${weights};`, `alias KT = ${kv};`);
  for (const [k, v] of Object.entries(consts)) {
    if (!Number.isInteger(v) || v < 0) {
      throw new RangeError(`prelude(): constant ${k} is ${v}; expected an integer ≥ 0`);
    }
    lines.push(`const ${k}: u32 = ${v}u;`);
  }
  return lines.join("\n") + "\n";
}

/**
 * A compute pipeline for `source` (entry point `main`), compiled once per source. Compile and
 * validation errors are rethrown as `name.wgsl:line:col: message` with the offending line.
 *
 * @param gpu the device
 * @param name the kernel's file name, for messages
 * @param source complete WGSL (prelude included)
 * @returns the pipeline (layout "auto")
 * @throws {SyntaxError} when the WGSL does not compile
 */
export async function pipeline(
  gpu: Gpu,
  name: string,
  source: string,
): Promise<GPUComputePipeline> {
  const hit = gpu.pipelines.get(source);
  if (hit) return hit;
  checkAlive(gpu);
  const device = gpu.device;
  device.pushErrorScope("validation");
  const module = device.createShaderModule({ code: source, label: name });
  const info = await module.getCompilationInfo();
  const errors = info.messages.filter((m) => m.type === "error");
  let p: GPUComputePipeline | null = null;
  if (errors.length === 0) {
    p = device.createComputePipeline({
      label: name,
      layout: "auto",
      compute: { module, entryPoint: "main" },
    });
  }
  const scoped = await device.popErrorScope();
  if (errors.length > 0 || scoped) {
    const src = source.split("\n");
    const msgs = errors.length > 0
      ? errors.map((m) =>
        `${name}:${m.lineNum}:${m.linePos}: ${m.message}\n    ${src[m.lineNum - 1] ?? ""}`
      )
      : [`${name}: ${scoped!.message}`];
    throw new SyntaxError(`WGSL kernel failed to compile:\n${msgs.join("\n")}`);
  }
  gpu.pipelines.set(source, p!);
  return p!;
}

/** Buffer usage for storage buffers that are also copied to and from. */
export const STORAGE = 0x80 | 0x08 | 0x04; // STORAGE | COPY_DST | COPY_SRC

/**
 * A storage buffer holding `data`, or `bytes` zeroed bytes.
 * @param gpu the device
 * @param label for debugging
 * @param data contents, or a size in bytes (rounded up to a multiple of 4, at least 4)
 * @returns the buffer
 */
export function storage(gpu: Gpu, label: string, data: ArrayBufferView | number): GPUBuffer {
  const size = typeof data === "number" ? data : data.byteLength;
  const buffer = gpu.device.createBuffer({
    label,
    size: Math.max(4, Math.ceil(size / 4) * 4),
    usage: STORAGE,
  });
  if (typeof data !== "number") writeBuffer(gpu, buffer, 0, data);
  return buffer;
}

/**
 * Writes `data` into `buffer` at `offset` (padding a byte length that is not a multiple of 4).
 * @param gpu the device
 * @param buffer destination
 * @param offset byte offset
 * @param data contents
 */
export function writeBuffer(
  gpu: Gpu,
  buffer: GPUBuffer,
  offset: number,
  data: ArrayBufferView,
): void {
  const bytes = new Uint8Array(data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
  if (bytes.byteLength % 4 === 0) {
    gpu.device.queue.writeBuffer(buffer, offset, bytes);
  } else {
    const padded = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
    padded.set(bytes);
    gpu.device.queue.writeBuffer(buffer, offset, padded);
  }
}

/** A uniform buffer of u32/i32/f32 words. */
export function uniform(gpu: Gpu, label: string, words: ArrayBufferView): GPUBuffer {
  const size = Math.max(16, Math.ceil(words.byteLength / 16) * 16);
  const buffer = gpu.device.createBuffer({ label, size, usage: 0x40 | 0x08 }); // UNIFORM|COPY_DST
  writeBuffer(gpu, buffer, 0, words);
  return buffer;
}

/**
 * Copies `bytes` bytes of `buffer` from `offset` back to the host (one host sync).
 * @param gpu the device
 * @param buffer source (needs COPY_SRC)
 * @param bytes how many bytes
 * @param offset byte offset
 * @returns the bytes
 */
export async function readBuffer(
  gpu: Gpu,
  buffer: GPUBuffer,
  bytes: number,
  offset = 0,
): Promise<ArrayBuffer> {
  const size = Math.ceil(bytes / 4) * 4;
  const staging = gpu.device.createBuffer({ size, usage: 0x01 | 0x08 }); // MAP_READ|COPY_DST
  const enc = gpu.device.createCommandEncoder();
  enc.copyBufferToBuffer(buffer, offset, staging, 0, size);
  gpu.device.queue.submit([enc.finish()]);
  await staging.mapAsync(0x01);
  checkAlive(gpu);
  const out = staging.getMappedRange().slice(0, bytes);
  staging.unmap();
  staging.destroy();
  return out;
}

/**
 * The values of `data` converted to a storage type, as bytes ready to upload.
 * @param data f32 values
 * @param type storage type
 * @returns Float32Array or f16 bits in a Uint16Array
 */
export function encodeAs(data: Float32Array, type: StorageType): Float32Array | Uint16Array {
  if (type === "f32") return data;
  const out = new Uint16Array(data.length);
  const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
  for (let i = 0; i < data.length; i++) out[i] = f32BitsToF16Bits(bits[i]!);
  return out;
}

/**
 * Reads a buffer of `n` values stored as `type` into f32.
 * @param bytes raw bytes
 * @param n number of values
 * @param type storage type
 * @returns the values
 */
export function decodeFrom(bytes: ArrayBuffer, n: number, type: StorageType): Float32Array {
  if (type === "f32") return new Float32Array(bytes, 0, n);
  const h = new Uint16Array(bytes, 0, n);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = f16BitsToNumber(h[i]!);
  return out;
}
