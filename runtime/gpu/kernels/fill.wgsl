// Fills a weight buffer with pseudo-random values, uniform in [center − scale, center + scale),
// from a hash of (seed, index): random weights for speed benchmarks without a host upload.
// Element i is written by invocation i; out: (n) WT.

struct Params {
  n: u32,
  seed: u32,
  scale: f32,
  center: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<WT>;

fn hash(x: u32) -> u32 {
  var h = x;
  h ^= h >> 16u;
  h *= 0x7feb352du;
  h ^= h >> 15u;
  h *= 0x846ca68bu;
  h ^= h >> 16u;
  return h;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let i = id.x + id.y * nw.x * 64u;
  if (i >= p.n) {
    return;
  }
  let u = f32(hash(i ^ hash(p.seed)) >> 8u) / 16777216.0;
  out[i] = WT(p.center + p.scale * (2.0 * u - 1.0));
}
