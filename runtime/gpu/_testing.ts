/**
 * Test helpers for the GPU backend: {@link storageStep} for steps that need an optional adapter
 * capability (results are compared with their CPU twin by `assertAllClose`, runtime/_testing.ts). Those are ignored, with
 * the reason in their name, where the adapter lacks it (as whole GPU tests are ignored where there
 * is no adapter at all), so `deno task test` passes on any machine and says what it did not check.
 *
 * @module
 */
import type { Gpu, StorageType } from "./device.ts";

/**
 * Why `gpu` cannot store values as `type`, or null when it can: f16 storage needs the
 * `shader-f16` feature, which software GL adapters (llvmpipe without mesa-vulkan-drivers) lack.
 *
 * @param gpu the device
 * @param type the storage type a step needs
 * @returns the reason, or null
 */
export function missingStorage(gpu: Gpu, type: StorageType): string | null {
  return type === "f16" && !gpu.f16 ? `adapter "${gpu.name}" lacks shader-f16` : null;
}

/**
 * A test step that needs every storage type in `types`: ignored, its name saying why, on an
 * adapter that cannot store one of them.
 *
 * @param gpu the device
 * @param types the storage types the step uses
 * @param name the step's name
 * @param fn the step
 * @returns a step definition for `t.step`
 */
export function storageStep(
  gpu: Gpu,
  types: readonly StorageType[],
  name: string,
  fn: (t: Deno.TestContext) => void | Promise<void>,
): Deno.TestStepDefinition {
  const why = types.map((s) => missingStorage(gpu, s)).find((w) => w !== null) ?? null;
  return why === null ? { name, fn } : { name: `${name} (ignored: ${why})`, ignore: true, fn };
}
