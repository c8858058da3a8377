// SwiGLU: act[m, f] = silu(gu[m, f]) · gu[m, F + f], with gate and up projections fused in gu.
// gu: (rows, 2F) f32; act: (rows, F) f32.

struct Params {
  rows: u32,
  F: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gu: array<f32>;
@group(0) @binding(2) var<storage, read_write> act: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let i = id.x + id.y * nw.x * 64u;
  if (i >= p.rows * p.F) {
    return;
  }
  let m = i / p.F;
  let f = i % p.F;
  let g = gu[m * 2u * p.F + f];
  act[i] = g / (1.0 + exp(-g)) * gu[m * 2u * p.F + p.F + f];
}
