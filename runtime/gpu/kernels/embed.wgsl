// Token embedding lookup: x[r, c] = table[tokens[r], c].
// x: (rows, C) f32; table: (V, C) WT; tokens: (rows) u32.

struct Params {
  rows: u32,
  C: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> tokens: array<u32>;
@group(0) @binding(2) var<storage, read> table: array<WT>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let i = id.x + id.y * nw.x * 64u;
  if (i >= p.rows * p.C) {
    return;
  }
  let r = i / p.C;
  x[i] = f32(table[tokens[r] * p.C + i % p.C]);
}
