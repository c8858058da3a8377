// RMSNorm of each row: out[r, c] = x[r, c] / sqrt(mean_c x[r, c]² + eps) · w[c].
// One workgroup per row. x, out: (rows, C) f32; w: (C) WT. Row r is workgroup (wg.x + wg.y · nw.x).

struct Params {
  rows: u32,
  C: u32,
  eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<WT>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

var<workgroup> part: array<f32, 64>;

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) nw: vec3u,
  @builtin(local_invocation_index) t: u32,
) {
  let r = wg.x + wg.y * nw.x;
  let base = min(r, p.rows - 1u) * p.C;
  var s = 0.0;
  for (var c = t; c < p.C; c += 64u) {
    let v = x[base + c];
    s += v * v;
  }
  part[t] = s;
  workgroupBarrier();
  for (var k = 32u; k > 0u; k >>= 1u) {
    if (t < k) {
      part[t] += part[t + k];
    }
    workgroupBarrier();
  }
  if (r >= p.rows) {
    return;
  }
  let inv = inverseSqrt(part[0] / f32(p.C) + p.eps);
  for (var c = t; c < p.C; c += 64u) {
    out[base + c] = x[base + c] * inv * f32(w[c]);
  }
}
