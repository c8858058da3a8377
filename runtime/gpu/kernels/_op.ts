/**
 * The plumbing every kernel's host file shares: a compiled dispatch ({@link Op}), uniform
 * packing, and grids that stay under the 65 535 workgroups-per-dimension limit.
 *
 * @module
 */
import { type Gpu, pipeline, prelude, type StorageType, uniform } from "../device.ts";

/** Storage types and the model's attention shape, fixed per compiled kernel. */
export interface KernelConfig {
  /** storage type of weights */
  weights: StorageType;
  /** storage type of keys and values */
  kv: StorageType;
  /** head size */
  HS: number;
  /** query heads */
  NH: number;
  /** kv heads */
  NKV: number;
}

/** One dispatch, ready to encode any number of times. */
export interface Op {
  /** the kernel's file name */
  name: string;
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  /** workgroups in x, y, z */
  grid: [number, number, number];
}

/** A uniform field: an unsigned integer, or a float marked with `{ f: value }`. */
export type Field = number | { f: number };

/**
 * Compiles (or reuses) a kernel and binds its uniform (binding 0) and buffers (1, 2, …).
 *
 * @param gpu the device
 * @param name file name, for messages
 * @param body WGSL without prelude
 * @param k storage types and attention shape
 * @param fields the uniform struct's fields in order
 * @param buffers storage buffers for bindings 1, 2, …
 * @param grid workgroups
 * @param include WGSL put between prelude and body (shared functions)
 * @returns the dispatch
 */
export async function makeOp(
  gpu: Gpu,
  name: string,
  body: string,
  k: KernelConfig,
  fields: Field[],
  buffers: GPUBuffer[],
  grid: [number, number, number],
  include = "",
): Promise<Op> {
  const source = prelude(k.weights, k.kv, {
    HS: k.HS,
    NH: k.NH,
    NKV: k.NKV,
    G: k.NH / k.NKV,
  }) + include + body;
  const pipe = await pipeline(gpu, name, source);
  const words = new ArrayBuffer(fields.length * 4);
  const view = new DataView(words);
  fields.forEach((f, i) => {
    if (typeof f === "number") view.setUint32(i * 4, f, true);
    else view.setFloat32(i * 4, f.f, true);
  });
  const u = uniform(gpu, `${name} params`, new Uint8Array(words));
  const bindGroup = gpu.device.createBindGroup({
    label: name,
    layout: pipe.getBindGroupLayout(0),
    entries: [u, ...buffers].map((buffer, binding) => ({ binding, resource: { buffer } })),
  });
  return { name, pipeline: pipe, bindGroup, grid };
}

/**
 * Workgroups for `n` invocations of a 64-wide flat kernel (index = id.x + id.y · nw.x · 64).
 * @param n invocations
 * @returns the grid
 */
export function flatGrid(n: number): [number, number, number] {
  return rowGrid(Math.ceil(n / 64));
}

/**
 * A grid of `w` workgroups laid out as x + y · nw.x with x ≤ 65 535.
 * @param w workgroups
 * @returns the grid
 */
export function rowGrid(w: number): [number, number, number] {
  if (w <= 65535) return [Math.max(1, w), 1, 1];
  return [65535, Math.ceil(w / 65535), 1];
}

/**
 * Encodes dispatches into a compute pass, in order.
 * @param pass the pass
 * @param ops the dispatches
 */
export function encodeOps(pass: GPUComputePassEncoder, ops: readonly Op[]): void {
  for (const op of ops) {
    pass.setPipeline(op.pipeline);
    pass.setBindGroup(0, op.bindGroup);
    pass.dispatchWorkgroups(op.grid[0], op.grid[1], op.grid[2]);
  }
}

/**
 * Runs dispatches in one submission and waits for them (one host sync).
 * @param gpu the device
 * @param ops the dispatches
 */
export async function runOps(gpu: Gpu, ops: readonly Op[]): Promise<void> {
  const enc = gpu.device.createCommandEncoder();
  const pass = enc.beginComputePass();
  encodeOps(pass, ops);
  pass.end();
  gpu.device.queue.submit([enc.finish()]);
  await gpu.device.queue.onSubmittedWorkDone();
}
